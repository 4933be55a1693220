package overlay

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"slices"
	"testing"

	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/tarindex"
)

// treeCase is one rule vector: layers, lowest first, and the whole
// expected tree in desc form.
type treeCase struct {
	name   string
	layers [][]tarindex.Entry
	want   map[string]string
}

func runTreeCases(t *testing.T, cases []treeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustMerge(t, layers(tc.layers...))
			checkTree(t, tr, tc.want)
		})
	}
}

// errCase is a vector that must fail with err.
type errCase struct {
	name   string
	layers [][]tarindex.Entry
	err    error
}

func runErrCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Merge(layers(tc.layers...), Options{})
			if !errors.Is(err, tc.err) {
				t.Fatalf("Merge() = %v, %v; want error %v", tr, err, tc.err)
			}
			if tr != nil {
				t.Errorf("Merge() returned a tree with error %v", err)
			}
		})
	}
}

func TestLayerOrder(t *testing.T) {
	runTreeCases(t, []treeCase{
		{"upper replaces lower", [][]tarindex.Entry{
			l(file("a", size(1))),
			l(file("a", size(2))),
		}, map[string]string{"a": "f1:2"}},
		{"each layer adds", [][]tarindex.Entry{
			l(dir("d"), file("d/a")),
			l(file("d/b")),
			l(file("d/c")),
		}, map[string]string{"d": "d0", "d/a": "f0", "d/b": "f1", "d/c": "f2"}},
		{"no layers", nil, map[string]string{}},
		{"empty layer", [][]tarindex.Entry{l(file("a")), l()}, map[string]string{"a": "f0"}},
	})
}

func TestWhiteoutRemovesSubtree(t *testing.T) {
	base := l(dir("a"), file("a/b"), dir("a/c"), file("a/c/d"), file("x"))
	runTreeCases(t, []treeCase{
		{"directory and everything under it", [][]tarindex.Entry{
			base, l(wh("", "a")),
		}, map[string]string{"x": "f0"}},
		{"one file in a directory", [][]tarindex.Entry{
			base, l(wh("a", "b")),
		}, map[string]string{"a": "d0", "a/c": "d0", "a/c/d": "f0", "x": "f0"}},
		{"recreated by a later layer", [][]tarindex.Entry{
			base, l(wh("", "a")), l(file("a/new")),
		}, map[string]string{"a": "d-", "a/new": "f2", "x": "f0"}},
		{"spec example", [][]tarindex.Entry{
			l(file("file1"), dir("a"), file("a/file2"), dir("b"), dir("c"), file("c/file3")),
			l(wh("", "file1"), wh("a", "file2"), wh("", "b"), file("file4")),
		}, map[string]string{"a": "d0", "c": "d0", "c/file3": "f0", "file4": "f1"}},
	})
}

func TestWhiteoutSameLayerDoesNotHide(t *testing.T) {
	runTreeCases(t, []treeCase{
		{"whiteout before the entry", [][]tarindex.Entry{
			l(file("a", size(1))),
			l(wh("", "a"), file("a", size(2))),
		}, map[string]string{"a": "f1:2"}},
		{"whiteout after the entry", [][]tarindex.Entry{
			l(file("a", size(1))),
			l(file("a", size(2)), wh("", "a")),
		}, map[string]string{"a": "f1:2"}},
		{"whiteout of a directory after its new children", [][]tarindex.Entry{
			l(dir("d"), file("d/old")),
			l(dir("d"), file("d/new"), wh("", "d")),
		}, map[string]string{"d": "d1", "d/new": "f1"}},
		// umoci keeps the lower directory's metadata when the child comes
		// first in the tar and makes a fresh one when the whiteout comes
		// first; the spec says the whiteout acts on the lower layer, so
		// the lower d is gone either way and d is implicit.
		{"whiteout of a directory whose children stay unlisted", [][]tarindex.Entry{
			l(dir("d", mode(0o700)), file("d/old")),
			l(file("d/new"), wh("", "d")),
		}, map[string]string{"d": "d-", "d/new": "f1"}},
		{"whiteout only in the layer of the entry", [][]tarindex.Entry{
			l(wh("", "a")),
			l(file("a")),
		}, map[string]string{"a": "f1"}},
		{"next layer hides it", [][]tarindex.Entry{
			l(file("a"), wh("", "a")),
			l(wh("", "a")),
		}, map[string]string{}},
	})
}

