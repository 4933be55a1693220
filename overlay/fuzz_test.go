package overlay

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/ocifs/ocifs/tarindex"
)

// Names and symlink targets the fuzzer combines: nested paths, whiteout
// and opaque names, aufs metadata, dot-dots, absolute targets and names
// under symlinks, and a few names tarindex would have cleaned.
var (
	fuzzNames = []string{
		".", "a", "b", "a/b", "a/b/c", "b/a", "l", "a/l", "l/x", "l/y/z",
		".wh.a", "a/.wh.b", "l/.wh.x", ".wh..wh..opq", "a/.wh..wh..opq",
		"l/.wh..wh..opq", ".wh..wh.plnk", ".wh.", "a/.wh..", "m/n/o",
		// Not clean, as no tarindex would deliver them: Merge cleans.
		"a/../b", "/x", "./y/", "a//b", "..", "a/./c", "",
	}
	fuzzTargets = []string{
		"a", "/a", "..", "../..", "/", "l", "a/b", "nope/../a", "./b",
		".wh.x", "l/x", "a/l", "/../../b/", "",
	}
)

// layersFromBytes turns fuzz input into layers, three bytes per entry:
// kind, name, target.
func layersFromBytes(data []byte) []Layer {
	var ls []Layer
	var cur []tarindex.Entry
	for len(data) >= 3 {
		kind, n, tg := data[0], fuzzNames[int(data[1])%len(fuzzNames)], fuzzTargets[int(data[2])%len(fuzzTargets)]
		data = data[3:]
		switch kind % 10 {
		case 0:
			cur = append(cur, file(n, size(int64(len(tg)))))
		case 1:
			cur = append(cur, dir(n, mode(uint32(kind))))
		case 2:
			cur = append(cur, sym(n, tg))
		case 3:
			cur = append(cur, link(n, tg))
		case 4:
			cur = append(cur, chr(n))
		case 5:
			cur = append(cur, wh(splitName(n)))
		case 6:
			d, _ := splitName(n)
			cur = append(cur, opq(d))
		case 7:
			cur = append(cur, file(n, xattr("trusted.overlay.opaque", "y"), xattr("user."+tg, "v")))
		case 8:
			cur = append(cur, fifo(n))
		default:
			ls = append(ls, Layer{Entries: cur})
			cur = nil
		}
	}
	return append(ls, Layer{Entries: cur})
}

func FuzzMerge(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 3, 0, 9, 0, 0, 5, 10, 0})
	f.Add([]byte{2, 6, 0, 0, 8, 0, 9, 0, 0, 6, 16, 0, 0, 8, 0})
	f.Add([]byte{2, 6, 5, 0, 8, 0})
	f.Add([]byte{1, 1, 0, 0, 2, 0, 3, 7, 0, 9, 0, 0, 6, 14, 0, 7, 3, 2})
	f.Add([]byte{2, 6, 3, 1, 1, 0, 0, 9, 0, 2, 5, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		ls := layersFromBytes(data)
		tr, err := Merge(ls, Options{})
		if err != nil {
			for _, want := range []error{ErrInvalidWhiteout, ErrHardlinkTarget, ErrHardlinkDir, ErrSymlinkLoop} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("Merge: unexpected error %v", err)
		}
		checkInvariants(t, tr)
		checkSameTree(t, decodeCopy(t, tr), tr)
		// Every walked path resolves to its node: no name is reachable
		// only by leaving the root.
		tr.Walk(func(name string, n *Node) error {
			if got, err := tr.Resolve(name); err != nil || !sameNode(got, n) {
				t.Errorf("Resolve(%q) = %v, %v; want node %d", name, desc(got), err, n.ID)
			}
			return nil
		})
	})
}

// FuzzDecodeTree feeds Decode arbitrary bytes, seeded with encodings of
// small merged trees (the FuzzMerge seeds, smallTree and a tree with
// every entry field). Each input is tried as it is and with its
// checksum recomputed: a random change almost never survives the
// CRC-32C, so only the second reaches the checks behind it. Whatever
// Decode accepts must be safe to use: walking the whole tree, Lookup of
// every name, ReadDir, Node of every ID and Resolve of every path must
// not panic or loop, and must agree with each other.
func FuzzDecodeTree(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{1, 1, 0, 0, 3, 0, 9, 0, 0, 5, 10, 0},
		{2, 6, 0, 0, 8, 0, 9, 0, 0, 6, 16, 0, 0, 8, 0},
		{1, 1, 0, 0, 2, 0, 3, 7, 0, 9, 0, 0, 6, 14, 0, 7, 3, 2},
		{2, 6, 3, 1, 1, 0, 0, 9, 0, 2, 5, 0},
	} {
		tr, err := Merge(layersFromBytes(seed), Options{})
		if err != nil {
			continue // a FuzzMerge seed for an error
		}
		b, _ := tr.MarshalBinary()
		f.Add(b)
	}
	f.Add(smallTree(f))
	dev := tarindex.Entry{Name: "d/c", Type: '3', Devmajor: 1, Devminor: 3, UID: -1, GID: math.MaxUint32 + 1, Mode: 1 << 20}
	sparse := file("d/s", size(100), xattr("user.x", "y"))
	sparse.Sparse = []tarindex.SparseRegion{{Offset: 10, Length: 5}, {Offset: 50, Length: 50}}
	every, err := Merge(layers(l(dir("d"), dev, sparse, sym("d/l", "/d/s"), sym("up", "../d/l"))), Options{})
	if err != nil {
		f.Fatalf("Merge: %v", err)
	}
	b, _ := every.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		useDecoded(t, data)
		useLazy(t, data)
		fixed := bytes.Clone(data)
		fixCRC(fixed)
		useDecoded(t, fixed)
		useLazy(t, fixed)
	})
}

