package bundle

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"

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

// maxLinks bounds the symlinks followed for the last component of a
// path; overlay.Tree.Resolve has its own bound for the others.
const maxLinks = 40

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
// the last one included (Tree.Resolve leaves that one alone).
func (f TreeFiles) resolve(name string) (*overlay.Node, error) {
	for range maxLinks {
		n, err := f.Tree.Resolve(name)
		if err != nil {
			return nil, err
		}
		if n.Entry.Type != tar.TypeSymlink {
			return n, nil
		}
		target := n.Entry.Linkname
		if strings.HasPrefix(target, "/") {
			name = target
			continue
		}
		// Relative to the link's directory as written, not cleaned:
		// Resolve applies ".." after following the symlinks before it,
		// as the kernel does, where a lexical path.Join would not.
		dir := ""
		if i := strings.LastIndex(name, "/"); i >= 0 {
			dir = name[:i]
		}
		name = dir + "/" + target
	}
	return nil, fmt.Errorf("resolve %q: %w", name, overlay.ErrSymlinkLoop)
}