func TestOpaqueMarkerAfterSiblings(t *testing.T) {
	lower := l(dir("a"), dir("a/b"), dir("a/b/c"), file("a/b/c/bar"), file("a/x"), file("keep"))
	runTreeCases(t, []treeCase{
		{"marker after siblings (spec example)", [][]tarindex.Entry{
			lower, l(dir("a"), dir("a/b"), dir("a/b/c"), file("a/b/c/foo"), opq("a")),
		}, map[string]string{"a": "d1", "a/b": "d1", "a/b/c": "d1", "a/b/c/foo": "f1", "keep": "f0"}},
		{"marker before siblings", [][]tarindex.Entry{
			lower, l(dir("a"), opq("a"), dir("a/b"), dir("a/b/c"), file("a/b/c/foo")),
		}, map[string]string{"a": "d1", "a/b": "d1", "a/b/c": "d1", "a/b/c/foo": "f1", "keep": "f0"}},
		{"directory itself and its metadata stay", [][]tarindex.Entry{
			lower, l(opq("a"), file("a/y")),
		}, map[string]string{"a": "d0", "a/y": "f1", "keep": "f0"}},
		{"empty opaque directory", [][]tarindex.Entry{
			lower, l(opq("a")),
		}, map[string]string{"a": "d0", "keep": "f0"}},
		{"root", [][]tarindex.Entry{
			lower, l(opq(""), file("new")),
		}, map[string]string{"new": "f1"}},
		{"missing directory is not created", [][]tarindex.Entry{
			lower, l(opq("nope")),
		}, map[string]string{"a": "d0", "a/b": "d0", "a/b/c": "d0", "a/b/c/bar": "f0", "a/x": "f0", "keep": "f0"}},
		{"on a file does nothing", [][]tarindex.Entry{
			lower, l(opq("keep")),
		}, map[string]string{"a": "d0", "a/b": "d0", "a/b/c": "d0", "a/b/c/bar": "f0", "a/x": "f0", "keep": "f0"}},
		{"only lower layers", [][]tarindex.Entry{
			l(dir("a"), file("a/x")), l(file("a/y"), opq("a")), l(file("a/z")),
		}, map[string]string{"a": "d0", "a/y": "f1", "a/z": "f2"}},
	})
}

func TestAufsMetadataIgnored(t *testing.T) {
	runTreeCases(t, []treeCase{
		{"plnk and aufs", [][]tarindex.Entry{
			l(file("a"), dir("d"), file("d/x")),
			l(dir(".wh..wh.plnk"), file(".wh..wh.plnk/123.456"), file(".wh..wh.aufs"), file("d/.wh..wh.foo")),
		}, map[string]string{"a": "f0", "d": "d0", "d/x": "f0"}},
	})
}

func TestInvalidWhiteout(t *testing.T) {
	runErrCases(t, []errCase{
		{"empty name", [][]tarindex.Entry{l(file(".wh."))}, ErrInvalidWhiteout},
		{"empty name in a directory", [][]tarindex.Entry{l(dir("d"), file("d/.wh."))}, ErrInvalidWhiteout},
		{"dot", [][]tarindex.Entry{l(dir("d"), file("d/.wh.."))}, ErrInvalidWhiteout},
		{"dot dot", [][]tarindex.Entry{l(dir("d"), file("d/.wh..."))}, ErrInvalidWhiteout},
	})
}

func TestWhiteoutNeverInTree(t *testing.T) {
	runTreeCases(t, []treeCase{
		{"whiteout of nothing", [][]tarindex.Entry{
			l(wh("", "a"), opq("d"), wh("d", "x")),
		}, map[string]string{}},
		{"whiteout of any type", [][]tarindex.Entry{
			l(file("a"), file("b"), file("c")),
			l(dir(".wh.a"), sym(".wh.b", "x"), link(".wh.c", "a")),
		}, map[string]string{}},
		{"symlink leading to a whiteout name", [][]tarindex.Entry{
			l(sym("l", ".wh.x/y"), file("l/z")),
		}, map[string]string{"l": "l0->.wh.x/y"}},
	})
}

func TestWhiteoutOfNothing(t *testing.T) {
	runTreeCases(t, []treeCase{
		{"under a lower file", [][]tarindex.Entry{
			l(file("a")), l(wh("a", "b"), opq("a")),
		}, map[string]string{"a": "f0"}},
		{"missing parent is not created", [][]tarindex.Entry{
			l(file("a")), l(wh("m/n", "x")),
		}, map[string]string{"a": "f0"}},
		{"under a path the same layer made a file", [][]tarindex.Entry{
			l(dir("a"), file("a/b")), l(file("a"), wh("a", "b")),
		}, map[string]string{"a": "f1"}},
	})
}

