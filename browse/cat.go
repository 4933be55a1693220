package browse

import (
	"archive/tar"
	"fmt"
	"io"

	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/rootfs"
)

// copyBufferSize is the size of each read from a layer: large enough
// that a read covers several of the Reader's 256 KiB chunks and the
// per-call overhead disappears.
const copyBufferSize = 1 << 20

// Cat writes the contents of the file name to w, following symlinks
// inside the image root (see the package doc). Directories fail with
// ErrIsDir, other non-regular files with rootfs.ErrNotRegular.
func Cat(w io.Writer, r *rootfs.RootFS, name string) error {
	res, err := resolve(r.Tree, name, true)
	if err != nil {
		return fmt.Errorf("cat: %w", err)
	}
	switch res.node.Entry.Type {
	case tar.TypeReg:
	case tar.TypeDir:
		return fmt.Errorf("cat %q: %w", name, ErrIsDir)
	default:
		return fmt.Errorf("cat %q: %w", name, rootfs.ErrNotRegular)
	}
	if err := copyContents(w, r, res.node, make([]byte, copyBufferSize)); err != nil {
		return fmt.Errorf("cat %q: %w", name, err)
	}
	return nil
}

// copyContents writes n's contents to w in reads of len(buf), front to
// back, so that each layer Reader decodes forward.
func copyContents(w io.Writer, r *rootfs.RootFS, n *overlay.Node, buf []byte) error {
	size := n.Entry.Size
	for off := int64(0); off < size; {
		k, err := r.ReadAt(n, buf[:min(int64(len(buf)), size-off)], off)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return werr
			}
			off += int64(k)
		}
		if err == io.EOF && off < size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return err
		}
		if k == 0 && err == nil {
			return fmt.Errorf("read node %d at offset %d: %w", n.ID, off, io.ErrNoProgress)
		}
	}
	return nil
}
