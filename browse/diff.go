package browse

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/rootfs"
	"github.com/ocifs/ocifs/tarindex"
)

// Change kinds.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// Fields a Change can name.
const (
	FieldType    = "type"
	FieldMode    = "mode"
	FieldOwner   = "owner"
	FieldSize    = "size"
	FieldTarget  = "linkTarget"
	FieldDevice  = "device"
	FieldXattrs  = "xattrs"
	FieldContent = "content"
)

// Change is one path that differs between two images.
type Change struct {
	Path   string   `json:"path"`
	Kind   string   `json:"kind"`             // Added, Removed or Changed
	Fields []string `json:"fields,omitempty"` // Changed: what differs, in the order of the Field constants
	// OldSHA256 and NewSHA256 are set when Fields holds FieldContent.
	OldSHA256 string `json:"oldSha256,omitempty"`
	NewSHA256 string `json:"newSha256,omitempty"`
}

// Diff compares the merged trees of a (old) and b (new) and returns
// every path that differs, sorted in walk order (depth first, names
// sorted). A path in one image only is Added or Removed, and so is every
// path below it. A path in both is Changed when its type, mode, owner,
// size, symlink target, device numbers or xattrs differ, or, only when
// all of those match, when the sha256 of a regular file's contents
// differ. Contents are not read when both names come from the same
// entry of the same layer blob (layers the images share). Modification
// times, inode numbers and link counts are not compared: rebuilding an
// image changes them without changing what it holds.
func Diff(ctx context.Context, a, b *rootfs.RootFS) ([]Change, error) {
	d := &differ{ctx: ctx, a: a, b: b, buf: make([]byte, copyBufferSize)}
	if err := d.node(".", a.Tree.Root(), b.Tree.Root()); err != nil {
		return nil, err
	}
	return d.changes, nil
}

type differ struct {
	ctx     context.Context
	a, b    *rootfs.RootFS
	buf     []byte
	changes []Change
}

func (d *differ) node(p string, na, nb *overlay.Node) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	fields := metadataDiff(na.Entry, nb.Entry)
	var oldSum, newSum string
	if len(fields) == 0 && na.Entry.Type == tar.TypeReg && !sameContents(d.a, na, d.b, nb) {
		var err error
		if oldSum, err = d.sum(d.a, na, p); err != nil {
			return err
		}
		if newSum, err = d.sum(d.b, nb, p); err != nil {
			return err
		}
		if oldSum != newSum {
			fields = append(fields, FieldContent)
		} else {
			oldSum, newSum = "", ""
		}
	}
	if len(fields) > 0 {
		d.changes = append(d.changes, Change{Path: displayPath(p), Kind: Changed, Fields: fields, OldSHA256: oldSum, NewSHA256: newSum})
	}
	ka, kb := d.a.Tree.ReadDir(na), d.b.Tree.ReadDir(nb)
	for len(ka) > 0 || len(kb) > 0 {
		switch {
		case len(kb) == 0 || len(ka) > 0 && ka[0].Name < kb[0].Name:
			d.only(d.a.Tree, joinPath(p, ka[0].Name), ka[0].Node, Removed)
			ka = ka[1:]
		case len(ka) == 0 || kb[0].Name < ka[0].Name:
			d.only(d.b.Tree, joinPath(p, kb[0].Name), kb[0].Node, Added)
			kb = kb[1:]
		default:
			if err := d.node(joinPath(p, ka[0].Name), ka[0].Node, kb[0].Node); err != nil {
				return err
			}
			ka, kb = ka[1:], kb[1:]
		}
	}
	return nil
}

// only records p and everything below it as present in one tree only.
func (d *differ) only(t *overlay.Tree, p string, n *overlay.Node, kind string) {
	d.changes = append(d.changes, Change{Path: displayPath(p), Kind: kind})
	for _, de := range t.ReadDir(n) {
		d.only(t, joinPath(p, de.Name), de.Node, kind)
	}
}

// metadataDiff lists the fields in which a and b differ.
func metadataDiff(a, b *tarindex.Entry) []string {
	var fields []string
	if a.Type != b.Type {
		return []string{FieldType}
	}
	if a.Mode != b.Mode {
		fields = append(fields, FieldMode)
	}
	if a.UID != b.UID || a.GID != b.GID {
		fields = append(fields, FieldOwner)
	}
	if a.Size != b.Size {
		fields = append(fields, FieldSize)
	}
	if a.Linkname != b.Linkname {
		fields = append(fields, FieldTarget)
	}
	if a.Devmajor != b.Devmajor || a.Devminor != b.Devminor {
		fields = append(fields, FieldDevice)
	}
	if !slices.Equal(a.Xattrs, b.Xattrs) {
		fields = append(fields, FieldXattrs)
	}
	return fields
}

// sameContents reports whether two regular files are known to hold the
// same bytes without reading them: the same span of the same layer
// blob (blobs are content addressed).
func sameContents(ra *rootfs.RootFS, na *overlay.Node, rb *rootfs.RootFS, nb *overlay.Node) bool {
	if na.Layer < 0 || nb.Layer < 0 {
		return false
	}
	ea, eb := na.Entry, nb.Entry
	return ra.Layers[na.Layer].Descriptor.Digest == rb.Layers[nb.Layer].Descriptor.Digest &&
		ea.Offset == eb.Offset && ea.Size == eb.Size && slices.Equal(ea.Sparse, eb.Sparse)
}

func (d *differ) sum(r *rootfs.RootFS, n *overlay.Node, p string) (string, error) {
	h := sha256.New()
	if err := copyContents(h, r, n, d.buf); err != nil {
		return "", fmt.Errorf("hash %q: %w", displayPath(p), err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WriteChanges prints changes for people, one a line, with docker
// diff's letters: A added, D removed (deleted), C changed, followed by
// the fields that changed.
func WriteChanges(w io.Writer, changes []Change) error {
	for _, c := range changes {
		var err error
		switch c.Kind {
		case Added:
			_, err = fmt.Fprintf(w, "A %s\n", c.Path)
		case Removed:
			_, err = fmt.Fprintf(w, "D %s\n", c.Path)
		default:
			_, err = fmt.Fprintf(w, "C %s (%s)\n", c.Path, strings.Join(c.Fields, ", "))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