func TestDirOverDirMerges(t *testing.T) {
	tr := mustMerge(t, layers(
		l(dir("a", mode(0o700), owner(1, 1), mtime(5), xattr("user.a", "0")), file("a/x")),
		l(dir("a", mode(0o750), owner(2, 3), mtime(7)), file("a/y")),
	))
	checkTree(t, tr, map[string]string{"a": "d1", "a/x": "f0", "a/y": "f1"})
	a := mustResolve(t, tr, "a")
	if e := a.Entry; e.Mode != 0o750 || e.UID != 2 || e.GID != 3 || e.Mtime != 7 || len(e.Xattrs) != 0 {
		t.Errorf("Lookup(%q) = %+v, want mode 0750, owner 2:3, mtime 7, no xattrs", "a", *e)
	}
}

func TestReplaceRemovesSubtree(t *testing.T) {
	runTreeCases(t, []treeCase{
		{"file over directory", [][]tarindex.Entry{
			l(dir("a"), dir("a/b"), file("a/b/c")), l(file("a")),
		}, map[string]string{"a": "f1"}},
		{"directory over file starts empty", [][]tarindex.Entry{
			l(file("a")), l(dir("a")),
		}, map[string]string{"a": "d1"}},
		{"symlink over directory", [][]tarindex.Entry{
			l(dir("a"), file("a/x"), dir("b")), l(sym("a", "b")),
		}, map[string]string{"a": "l1->b", "b": "d0"}},
		{"directory over symlink", [][]tarindex.Entry{
			l(dir("b"), file("b/x"), sym("a", "b")), l(dir("a")),
		}, map[string]string{"a": "d1", "b": "d0", "b/x": "f0"}},
		{"file over symlink", [][]tarindex.Entry{
			l(file("t"), sym("a", "t")), l(file("a")),
		}, map[string]string{"a": "f1", "t": "f0"}},
		{"device over file", [][]tarindex.Entry{
			l(file("a")), l(chr("a")),
		}, map[string]string{"a": "c1"}},
		{"fifo over directory", [][]tarindex.Entry{
			l(dir("a"), file("a/x")), l(fifo("a")),
		}, map[string]string{"a": "p1"}},
	})
}

func TestSamePathTwiceInLayer(t *testing.T) {
	runTreeCases(t, []treeCase{
		{"file twice", [][]tarindex.Entry{
			l(file("a", size(1)), file("a", size(2))),
		}, map[string]string{"a": "f0:2"}},
		{"directory then file", [][]tarindex.Entry{
			l(dir("a"), file("a/x"), file("a")),
		}, map[string]string{"a": "f0"}},
		{"file then directory", [][]tarindex.Entry{
			l(file("a"), dir("a"), file("a/x")),
		}, map[string]string{"a": "d0", "a/x": "f0"}},
	})
	tr := mustMerge(t, layers(l(dir("a", mode(0o700)), file("a/x"), dir("a", mode(0o711)))))
	if a := mustResolve(t, tr, "a"); a.Entry.Mode != 0o711 || tr.Lookup(a, "x") == nil {
		t.Errorf("Lookup(%q) = mode %o, children %d; want mode 0711 and child x", "a", a.Entry.Mode, len(tr.ReadDir(a)))
	}
}

