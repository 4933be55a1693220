package bundle

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"

	"github.com/ocifs/ocifs/overlay"
)

// Errors TreeFiles.ReadFile wraps, besides overlay's (ErrNotExist
// matches io/fs.ErrNotExist).
var (
	ErrNotRegular = errors.New("bundle: not a regular file")
	ErrTooLarge   = errors.New("bundle: file too large")
)

// maxFileSize bounds what TreeFiles reads: an /etc/passwd of 16 MiB is
// already absurd, and the image is not trusted.
const maxFileSize = 16 << 20

// Content serves file contents of a merged tree's nodes;
// rootfs.RootFS is one.
type Content interface {
	ReadAt(n *overlay.Node, p []byte, off int64) (int, error)
}

// TreeFiles is a FileReader over an image's merged tree, without a
// mount: it reads straight from the layer blobs through Content.
// Symlinks are followed inside the image's root, as a chroot would
// (an absolute target starts at the image's root, ".." stops there), so
// an image cannot make us read a file of the host.
type TreeFiles struct {
	Tree    *overlay.Tree
	Content Content
}

var _ FileReader = TreeFiles{}

// ReadFile reads the regular file at name.
func (f TreeFiles) ReadFile(name string) ([]byte, error) {
	n, err := f.resolve(name)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", name, err)
	}
	if n.Entry.Type != tar.TypeReg {
		return nil, fmt.Errorf("read %q: %w", name, ErrNotRegular)
	}
	size := n.Entry.Size
	if size > maxFileSize {
		return nil, fmt.Errorf("read %q: %d bytes: %w", name, size, ErrTooLarge)
	}
	if size == 0 {
		return []byte{}, nil
	}
	buf := make([]byte, size)
	got, err := f.Content.ReadAt(n, buf, 0)
	if int64(got) == size {
		// io.ReaderAt may add io.EOF to a read that ends the file.
		return buf, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("read %q: %d of %d bytes: %w", name, got, size, err)
}

// resolve finds name's node, following symlinks in every component,
// the last one included, inside the image root.
func (f TreeFiles) resolve(name string) (*overlay.Node, error) {
	n, _, err := f.Tree.ResolvePath(name, true)
	return n, err
}
