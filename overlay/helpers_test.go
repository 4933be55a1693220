package overlay

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/tarindex"
)

// Entry builders. Entries are written as a tarindex.Build would leave
// them (names already cleaned), so these tests do not depend on tar.

type opt func(*tarindex.Entry)

func size(n int64) opt    { return func(e *tarindex.Entry) { e.Size = n } }
func mode(m uint32) opt   { return func(e *tarindex.Entry) { e.Mode = m } }
func owner(u, g int) opt  { return func(e *tarindex.Entry) { e.UID, e.GID = u, g } }
func mtime(sec int64) opt { return func(e *tarindex.Entry) { e.Mtime = sec } }
func xattr(k, v string) opt {
	return func(e *tarindex.Entry) { e.Xattrs = append(e.Xattrs, tarindex.Xattr{Key: k, Value: v}) }
}

func mk(typ byte, name string, m uint32, opts []opt) tarindex.Entry {
	e := tarindex.Entry{Name: name, Type: typ, Mode: m, Mtime: 1}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func file(name string, opts ...opt) tarindex.Entry { return mk(tar.TypeReg, name, 0o644, opts) }
func dir(name string, opts ...opt) tarindex.Entry  { return mk(tar.TypeDir, name, 0o755, opts) }
func sym(name, target string, opts ...opt) tarindex.Entry {
	e := mk(tar.TypeSymlink, name, 0o777, opts)
	e.Linkname = target
	return e
}
func link(name, target string) tarindex.Entry {
	e := mk(tar.TypeLink, name, 0o644, nil)
	e.Linkname = target
	return e
}
func chr(name string) tarindex.Entry  { return mk(tar.TypeChar, name, 0o666, nil) }
func fifo(name string) tarindex.Entry { return mk(tar.TypeFifo, name, 0o644, nil) }

// wh whites out dir/base; opq makes dir opaque.
func wh(dir, base string) tarindex.Entry { return file(joinPath(dir, ".wh."+base)) }
func opq(dir string) tarindex.Entry      { return file(joinPath(dir, whOpaque)) }

func joinPath(dir, base string) string {
	if dir == "" || dir == "." {
		return base
	}
	return dir + "/" + base
}

func layers(ls ...[]tarindex.Entry) []Layer {
	out := make([]Layer, len(ls))
	for i, l := range ls {
		out[i] = Layer{Name: fmt.Sprintf("L%d", i), Entries: l}
	}
	return out
}

func l(es ...tarindex.Entry) []tarindex.Entry { return es }

// desc summarises a node for table tests: a type letter, the layer ("-"
// for implicit), ":size" when the size is set (tests use it to tell
// entries apart) and "->target" for symlinks. For example "f1:2",
// "d-", "l0->a".
func desc(n *Node) string {
	if n == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString(typeLetter(n.Entry.Type))
	if n.Layer < 0 {
		b.WriteString("-")
	} else {
		fmt.Fprint(&b, n.Layer)
	}
	if n.Entry.Size != 0 {
		fmt.Fprintf(&b, ":%d", n.Entry.Size)
	}
	if n.Entry.Type == tar.TypeSymlink {
		b.WriteString("->" + n.Entry.Linkname)
	}
	return b.String()
}

func typeLetter(t byte) string {
	switch t {
	case tar.TypeDir:
		return "d"
	case tar.TypeSymlink:
		return "l"
	case tar.TypeChar:
		return "c"
	case tar.TypeBlock:
		return "b"
	case tar.TypeFifo:
		return "p"
	case tar.TypeLink:
		return "h"
	case tar.TypeReg, tar.TypeRegA:
		return "f"
	}
	return fmt.Sprintf("?%q", t)
}

// flatten lists every name in the tree (the root excluded) with desc.
func flatten(t *testing.T, tr *Tree) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := tr.Walk(func(name string, n *Node) error {
		if name != "." {
			got[name] = desc(n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

// checkTree compares the whole tree with want, by path.
func checkTree(t *testing.T, tr *Tree, want map[string]string) {
	t.Helper()
	got := flatten(t, tr)
	keys := slices.Sorted(maps.Keys(got))
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		g, ok := got[k]
		if !ok {
			g = "<nil>"
		}
		w, ok := want[k]
		if !ok {
			w = "<nil>"
		}
		if g != w {
			t.Errorf("Lookup(%q) = %v, want %v", k, g, w)
		}
	}
}

func mustMerge(t testing.TB, ls []Layer) *Tree {
	t.Helper()
	tr, err := Merge(ls, Options{})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	checkInvariants(t, tr)
	return tr
}

func mustResolve(t *testing.T, tr *Tree, name string) *Node {
	t.Helper()
	n, err := tr.Resolve(name)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", name, err)
	}
	return n
}

// checkInvariants checks what every merged tree must satisfy, for any
// input: no whiteout names, sorted unique names, Lookup agrees with
// ReadDir, dense unique IDs shared only by hardlinks, link counts, every
// directory reachable exactly once. Nodes are fresh on every call, so
// they are compared by ID and by value, never by pointer.
func checkInvariants(t testing.TB, tr *Tree) {
	t.Helper()
	root := tr.Root()
	if root == nil || root.ID != 1 || !root.IsDir() || !sameNode(tr.Node(1), root) {
		t.Fatalf("root = %+v, want directory with ID 1", root)
	}
	names := map[uint64]int{}
	nodes := map[uint64]*Node{}
	seenDir := map[uint64]bool{1: true}
	xattrs := false
	var walk func(p string, d *Node)
	walk = func(p string, d *Node) {
		kids := tr.ReadDir(d)
		subdirs := 0
		for i, de := range kids {
			full := joinPath(p, de.Name)
			if i > 0 && kids[i-1].Name >= de.Name {
				t.Errorf("ReadDir(%q): %q after %q", p, de.Name, kids[i-1].Name)
			}
			if strings.HasPrefix(de.Name, whPrefix) {
				t.Errorf("whiteout name %q in tree", full)
			}
			if de.Name == "" || de.Name == "." || de.Name == ".." || strings.Contains(de.Name, "/") {
				t.Errorf("bad name %q in %q", de.Name, p)
			}
			if got := tr.Lookup(d, de.Name); !sameNode(got, de.Node) {
				t.Errorf("Lookup(%q) = %v, want %v", full, desc(got), desc(de.Node))
			}
			if n := tr.Node(de.Node.ID); !sameNode(n, de.Node) {
				t.Errorf("Node(%d) = %v, want node of %q", de.Node.ID, desc(n), full)
			}
			if de.Node.Entry.Type == tar.TypeLink {
				t.Errorf("%q: node of type hardlink", full)
			}
			names[de.Node.ID]++
			if prev, ok := nodes[de.Node.ID]; ok && !sameNode(prev, de.Node) {
				t.Errorf("%q: node %d differs between its names", full, de.Node.ID)
			}
			nodes[de.Node.ID] = de.Node
			if de.Node.IsDir() {
				subdirs++
				if seenDir[de.Node.ID] {
					t.Errorf("directory %q reachable twice", full)
					continue
				}
				seenDir[de.Node.ID] = true
				walk(full, de.Node)
			}
		}
		if d.Nlink != uint32(2+subdirs) {
			t.Errorf("%q: Nlink = %d, want %d", p, d.Nlink, 2+subdirs)
		}
	}
	walk(".", root)
	ids := map[uint64]bool{1: true}
	for id, n := range nodes {
		if id < 1 || id > uint64(tr.Len()) {
			t.Errorf("ID %d out of 1..%d", id, tr.Len())
		}
		ids[id] = true
		if !n.IsDir() && n.Nlink != uint32(names[id]) {
			t.Errorf("node %d (%s): Nlink = %d, want %d names", n.ID, n.Entry.Name, n.Nlink, names[id])
		}
	}
	for _, n := range append([]*Node{root}, slices.Collect(maps.Values(nodes))...) {
		for _, x := range n.Entry.Xattrs {
			xattrs = true
			if strings.HasPrefix(x.Key, xattrOverlay) {
				t.Errorf("node %d: xattr %q not filtered", n.ID, x.Key)
			}
		}
	}
	if len(ids) != tr.Len() {
		t.Errorf("Len() = %d, reachable nodes %d", tr.Len(), len(ids))
	}
	if xattrs != tr.HasXattrs() {
		t.Errorf("HasXattrs() = %v, want %v", tr.HasXattrs(), xattrs)
	}
}

// sameNode reports whether a and b are the same node with the same
// contents (two decodings of one node are equal, never identical).
func sameNode(a, b *Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ID == b.ID && a.Layer == b.Layer && a.Nlink == b.Nlink && sameEntry(a.Entry, b.Entry)
}

// sameEntry compares entries field by field, an empty Xattrs or Sparse
// equal to a nil one (the encoding keeps only what is there).
func sameEntry(a, b *tarindex.Entry) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && a.Type == b.Type && a.Mode == b.Mode &&
		a.UID == b.UID && a.GID == b.GID && a.Size == b.Size &&
		a.Mtime == b.Mtime && a.MtimeNsec == b.MtimeNsec && a.Linkname == b.Linkname &&
		a.Devmajor == b.Devmajor && a.Devminor == b.Devminor &&
		a.Offset == b.Offset &&
		slices.Equal(a.Xattrs, b.Xattrs) && slices.Equal(a.Sparse, b.Sparse) &&
		(a.Sparse == nil) == (b.Sparse == nil) // nil: not sparse; empty: all hole
}

// fromTar indexes a tar stream the way tarindex.Build is specified to
// (names cleaned, hardlink targets cleaned, symlink targets verbatim),
// so rule tests can also start from real tar bytes.
func fromTar(t testing.TB, data []byte) []tarindex.Entry {
	t.Helper()
	var out []tarindex.Entry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		typ := h.Typeflag
		if typ == tar.TypeRegA {
			typ = tar.TypeReg
		}
		e := tarindex.Entry{
			Name:      cleanName(h.Name),
			Type:      typ,
			Mode:      uint32(h.Mode & 0o7777),
			UID:       h.Uid,
			GID:       h.Gid,
			Mtime:     h.ModTime.Unix(),
			MtimeNsec: uint32(h.ModTime.Nanosecond()),
			Linkname:  h.Linkname,
			Devmajor:  uint32(h.Devmajor),
			Devminor:  uint32(h.Devminor),
		}
		if typ == tar.TypeReg {
			e.Size = h.Size
		}
		if typ == tar.TypeLink {
			e.Linkname = cleanName(h.Linkname)
		}
		for _, k := range slices.Sorted(maps.Keys(h.PAXRecords)) {
			if key, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				e.Xattrs = append(e.Xattrs, tarindex.Xattr{Key: key, Value: h.PAXRecords[k]})
			}
		}
		out = append(out, e)
	}
}