func TestHardlinkSharesNode(t *testing.T) {
	cases := []struct {
		name   string
		layers [][]tarindex.Entry
		want   map[string]string
		same   [][]string // each group shares one node
		nlink  map[string]uint32
	}{
		{"same layer", [][]tarindex.Entry{
			l(file("a", size(3)), link("b", "a")),
		}, map[string]string{"a": "f0:3", "b": "f0:3"}, [][]string{{"a", "b"}}, map[string]uint32{"a": 2}},
		{"lower target", [][]tarindex.Entry{
			l(file("a", size(3))), l(dir("d"), link("d/b", "a")),
		}, map[string]string{"a": "f0:3", "d": "d1", "d/b": "f0:3"}, [][]string{{"a", "d/b"}}, map[string]uint32{"a": 2}},
		{"three names", [][]tarindex.Entry{
			l(file("a"), link("b", "a"), link("c", "b")),
		}, map[string]string{"a": "f0", "b": "f0", "c": "f0"}, [][]string{{"a", "b", "c"}}, map[string]uint32{"c": 3}},
		{"later layer replaces one name", [][]tarindex.Entry{
			l(file("a", size(1)), link("b", "a")), l(file("a", size(5))),
		}, map[string]string{"a": "f1:5", "b": "f0:1"}, nil, map[string]uint32{"a": 1, "b": 1}},
		{"whiteout of one name", [][]tarindex.Entry{
			l(file("a", size(1)), link("b", "a")), l(wh("", "a")),
		}, map[string]string{"b": "f0:1"}, nil, map[string]uint32{"b": 1}},
		{"link replaces an existing path", [][]tarindex.Entry{
			l(file("a", size(1)), dir("b"), file("b/x")), l(link("b", "a")),
		}, map[string]string{"a": "f0:1", "b": "f0:1"}, [][]string{{"a", "b"}}, map[string]uint32{"a": 2}},
		{"link to a symlink links the symlink", [][]tarindex.Entry{
			l(file("t"), sym("s", "t"), link("h", "s")),
		}, map[string]string{"t": "f0", "s": "l0->t", "h": "l0->t"}, [][]string{{"s", "h"}}, map[string]uint32{"t": 1, "s": 2}},
		{"target parent through a symlink", [][]tarindex.Entry{
			l(dir("d"), file("d/f"), sym("l", "/d"), link("h", "l/f")),
		}, map[string]string{"d": "d0", "d/f": "f0", "l": "l0->/d", "h": "f0"}, [][]string{{"d/f", "h"}}, nil},
		{"device", [][]tarindex.Entry{
			l(chr("c"), link("c2", "c")),
		}, map[string]string{"c": "c0", "c2": "c0"}, [][]string{{"c", "c2"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := mustMerge(t, layers(tc.layers...))
			checkTree(t, tr, tc.want)
			for _, g := range tc.same {
				first := mustResolve(t, tr, g[0])
				for _, p := range g[1:] {
					if n := mustResolve(t, tr, p); n.ID != first.ID {
						t.Errorf("Lookup(%q) = node %d, want node %d of %q", p, n.ID, first.ID, g[0])
					}
				}
			}
			for p, want := range tc.nlink {
				if n := mustResolve(t, tr, p); n.Nlink != want {
					t.Errorf("Lookup(%q).Nlink = %d, want %d", p, n.Nlink, want)
				}
			}
		})
	}
	// The link header's own metadata is ignored.
	lk := link("b", "a")
	lk.Mode, lk.UID = 0o600, 9
	tr := mustMerge(t, layers(l(file("a", mode(0o640))), l(lk)))
	if n := mustResolve(t, tr, "b"); n.Entry.Mode != 0o640 || n.Entry.UID != 0 || n.Layer != 0 {
		t.Errorf("Lookup(%q) = mode %o uid %d layer %d, want the target's 0640, 0, layer 0", "b", n.Entry.Mode, n.Entry.UID, n.Layer)
	}
}

func TestHardlinkMissingTarget(t *testing.T) {
	runErrCases(t, []errCase{
		{"missing", [][]tarindex.Entry{l(link("b", "a"))}, ErrHardlinkTarget},
		{"later in the same layer", [][]tarindex.Entry{l(link("b", "a"), file("a"))}, ErrHardlinkTarget},
		{"whited out by its own layer", [][]tarindex.Entry{l(file("a")), l(link("b", "a"), wh("", "a"))}, ErrHardlinkTarget},
		{"itself", [][]tarindex.Entry{l(file("a")), l(link("a", "a"))}, ErrHardlinkTarget},
		{"under a file", [][]tarindex.Entry{l(file("a"), link("b", "a/x"))}, ErrHardlinkTarget},
		{"directory", [][]tarindex.Entry{l(dir("d"), link("b", "d"))}, ErrHardlinkDir},
		{"root", [][]tarindex.Entry{l(link("b", "."))}, ErrHardlinkDir},
		{"loop in the target's parent", [][]tarindex.Entry{l(sym("x", "y"), sym("y", "x"), link("b", "x/f"))}, ErrSymlinkLoop},
	})
}

func TestSymlinkParentResolvesInRoot(t *testing.T) {
	runTreeCases(t, []treeCase{
		{"relative", [][]tarindex.Entry{
			l(dir("d"), sym("l", "d")), l(file("l/x")),
		}, map[string]string{"d": "d0", "d/x": "f1", "l": "l0->d"}},
		{"absolute is relative to the root", [][]tarindex.Entry{
			l(dir("d"), sym("l", "/d")), l(file("l/x")),
		}, map[string]string{"d": "d0", "d/x": "f1", "l": "l0->/d"}},
		{"dot dot at the root stays at the root", [][]tarindex.Entry{
			l(dir("a"), dir("d"), sym("a/l", "../../../../d")), l(file("a/l/x")),
		}, map[string]string{"a": "d0", "a/l": "l0->../../../../d", "d": "d0", "d/x": "f1"}},
		{"absolute with dot dot", [][]tarindex.Entry{
			l(dir("d"), sym("l", "/../../d/")), l(file("l/x")),
		}, map[string]string{"d": "d0", "d/x": "f1", "l": "l0->/../../d/"}},
		{"chain", [][]tarindex.Entry{
			l(dir("d"), sym("l1", "l2"), sym("l2", "./d")), l(file("l1/x")),
		}, map[string]string{"d": "d0", "d/x": "f1", "l1": "l0->l2", "l2": "l0->./d"}},
		{"symlink from the same layer", [][]tarindex.Entry{
			l(dir("d")), l(sym("l", "d"), file("l/x")),
		}, map[string]string{"d": "d0", "d/x": "f1", "l": "l1->d"}},
		{"relative to the symlink's directory", [][]tarindex.Entry{
			l(dir("a"), dir("a/d"), sym("a/l", "d")), l(file("a/l/x")),
		}, map[string]string{"a": "d0", "a/d": "d0", "a/d/x": "f1", "a/l": "l0->d"}},
		{"dangling symlink creates its target's directories", [][]tarindex.Entry{
			l(sym("l", "m/n"), file("l/x")),
		}, map[string]string{"l": "l0->m/n", "m": "d-", "m/n": "d-", "m/n/x": "f0"}},
		{"missing component then dot dot", [][]tarindex.Entry{
			l(dir("d"), sym("l", "nope/../d"), file("l/x")),
		}, map[string]string{"d": "d0", "d/x": "f0", "l": "l0->nope/../d"}},
		{"to the root", [][]tarindex.Entry{
			l(dir("a"), sym("a/up", ".."), sym("r", "/")), l(file("r/x"), file("a/up/y")),
		}, map[string]string{"a": "d0", "a/up": "l0->..", "r": "l0->/", "x": "f1", "y": "f1"}},
		{"final component is not followed", [][]tarindex.Entry{
			l(dir("d"), sym("l", "d")), l(file("l")),
		}, map[string]string{"d": "d0", "l": "f1"}},
		{"whiteout's parent", [][]tarindex.Entry{
			l(dir("d"), file("d/x"), file("d/y"), sym("l", "d")), l(wh("l", "x")),
		}, map[string]string{"d": "d0", "d/y": "f0", "l": "l0->d"}},
		{"whiteout of the symlink itself", [][]tarindex.Entry{
			l(dir("d"), file("d/x"), sym("l", "d")), l(wh("", "l")),
		}, map[string]string{"d": "d0", "d/x": "f0"}},
		{"opaque through a symlink", [][]tarindex.Entry{
			l(dir("d"), file("d/x"), sym("l", "d")), l(opq("l")),
		}, map[string]string{"d": "d0", "l": "l0->d"}},
		{"symlink to a file", [][]tarindex.Entry{
			l(file("f"), sym("l", "f")), l(file("l/x")),
		}, map[string]string{"f": "d-", "f/x": "f1", "l": "l0->f"}},
	})
}

func TestSymlinkLoop(t *testing.T) {
	runErrCases(t, []errCase{
		{"self", [][]tarindex.Entry{l(sym("l", "l"), file("l/x"))}, ErrSymlinkLoop},
		{"pair", [][]tarindex.Entry{l(sym("a", "b"), sym("b", "/a")), l(file("a/x"))}, ErrSymlinkLoop},
		{"whiteout", [][]tarindex.Entry{l(sym("a", "a/b")), l(wh("a", "x"))}, ErrSymlinkLoop},
	})
	// 255 links are fine, as in securejoin.
	var es []tarindex.Entry
	es = append(es, dir("d"))
	for i := range 255 {
		target := "d"
		if i > 0 {
			target = "s" + itoa(i-1)
		}
		es = append(es, sym("s"+itoa(i), target))
	}
	es = append(es, file("s254/x"))
	tr := mustMerge(t, layers(es))
	if n, err := tr.Resolve("d/x"); err != nil || n == nil {
		t.Errorf("Resolve(%q) = %v, %v; want the file", "d/x", n, err)
	}
}

func itoa(i int) string {
	return string(rune('0'+i/100)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}

func TestImplicitParentDirs(t *testing.T) {
	tr := mustMerge(t, layers(l(file("a/b/c")), l(dir("a", mode(0o700), owner(4, 5), mtime(9)))))
	checkTree(t, tr, map[string]string{"a": "d1", "a/b": "d-", "a/b/c": "f0"})
	b := mustResolve(t, tr, "a/b")
	if e := b.Entry; e.Type != typeDir || e.Mode != 0o755 || e.UID != 0 || e.GID != 0 || e.Mtime != 0 || b.Layer != -1 {
		t.Errorf("Lookup(%q) = %+v layer %d, want implicit directory 0755 0:0 mtime 0 layer -1", "a/b", *e, b.Layer)
	}
	if e := mustResolve(t, tr, "a").Entry; e.Mode != 0o700 || e.UID != 4 || e.Mtime != 9 {
		t.Errorf("Lookup(%q) = %+v, want the later layer's metadata", "a", *e)
	}
	if r := tr.Root(); r.Layer != -1 || r.Entry.Mode != 0o755 {
		t.Errorf("Root() = %+v, want implicit", *r.Entry)
	}
}

func TestNonDirParentReplaced(t *testing.T) {
	runTreeCases(t, []treeCase{
		{"lower file", [][]tarindex.Entry{
			l(file("a")), l(file("a/b")),
		}, map[string]string{"a": "d-", "a/b": "f1"}},
		{"same layer file", [][]tarindex.Entry{
			l(file("a"), file("a/b/c")),
		}, map[string]string{"a": "d-", "a/b": "d-", "a/b/c": "f0"}},
		{"device", [][]tarindex.Entry{
			l(chr("a")), l(dir("a/d")),
		}, map[string]string{"a": "d-", "a/d": "d1"}},
		{"hardlinked file keeps its other name", [][]tarindex.Entry{
			l(file("a"), link("b", "a")), l(file("a/x")),
		}, map[string]string{"a": "d-", "a/x": "f1", "b": "f0"}},
	})
}

func TestRootEntry(t *testing.T) {
	tr := mustMerge(t, layers(l(dir(".", mode(0o700), owner(5, 6))), l(file("."), sym(".", "x"), file("a"))))
	checkTree(t, tr, map[string]string{"a": "f1"})
	if r := tr.Root(); r.Layer != 0 || r.Entry.Mode != 0o700 || r.Entry.UID != 5 || r.ID != 1 {
		t.Errorf("Root() = %+v layer %d, want layer 0's directory", *r.Entry, r.Layer)
	}
}

func TestXattrsOverlayDropped(t *testing.T) {
	in := l(
		file("both", xattr("trusted.overlay.opaque", "y"), xattr("user.keep", "1")),
		dir("only", xattr("trusted.overlay.redirect", "/x")),
		file("plain", xattr("security.capability", "c")),
		file("none"),
	)
	before := slices.Clone(in[0].Xattrs)
	tr := mustMerge(t, layers(in))
	if !tr.HasXattrs() {
		t.Errorf("HasXattrs() = false, want true")
	}
	if got := mustResolve(t, tr, "both").Entry.Xattrs; !slices.Equal(got, []tarindex.Xattr{{Key: "user.keep", Value: "1"}}) {
		t.Errorf("Lookup(%q).Xattrs = %v, want only user.keep", "both", got)
	}
	if got := mustResolve(t, tr, "only").Entry.Xattrs; got != nil {
		t.Errorf("Lookup(%q).Xattrs = %v, want none", "only", got)
	}
	if got := mustResolve(t, tr, "plain").Entry; !sameEntry(got, &in[2]) {
		t.Errorf("Lookup(%q).Entry = %+v, want the layer's entry %+v", "plain", *got, in[2])
	}
	if !slices.Equal(in[0].Xattrs, before) {
		t.Errorf("input entry changed: %v, want %v", in[0].Xattrs, before)
	}
	if tr := mustMerge(t, layers(l(dir("only", xattr("trusted.overlay.opaque", "y"))))); tr.HasXattrs() {
		t.Errorf("HasXattrs() = true with only trusted.overlay.*, want false")
	}
}

func TestPathsNormalised(t *testing.T) {
	var tl tartest.Layer
	tl.Dir("./").File("./a", []byte("1")).File("/b", nil).File("c//d", nil).File("../../e", nil).
		File("x/../f", nil).Hardlink("g", "/./a").Whiteout("./", "gone")
	tr := mustMerge(t, layers(l(file("gone")), fromTar(t, tl.Tar())))
	checkTree(t, tr, map[string]string{"a": "f1:1", "b": "f1", "c": "d-", "c/d": "f1", "e": "f1", "f": "f1", "g": "f1:1"})
	if tr.Root().Layer != 1 {
		t.Errorf("Root().Layer = %d, want 1 from \"./\"", tr.Root().Layer)
	}
	// Merge cleans what tarindex did not (entries made by hand).
	tr = mustMerge(t, layers(l(file("a/../b", size(1)), file("/c/"), dir("./d//e/."), link("f", "../../b"), file("..")),
		l(file("./.wh.c"))))
	checkTree(t, tr, map[string]string{"b": "f0:1", "d": "d-", "d/e": "d0", "f": "f0:1"})
}

func TestUnsupportedType(t *testing.T) {
	bad := file("a")
	bad.Type = 'V'
	runErrCases(t, []errCase{{"volume header", [][]tarindex.Entry{l(bad)}, ErrUnsupportedType}})
}

func TestIDsStable(t *testing.T) {
	ls := layers(
		l(dir("z"), file("z/1"), dir("a"), file("a/2"), file("b"), link("c", "b")),
		l(file("a/0"), wh("", "z"), dir("m")),
	)
	ids := func() map[string]uint64 {
		tr := mustMerge(t, ls)
		m := map[string]uint64{}
		tr.Walk(func(name string, n *Node) error { m[name] = n.ID; return nil })
		return m
	}
	first := ids()
	want := map[string]uint64{".": 1, "a": 2, "b": 3, "c": 3, "m": 4, "a/0": 5, "a/2": 6}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("Lookup(%q).ID = %d, want %d", k, first[k], v)
		}
	}
	for range 5 {
		if again := ids(); !mapsEqual(first, again) {
			t.Fatalf("IDs differ between merges: %v vs %v", first, again)
		}
	}
	tr := mustMerge(t, ls)
	if tr.Node(0) != nil || tr.Node(uint64(tr.Len())+1) != nil || tr.Node(uint64(tr.Len())) == nil {
		t.Errorf("Node() out of range handling wrong for Len() = %d", tr.Len())
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestResolve(t *testing.T) {
	tr := mustMerge(t, layers(l(dir("d"), file("d/f"), sym("l", "/d"), sym("up", "../.."), sym("loop", "loop"))))
	for _, tc := range []struct {
		path string
		want string
		err  error
	}{
		{"", "d-", nil},
		{"/", "d-", nil},
		{"d/f", "f0", nil},
		{"l", "l0->/d", nil},
		{"l/f", "f0", nil},
		{"/up/up/d/./f", "f0", nil},
		{"d/../../d/f", "f0", nil},
		{"nope", "", iofs.ErrNotExist},
		{"d/f/x", "", ErrNotDir},
		{"loop/x", "", ErrSymlinkLoop},
	} {
		n, err := tr.Resolve(tc.path)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Resolve(%q) = %v, %v; want error %v", tc.path, desc(n), err, tc.err)
			}
			continue
		}
		if err != nil || desc(n) != tc.want {
			t.Errorf("Resolve(%q) = %v, %v; want %v", tc.path, desc(n), err, tc.want)
		}
	}
}