// useLazy decodes b with DecodeLazy and uses every part of the tree it
// can reach: nothing may panic or loop, every error must wrap
// ErrCorrupt, and where Decode accepts b the lazy tree must give the
// same answers without error.
func useLazy(t *testing.T, b []byte) {
	eager, eagerErr := Decode(b)
	tr, err := DecodeLazy(b)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Fatalf("DecodeLazy: error %v matches neither ErrCorrupt nor ErrVersion", err)
		}
		if eagerErr == nil {
			t.Fatalf("DecodeLazy = %v, Decode accepts the same bytes", err)
		}
		return
	}
	ok := func(err error) {
		t.Helper()
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("lazy tree: error %v does not wrap ErrCorrupt", err)
		}
		if err != nil && eagerErr == nil {
			t.Fatalf("lazy tree: %v, but Decode accepts the bytes", err)
		}
	}
	// Walk first, then every node by ID in reverse: the lazy checks
	// meet the nodes in two different orders.
	walked := 0
	ok(tr.Walk(func(name string, n *Node) error {
		walked++
		_, err := tr.Resolve(name)
		ok(err)
		_, _, err = tr.ResolvePath(name+"/../x", true)
		if err != nil && !errors.Is(err, ErrNotExist) && !errors.Is(err, ErrNotDir) && !errors.Is(err, ErrSymlinkLoop) {
			ok(err)
		}
		return nil
	}))
	for id := uint64(tr.Len()); id >= 1; id-- {
		n, err := tr.NodeChecked(id)
		ok(err)
		if n == nil {
			continue
		}
		des, err := tr.ReadDirChecked(n)
		ok(err)
		for _, de := range des {
			got, err := tr.LookupChecked(n, de.Name)
			ok(err)
			if got == nil || got.ID != de.Node.ID {
				t.Fatalf("lazy Lookup(node %d, %q) = %v, want node %d", id, de.Name, got, de.Node.ID)
			}
		}
		if eager != nil {
			if got, want := desc(n), desc(eager.Node(id)); got != want {
				t.Fatalf("lazy Node(%d) = %s, Decode's is %s", id, got, want)
			}
			if got, want := len(des), len(eager.ReadDir(n)); got != want {
				t.Fatalf("lazy ReadDir(node %d) has %d names, Decode's %d", id, got, want)
			}
		}
	}
	if eager != nil {
		if tr.Err() != nil {
			t.Fatalf("lazy tree Err() = %v, Decode accepts the bytes", tr.Err())
		}
		want := 0
		eager.Walk(func(string, *Node) error { want++; return nil })
		if walked != want {
			t.Fatalf("lazy Walk visited %d names, Decode's tree %d", walked, want)
		}
	}
}

// useDecoded decodes b and, if Decode accepts it, uses every part of the
// tree.
func useDecoded(t *testing.T, b []byte) {
	tr, err := Decode(b)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Fatalf("Decode: error %v matches neither ErrCorrupt nor ErrVersion", err)
		}
		return
	}
	if enc, _ := tr.MarshalBinary(); !bytes.Equal(enc, b) {
		t.Fatalf("MarshalBinary() differs from the decoded bytes")
	}
	if r := tr.Root(); r == nil || r.ID != 1 || !r.IsDir() {
		t.Fatalf("Root() = %+v, want directory 1", r)
	}
	names := 0
	for id := uint64(1); id <= uint64(tr.Len()); id++ {
		n := tr.Node(id)
		if n == nil || n.ID != id || n.Layer < -1 || n.Layer >= tr.Layers() {
			t.Fatalf("Node(%d) = %+v with %d layers", id, n, tr.Layers())
		}
		for _, de := range tr.ReadDir(n) {
			names++
			if got := tr.Lookup(n, de.Name); got == nil || got.ID != de.Node.ID {
				t.Fatalf("Lookup(node %d, %q) = %v, want node %d", id, de.Name, got, de.Node.ID)
			}
		}
		tr.Lookup(n, "nope")
	}
	visits := 0
	err = tr.Walk(func(name string, n *Node) error {
		visits++
		// Walk only descends into directories, so name resolves to n
		// without following anything.
		if got, err := tr.Resolve(name); err != nil || got.ID != n.ID {
			t.Fatalf("Resolve(%q) = %v, %v; want node %d", name, got, err, n.ID)
		}
		tr.ResolvePath(name, true)
		tr.ResolvePath(name+"/x/..", false)
		return nil
	})
	if err != nil || visits != names+1 {
		t.Fatalf("Walk() = %v after %d names, want %d", err, visits, names+1)
	}
}
