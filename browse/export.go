package browse

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/rootfs"
)

// exportBufferSize is the write buffer of Export: tar headers are 512
// bytes each, and a large buffer turns them into few large writes.
const exportBufferSize = 1 << 20

// Export writes the merged tree of r to w as one PAX tar stream, the
// way an unpacker would have left it on disk (like crane export or
// docker export, plus the root directory as "./").
//
// Entries come in tree walk order: depth first, children sorted by
// name, so every directory comes before what it holds. A node with
// several names (hardlinks) is written in full at its first name and as
// a hardlink entry (TypeLink) to that name at the others. Xattrs are
// SCHILY.xattr PAX records, mtimes keep their nanoseconds, owners are
// numeric (no user or group names), sparse files are written in full,
// with their holes as zeros. Nothing touches the disk: contents are
// read through RootFS.ReadAt, front to back, a MiB at a time.
func Export(ctx context.Context, w io.Writer, r *rootfs.RootFS) error {
	bw := bufio.NewWriterSize(w, exportBufferSize)
	tw := tar.NewWriter(bw)
	buf := make([]byte, copyBufferSize)
	first := make(map[uint64]string) // node ID -> first name, for nodes with Nlink > 1
	err := r.Tree.Walk(func(p string, n *overlay.Node) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr := header(p, n)
		if n.Nlink > 1 && !n.IsDir() {
			if target, ok := first[n.ID]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, target, 0
				hdr.PAXRecords = nil
			} else {
				first[n.ID] = hdr.Name
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write header of %q: %w", displayPath(p), err)
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			if err := copyContents(tw, r, n, buf); err != nil {
				return fmt.Errorf("write %q: %w", displayPath(p), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("export %s: %w", r.Image.Ref, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export %s: %w", r.Image.Ref, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export %s: %w", r.Image.Ref, err)
	}
	return nil
}

// header is the tar header of the name p of n.
func header(p string, n *overlay.Node) *tar.Header {
	e := n.Entry
	hdr := &tar.Header{
		Typeflag: e.Type,
		Name:     p,
		Linkname: e.Linkname,
		Mode:     int64(e.Mode),
		Uid:      e.UID,
		Gid:      e.GID,
		Size:     e.Size,
		ModTime:  time.Unix(0, e.ModTime),
		Devmajor: int64(e.Devmajor),
		Devminor: int64(e.Devminor),
		// PAX keeps what ustar cannot: nanosecond mtimes, long
		// names, large ids and sizes, xattrs.
		Format: tar.FormatPAX,
	}
	if e.Type == tar.TypeDir {
		hdr.Name += "/"
	}
	if e.Type != tar.TypeReg {
		hdr.Size = 0
	}
	if len(e.Xattrs) > 0 {
		hdr.PAXRecords = make(map[string]string, len(e.Xattrs))
		for _, x := range e.Xattrs {
			hdr.PAXRecords["SCHILY.xattr."+x.Key] = x.Value
		}
	}
	return hdr
}