func TestResolvePathFollowsLastLikeStat(t *testing.T) {
	chain := l(dir("d"), file("d/f"), sym("l", "/d/f"), sym("dl", "d"), sym("loop", "loop"))
	// c0 -> c1 -> ... -> c40 -> d/f: 41 links, one past Linux's limit.
	for i := 0; i <= 40; i++ {
		target := fmt.Sprintf("c%d", i+1)
		if i == 40 {
			target = "d/f"
		}
		chain = append(chain, sym(fmt.Sprintf("c%d", i), target))
	}
	tr := mustMerge(t, layers(chain))
	for _, tc := range []struct {
		path     string
		follow   bool
		want     string
		wantPath string
		err      error
	}{
		{"l", false, "l0->/d/f", "l", nil},
		{"l", true, "f0", "d/f", nil},
		{"dl/", false, "d0", "d", nil},
		{"dl/f", false, "f0", "d/f", nil},
		{"/", true, "d-", ".", nil},
		{"c1", true, "f0", "d/f", nil},
		{"c0", true, "", "", ErrSymlinkLoop},
		{"c0", false, "l0->c1", "c0", nil},
		{"loop", true, "", "", ErrSymlinkLoop},
	} {
		n, p, err := tr.ResolvePath(tc.path, tc.follow)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ResolvePath(%q, %v) = %v, %q, %v; want error %v", tc.path, tc.follow, desc(n), p, err, tc.err)
			}
			continue
		}
		if err != nil || desc(n) != tc.want || p != tc.wantPath {
			t.Errorf("ResolvePath(%q, %v) = %v, %q, %v; want %v, %q", tc.path, tc.follow, desc(n), p, err, tc.want, tc.wantPath)
		}
	}
}

