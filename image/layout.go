package image

import (
	"context"
	_ "crypto/sha256" // digest algorithms go-digest can verify
	_ "crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
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

// Layout is an opened OCI image layout (image-layout.md): a directory
// (OpenLayout) or an oci-archive's members (OpenOCIArchive). It keeps
// index.json in memory. It is a Source; a directory's Close has
// nothing to release.
type Layout struct {
	dir   string // the directory or the archive, for messages
	index ocispec.Index
	files layoutFiles
}

var _ Source = (*Layout)(nil)

// layoutFiles are the files of an image layout: a directory's or an
// archive's regular members.
type layoutFiles interface {
	// open opens the regular file name (slash separated, relative to
	// the layout's root); the error for a missing file wraps
	// iofs.ErrNotExist.
	open(name string) (Blob, error)
	// where names the file name for messages.
	where(name string) string
	close() error
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
	l, err := newLayout(dir, dirFiles(dir))
	if err != nil {
		return nil, fmt.Errorf("open layout %q: %w", dir, err)
	}
	return l, nil
}

// newLayout reads the oci-layout file and index.json of files; dir
// names them in messages.
func newLayout(dir string, files layoutFiles) (*Layout, error) {
	var header ocispec.ImageLayout
	if err := decodeFile(files, ocispec.ImageLayoutFile, &header); err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return nil, fmt.Errorf("%w: no %s file", ErrNotLayout, ocispec.ImageLayoutFile)
		}
		return nil, err
	}
	if header.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("%w %q in %q, want %q",
			ErrLayoutVersion, header.Version, files.where(ocispec.ImageLayoutFile), ocispec.ImageLayoutVersion)
	}

	l := &Layout{dir: dir, files: files}
	if err := decodeFile(files, ocispec.ImageIndexFile, &l.index); err != nil {
		return nil, err
	}
	if err := checkIndex(l.index); err != nil {
		return nil, fmt.Errorf("read %q: %w", files.where(ocispec.ImageIndexFile), err)
	}
	return l, nil
}

// Dir returns the layout's directory, as given to OpenLayout, or the
// archive's file.
func (l *Layout) Dir() string { return l.dir }

// Index returns index.json. Its slices are shared: do not modify them.
func (l *Layout) Index() ocispec.Index { return l.index }

// Close releases the archive a layout was read from; for a directory
// it does nothing.
func (l *Layout) Close() error { return l.files.close() }

