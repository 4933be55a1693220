package tarindex

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Index describes one layer blob: its entries and how to reach any byte
// of its uncompressed tar stream.
type Index struct {
	MediaType string        // the layer descriptor's media type
	Digest    digest.Digest // the blob's digest
	BlobSize  int64         // the blob's size in bytes
	DiffID    digest.Digest // digest of the uncompressed tar stream
	TarSize   int64         // size of the uncompressed tar stream
	Entries   []Entry       // in tar order
	// compression-specific access points are unexported
}

// BuildOptions tunes Build. The zero value works.
type BuildOptions struct {
	// DiffID, when set, is checked against the digest of the
	// uncompressed stream (the config's rootfs.diff_ids entry).
	DiffID digest.Digest
	// Span is the distance in uncompressed bytes between access points;
	// zero picks the default.
	Span int64
	// Progress, when set, is called with compressed bytes read so far.
	Progress func(n int64)
}

// Build reads the blob once, sequentially, and indexes it.
func Build(ctx context.Context, blob io.ReaderAt, desc ocispec.Descriptor, opts BuildOptions) (*Index, error) {
	panic("unimplemented")
}

// ReaderOptions tunes NewReader. The zero value works.
type ReaderOptions struct {
	// CacheBytes bounds the memory kept for decompressed spans; zero
	// picks the default.
	CacheBytes int64
}

// Reader serves entry contents from the blob. It is safe for concurrent
// use.
type Reader struct{}

// NewReader returns a Reader over blob, which must be the blob ix was
// built from.
func NewReader(ix *Index, blob io.ReaderAt, opts ReaderOptions) *Reader {
	panic("unimplemented")
}

// ReadAt reads len(p) bytes of e's contents at off, like io.ReaderAt.
// e must be one of the Index's entries.
func (r *Reader) ReadAt(e *Entry, p []byte, off int64) (int, error) {
	panic("unimplemented")
}