// TestOwnDirectoryOverLowerSymlink is issue 16's class: a layer that
// replaces a lower symlink with a directory of its own and puts
// whiteouts, an opaque marker, entries or hardlink targets under it.
// The paths are the layer's own (layer.md, "Whiteouts"), so nothing of
// the symlink's target may change; umoci and an overlayfs stack of the
// unpacked layers agree (integration's TestOverlayMatchesUmoci covers
// the sorted orders with umoci).
func TestOwnDirectoryOverLowerSymlink(t *testing.T) {
	lower := l(dir("d"), file("d/x"), file("d/z"), sym("l", "d"))
	runTreeCases(t, []treeCase{
		{"opaque under the new directory", [][]tarindex.Entry{
			lower, l(dir("l"), opq("l"), file("l/y")),
		}, map[string]string{"d": "d0", "d/x": "f0", "d/z": "f0", "l": "d1", "l/y": "f1"}},
		{"opaque before the directory in the tar", [][]tarindex.Entry{
			lower, l(opq("l"), dir("l"), file("l/y")),
		}, map[string]string{"d": "d0", "d/x": "f0", "d/z": "f0", "l": "d1", "l/y": "f1"}},
		{"whiteout under the new directory", [][]tarindex.Entry{
			lower, l(dir("l"), wh("l", "x"), file("l/y")),
		}, map[string]string{"d": "d0", "d/x": "f0", "d/z": "f0", "l": "d1", "l/y": "f1"}},
		{"deeper: a directory of the layer under a lower directory", [][]tarindex.Entry{
			l(dir("d"), file("d/x"), dir("a"), sym("a/l", "../d")),
			l(dir("a"), dir("a/l"), opq("a/l")),
		}, map[string]string{"a": "d1", "a/l": "d1", "d": "d0", "d/x": "f0"}},
		{"merged-usr base", [][]tarindex.Entry{
			l(dir("usr"), dir("usr/lib"), file("usr/lib/libc.so"), sym("lib", "usr/lib")),
			l(dir("lib"), opq("lib"), file("lib/own")),
		}, map[string]string{"usr": "d0", "usr/lib": "d0", "usr/lib/libc.so": "f0", "lib": "d1", "lib/own": "f1"}},
		{"entry before its directory in the tar", [][]tarindex.Entry{
			lower, l(file("l/y"), dir("l")),
		}, map[string]string{"d": "d0", "d/x": "f0", "d/z": "f0", "l": "d1", "l/y": "f1"}},
		{"implicit parent still follows the lower symlink", [][]tarindex.Entry{
			lower, l(opq("l"), file("l/y")),
		}, map[string]string{"d": "d0", "d/y": "f1", "l": "l0->d"}},
		{"whiteout through a lower symlink to a directory of the layer", [][]tarindex.Entry{
			l(dir("d"), file("d/x"), sym("d/s", "/e"), dir("e"), file("e/q"), sym("l", "d")),
			l(dir("d"), dir("d/s"), wh("l/s", "q")),
		}, map[string]string{"d": "d1", "d/s": "d1", "d/x": "f0", "e": "d0", "e/q": "f0", "l": "l0->d"}},
		{"symlink of the layer's own is followed", [][]tarindex.Entry{
			l(dir("d"), file("d/x"), dir("e"), file("e/x")),
			l(sym("d", "e"), wh("d", "x")),
		}, map[string]string{"d": "l1->e", "e": "d0"}},
		{"file over a lower symlink", [][]tarindex.Entry{
			lower, l(file("l"), wh("l", "x")),
		}, map[string]string{"d": "d0", "d/x": "f0", "d/z": "f0", "l": "f1"}},
		// The three below were found by the model test; umoci 0.4.7
		// leaves these trees.
		{"whiteout through a hardlinked symlink", [][]tarindex.Entry{
			l(dir("d"), file("d/g"), file("d/k"), sym("s", "d")), l(link("h", "s"), wh("h", "g")),
		}, map[string]string{"d": "d0", "d/k": "f0", "s": "l0->d", "h": "l0->d"}},
		{"entry through a hardlinked symlink", [][]tarindex.Entry{
			l(dir("d"), sym("s", "d")), l(link("h", "s"), file("h/x")),
		}, map[string]string{"d": "d0", "d/x": "f1", "s": "l0->d", "h": "l0->d"}},
		{"entry moved by its parent becoming a symlink", [][]tarindex.Entry{
			l(dir("b"), sym("b/b", "c")), l(dir("a"), dir("a/b"), sym("a", "../b"), file("a/b/g")),
		}, map[string]string{"a": "l1->../b", "b": "d0", "b/b": "l0->c", "b/c": "d-", "b/c/g": "f1"}},
		{"whiteout through a symlink in a new directory", [][]tarindex.Entry{
			l(dir("d"), file("d/x"), file("d/y")), l(dir("c"), sym("c/l", "../d"), wh("c/l", "x")),
		}, map[string]string{"c": "d1", "c/l": "l1->../d", "d": "d0", "d/y": "f0"}},
		{"entry under a file that replaces a lower symlink", [][]tarindex.Entry{
			lower, l(file("l/y"), file("l")),
		}, map[string]string{"d": "d0", "d/x": "f0", "d/z": "f0", "l": "f1"}},
	})
	runErrCases(t, []errCase{
		// The link comes before the layer's own l/x: at that point
		// the layer's l is a new, empty directory.
		{"hardlink into the new directory before its target", [][]tarindex.Entry{
			lower, l(link("h", "l/x"), dir("l"), file("l/x")),
		}, ErrHardlinkTarget},
	})
}