// blobName is where blob d lives (image-layout.md, "Blobs"); d must
// have passed checkDigest.
func blobName(d digest.Digest) string {
	return path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// blobLocation names blob d for messages.
func (l *Layout) blobLocation(d digest.Digest) string { return l.files.where(blobName(d)) }

// Resolve returns the index.json entries ref names: by digest (also
// below nested image indexes), by tag, or the only image. ref.Path is
// not used.
func (l *Layout) Resolve(ctx context.Context, ref Reference) ([]ocispec.Descriptor, error) {
	top := l.index.Manifests
	switch {
	case ref.Digest != "":
		desc, ok, err := findDigest(ctx, l, top, ref.Digest, 0)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: no manifest or index %q in the layout", ErrNotFound, ref.Digest)
		}
		return []ocispec.Descriptor{desc}, nil

	case ref.Tag != "":
		var found []ocispec.Descriptor
		for _, d := range top {
			if d.Annotations[ocispec.AnnotationRefName] == ref.Tag {
				found = append(found, d)
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%w: no tag %q (tags: %s)", ErrNotFound, ref.Tag, listRefs(top))
		}
		// Some tools tag each platform's manifest with the same name
		// instead of writing an index; those are platforms to choose
		// from, like an index's.
		return found, nil
	}

	if len(top) == 0 {
		return nil, fmt.Errorf("%w: index.json lists no image", ErrNotFound)
	}
	sameDigest, sameTag := true, top[0].Annotations[ocispec.AnnotationRefName] != ""
	for _, d := range top[1:] {
		sameDigest = sameDigest && d.Digest == top[0].Digest
		sameTag = sameTag && d.Annotations[ocispec.AnnotationRefName] == top[0].Annotations[ocispec.AnnotationRefName]
	}
	switch {
	case sameDigest:
		return top[:1], nil
	case sameTag:
		return top, nil
	}
	return nil, fmt.Errorf("%w (tags: %s)", ErrAmbiguous, listRefs(top))
}

// OpenBlob opens the blob desc names and checks that it is a regular
// file (symlinks to one are fine) of exactly desc.Size bytes. Contents
// are not hashed here: layers are large and read lazily. A blob missing
// from the layout, as a non-distributable layer may be
// (descriptor.md, "urls"), gives an error with desc.URLs.
func (l *Layout) OpenBlob(ctx context.Context, desc ocispec.Descriptor) (Blob, error) {
	if err := checkDigest(desc.Digest); err != nil {
		return nil, fmt.Errorf("open blob %q: %w", desc.Digest, err)
	}
	name := blobName(desc.Digest)
	b, err := l.files.open(name)
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
	if b.Size() != desc.Size {
		b.Close()
		return nil, fmt.Errorf("open blob %q: %w: %q has %d bytes, descriptor says %d",
			desc.Digest, ErrBlobSize, l.files.where(name), b.Size(), desc.Size)
	}
	return b, nil
}

// ReadBlob reads the small blob desc names whole and verifies its
// digest (descriptor.md, "Digests").
func (l *Layout) ReadBlob(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	return readBlob(ctx, l, desc)
}

// readBlob reads the small blob desc names through src.OpenBlob,
// bounded by maxJSONBlob, and verifies its digest.
func readBlob(ctx context.Context, src interface {
	OpenBlob(context.Context, ocispec.Descriptor) (Blob, error)
}, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > maxJSONBlob {
		return nil, fmt.Errorf("read blob %q: %w: %d bytes is more than the %d allowed", desc.Digest, ErrInvalid, desc.Size, maxJSONBlob)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("read blob %q: %w: size %d", desc.Digest, ErrInvalid, desc.Size)
	}
	b, err := src.OpenBlob(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	data := make([]byte, desc.Size)
	if _, err := b.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && len(data) == 0) {
		return nil, fmt.Errorf("read blob %q: %w", desc.Digest, err)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return nil, fmt.Errorf("read blob %q: %w: %q hashes to %s", desc.Digest, ErrDigestMismatch, location(src, desc.Digest), got)
	}
	return data, nil
}

// location names blob d of src for messages: its file if src has
// one, else its digest.
func location(src any, d digest.Digest) string {
	if l, ok := src.(interface{ blobLocation(digest.Digest) string }); ok {
		return l.blobLocation(d)
	}
	return d.String()
}

// dirFiles are the files of a layout directory.
type dirFiles string

func (d dirFiles) where(name string) string {
	return filepath.Join(string(d), filepath.FromSlash(name))
}

func (d dirFiles) close() error { return nil }

func (d dirFiles) open(name string) (Blob, error) {
	f, err := openRegular(d.where(name))
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fileBlob{f: f, size: fi.Size()}, nil
}

// fileBlob is a blob in a file opened for random access. It is safe
// for concurrent use: ReadAt uses pread and keeps no offset.
type fileBlob struct {
	f    *os.File
	size int64
}

var _ Blob = (*fileBlob)(nil)

// ReadAt implements io.ReaderAt.
func (b *fileBlob) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }

// Size returns the blob's size, which OpenBlob checked against its
// descriptor's.
func (b *fileBlob) Size() int64 { return b.size }

// Close closes the blob's file.
func (b *fileBlob) Close() error { return b.f.Close() }

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

// decodeFile decodes the JSON file name of files, a regular file of at
// most maxJSONBlob bytes, into v; errors name the file.
func decodeFile(files layoutFiles, name string, v any) error {
	b, err := files.open(name)
	if err != nil {
		return err
	}
	defer b.Close()
	data, err := readSmall(b, files.where(name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %q: %w", files.where(name), err)
	}
	return nil
}

// readSmall reads b whole, refusing more than maxJSONBlob bytes;
// where names it for messages.
func readSmall(b Blob, where string) ([]byte, error) {
	if b.Size() > maxJSONBlob {
		return nil, fmt.Errorf("read %q: %w: more than the %d bytes allowed", where, ErrInvalid, maxJSONBlob)
	}
	data, err := io.ReadAll(io.LimitReader(io.NewSectionReader(b, 0, b.Size()), maxJSONBlob+1))
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", where, err)
	}
	return data, nil
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
