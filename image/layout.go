package image

import (
	_ "crypto/sha256" // digest algorithms go-digest can verify
	_ "crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxJSONBlob bounds the manifests, indexes and configs read into
// memory; registries refuse manifests above 4 MiB, and configs with
// long histories stay well below this.
const maxJSONBlob = 16 << 20

// Layout is an opened OCI image layout (image-layout.md). It keeps
// index.json in memory and no file open, so it needs no Close.
type Layout struct {
	dir   string
	index ocispec.Index
}

// OpenLayout checks that dir is an image layout of version 1.0.0 and
// reads its index.json (image-layout.md, "oci-layout file" and
// "index.json file").
func OpenLayout(dir string) (*Layout, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open layout %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open layout %q: %w: not a directory", dir, ErrNotLayout)
	}

	var header ocispec.ImageLayout
	headerPath := filepath.Join(dir, ocispec.ImageLayoutFile)
	if err := decodeFile(headerPath, &header); err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return nil, fmt.Errorf("open layout %q: %w: no %s file", dir, ErrNotLayout, ocispec.ImageLayoutFile)
		}
		return nil, fmt.Errorf("open layout %q: %w", dir, err)
	}
	if header.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("open layout %q: %w %q in %q, want %q",
			dir, ErrLayoutVersion, header.Version, headerPath, ocispec.ImageLayoutVersion)
	}

	l := &Layout{dir: dir}
	indexPath := filepath.Join(dir, ocispec.ImageIndexFile)
	if err := decodeFile(indexPath, &l.index); err != nil {
		return nil, fmt.Errorf("open layout %q: %w", dir, err)
	}
	if err := checkIndex(l.index); err != nil {
		return nil, fmt.Errorf("open layout %q: read %q: %w", dir, indexPath, err)
	}
	return l, nil
}

// Dir returns the layout's directory, as given to OpenLayout.
func (l *Layout) Dir() string { return l.dir }

// Index returns index.json. Its slices are shared: do not modify them.
func (l *Layout) Index() ocispec.Index { return l.index }

// blobPath is where blob d lives (image-layout.md, "Blobs"); d must
// have passed checkDigest.
func (l *Layout) blobPath(d digest.Digest) string {
	return filepath.Join(l.dir, ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// fileBlob is a blob in a file opened for random access. It is safe
// for concurrent use: ReadAt uses pread and keeps no offset.
type fileBlob struct {
	f    *os.File
	desc ocispec.Descriptor
}

var _ Blob = (*fileBlob)(nil)

// OpenBlob opens the blob desc names and checks that it is a regular
// file (symlinks to one are fine) of exactly desc.Size bytes. Contents
// are not hashed here: layers are large and read lazily. A blob missing
// from the layout, as a non-distributable layer may be
// (descriptor.md, "urls"), gives an error with desc.URLs.
func (l *Layout) OpenBlob(desc ocispec.Descriptor) (Blob, error) {
	if err := checkDigest(desc.Digest); err != nil {
		return nil, fmt.Errorf("open blob %q: %w", desc.Digest, err)
	}
	path := l.blobPath(desc.Digest)
	f, err := openRegular(path)
	if errors.Is(err, iofs.ErrNotExist) {
		err = ErrBlobNotFound
		if len(desc.URLs) > 0 {
			err = fmt.Errorf("%w (urls: %s)", ErrBlobNotFound, strings.Join(desc.URLs, ", "))
		}
		return nil, fmt.Errorf("open blob %q: %w", desc.Digest, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %q: %w", desc.Digest, err)
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
		err = fmt.Errorf("open blob %q: %w", desc.Digest, err)
	case fi.Size() != desc.Size:
		err = fmt.Errorf("open blob %q: %w: %q has %d bytes, descriptor says %d",
			desc.Digest, ErrBlobSize, path, fi.Size(), desc.Size)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fileBlob{f: f, desc: desc}, nil
}

// ReadAt implements io.ReaderAt.
func (b *fileBlob) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }

// Size returns the blob's size, which is its descriptor's size.
func (b *fileBlob) Size() int64 { return b.desc.Size }

// Descriptor returns the descriptor the blob was opened with.
func (b *fileBlob) Descriptor() ocispec.Descriptor { return b.desc }

// Close closes the blob's file.
func (b *fileBlob) Close() error { return b.f.Close() }

// readJSON reads the small blob desc names, verifies its digest and
// decodes it into v. what names the object for messages ("manifest").
func (l *Layout) readJSON(what string, desc ocispec.Descriptor, v any) error {
	if desc.Size > maxJSONBlob {
		return fmt.Errorf("read %s %q: %w: %d bytes is more than the %d allowed", what, desc.Digest, ErrInvalid, desc.Size, maxJSONBlob)
	}
	b, err := l.OpenBlob(desc)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	defer b.Close()
	data := make([]byte, desc.Size)
	if _, err := b.ReadAt(data, 0); err != nil {
		return fmt.Errorf("read %s %q: %w", what, desc.Digest, err)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return fmt.Errorf("read %s %q: %w: %q hashes to %s", what, desc.Digest, ErrDigestMismatch, l.blobPath(desc.Digest), got)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("read %s %q: decode %q: %w", what, desc.Digest, l.blobPath(desc.Digest), err)
	}
	return nil
}

// openRegular opens path for reading if it is a regular file (after
// symlinks). O_NONBLOCK keeps open(2) from waiting for a writer if a
// hostile layout put a FIFO there; the check is on the opened file, so
// nothing can swap the path in between. O_NONBLOCK changes nothing for
// reads of a regular file.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("open %q: %w: not a regular file", path, ErrInvalid)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// decodeFile decodes the JSON file at path, a regular file of at most
// maxJSONBlob bytes, into v; errors name path.
func decodeFile(path string, v any) error {
	f, err := openRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJSONBlob+1))
	if err != nil {
		return fmt.Errorf("read %q: %w", path, err)
	}
	if len(data) > maxJSONBlob {
		return fmt.Errorf("read %q: %w: more than the %d bytes allowed", path, ErrInvalid, maxJSONBlob)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %q: %w", path, err)
	}
	return nil
}

// checkIndex checks the schemaVersion every image index must have
// (image-index.md). Descriptors are checked when they are followed, so
// one odd entry does not make the rest of a layout unreadable.
func checkIndex(idx ocispec.Index) error {
	if idx.SchemaVersion != 2 {
		return fmt.Errorf("%w: schemaVersion %d, want 2", ErrInvalid, idx.SchemaVersion)
	}
	return nil
}
