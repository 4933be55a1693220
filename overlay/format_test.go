package overlay

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/ocifs/ocifs/tarindex"
)

// checkSameTree compares two trees node for node: every record, every
// directory's names and IDs, and the header facts.
func checkSameTree(t testing.TB, got, want *Tree) {
	t.Helper()
	if got.Len() != want.Len() || got.Layers() != want.Layers() || got.HasXattrs() != want.HasXattrs() {
		t.Fatalf("tree: Len %d, Layers %d, HasXattrs %v; want %d, %d, %v",
			got.Len(), got.Layers(), got.HasXattrs(), want.Len(), want.Layers(), want.HasXattrs())
	}
	for id := uint64(1); id <= uint64(want.Len()); id++ {
		g, w := got.Node(id), want.Node(id)
		if !sameNode(g, w) {
			t.Errorf("Node(%d) = %+v %+v, want %+v %+v", id, g, g.Entry, w, w.Entry)
			continue
		}
		gk, wk := got.ReadDir(g), want.ReadDir(w)
		if len(gk) != len(wk) {
			t.Errorf("ReadDir(node %d) has %d names, want %d", id, len(gk), len(wk))
			continue
		}
		for i := range wk {
			if gk[i].Name != wk[i].Name || gk[i].Node.ID != wk[i].Node.ID {
				t.Errorf("ReadDir(node %d)[%d] = %q %d, want %q %d", id, i, gk[i].Name, gk[i].Node.ID, wk[i].Name, wk[i].Node.ID)
			}
		}
	}
}

// decodeCopy decodes a copy of tr's encoding, so that nothing of the
// original can leak into the result.
func decodeCopy(t testing.TB, tr *Tree) *Tree {
	t.Helper()
	b, err := tr.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	d, err := Decode(bytes.Clone(b))
	if err != nil {
		t.Fatalf("Decode(MarshalBinary()): %v", err)
	}
	return d
}

func TestDecodeRoundTripModel(t *testing.T) {
	seeds := 1000
	if testing.Short() {
		seeds = 200
	}
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	base := h.Sum64()
	merged := 0
	for s := range seeds {
		ls := genStack(rand.New(rand.NewPCG(base, uint64(s))))
		tr, err := Merge(ls, Options{})
		if err != nil {
			continue
		}
		merged++
		d := decodeCopy(t, tr)
		checkSameTree(t, d, tr)
		checkInvariants(t, d)
		// The decoded tree is still the merge of ls.
		want, _ := refApply(ls)
		if msg := compareRef(d, want); msg != "" {
			t.Fatalf("seed %d: decoded tree: %s\n%s", s, msg, dumpLayers(ls))
		}
	}
	if merged < seeds/2 {
		t.Errorf("%d of %d stacks merged", merged, seeds)
	}
}

func TestMergeDeterministic(t *testing.T) {
	// rootfs relies on it: two processes merging one stack write the
	// same cache file.
	a, _ := mustMerge(t, stack100k(true)).MarshalBinary()
	b, _ := mustMerge(t, stack100k(true)).MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Errorf("two merges of one stack encode differently (%d and %d bytes)", len(a), len(b))
	}
}

// TestEntryFieldsRoundTrip merges one entry per vector and checks that
// every field of tarindex.Entry comes back, through Merge and through
// Decode, including values tarindex never produces (Merge takes any
// entry).
func TestEntryFieldsRoundTrip(t *testing.T) {
	full := tarindex.Entry{
		Name: "x", Type: tar.TypeReg, Mode: 0o4755, UID: 1000, GID: 100,
		Size: 1 << 40, Mtime: 1700000000, MtimeNsec: 123456789, Offset: 1<<33 + 512,
		Xattrs: []tarindex.Xattr{{Key: "security.capability", Value: "\x01\x00\x00\x02"}, {Key: "user.a", Value: ""}},
		Sparse: []tarindex.SparseRegion{{Offset: 0, Length: 4096}, {Offset: 1 << 30, Length: 1}},
	}
	with := func(f func(e *tarindex.Entry)) tarindex.Entry {
		e := full
		f(&e)
		return e
	}
	for _, tc := range []struct {
		name string
		in   tarindex.Entry
		want tarindex.Entry // zero: same as in
	}{
		{"every field", full, tarindex.Entry{}},
		{"plain file", file("x", size(3)), tarindex.Entry{}},
		{"symlink", sym("x", "../some/where"), tarindex.Entry{}},
		{"character device", with(func(e *tarindex.Entry) {
			e.Type, e.Devmajor, e.Devminor, e.Size, e.Sparse = tar.TypeChar, math.MaxUint32, 1, 0, nil
		}), tarindex.Entry{}},
		{"block device minor only", with(func(e *tarindex.Entry) { e.Type, e.Devmajor, e.Devminor = tar.TypeBlock, 0, 7 }), tarindex.Entry{}},
		{"fifo", fifo("x"), tarindex.Entry{}},
		{"regA", with(func(e *tarindex.Entry) { e.Type = tar.TypeRegA }), tarindex.Entry{}},
		{"largest record owner", with(func(e *tarindex.Entry) { e.UID, e.GID, e.Mode = math.MaxUint32, math.MaxUint32, math.MaxUint16 }), tarindex.Entry{}},
		{"negative owner", with(func(e *tarindex.Entry) { e.UID, e.GID = -1, -2 }), tarindex.Entry{}},
		{"wide owner", with(func(e *tarindex.Entry) { e.UID, e.GID = math.MaxUint32+1, math.MaxInt }), tarindex.Entry{}},
		{"wide mode", with(func(e *tarindex.Entry) { e.Mode = math.MaxUint32 }), tarindex.Entry{}},
		{"extreme numbers", with(func(e *tarindex.Entry) {
			e.Size, e.Mtime, e.MtimeNsec, e.Offset = math.MaxInt64, math.MinInt64, 999999999, -1
		}), tarindex.Entry{}},
		{"odd sparse map", with(func(e *tarindex.Entry) {
			e.Sparse = []tarindex.SparseRegion{{Offset: 50, Length: -3}, {Offset: math.MinInt64, Length: math.MaxInt64}, {Offset: 7, Length: 0}}
		}), tarindex.Entry{}},
		{"overlay xattrs dropped", with(func(e *tarindex.Entry) {
			e.Xattrs = []tarindex.Xattr{{Key: "trusted.overlay.opaque", Value: "y"}, {Key: "user.k", Value: "v"}}
		}), with(func(e *tarindex.Entry) { e.Xattrs = []tarindex.Xattr{{Key: "user.k", Value: "v"}} })},
		{"empty xattrs are nil", with(func(e *tarindex.Entry) {
			e.Xattrs = []tarindex.Xattr{}
		}), with(func(e *tarindex.Entry) { e.Xattrs = nil })},
		// A sparse file that is all hole has a map without regions;
		// read as a plain file, its Size bytes would be looked for in
		// the tar stream, where it stored none.
		{"all-hole sparse map stays", with(func(e *tarindex.Entry) { e.Sparse = []tarindex.SparseRegion{} }), tarindex.Entry{}},
		{"name other than the path", with(func(e *tarindex.Entry) { e.Name = "./x" }), tarindex.Entry{}},
		{"name past 64 KiB", with(func(e *tarindex.Entry) { e.Name = string(bytes.Repeat([]byte("n"), 70000)) }), tarindex.Entry{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want.Name == "" {
				want = tc.in
			}
			tr := mustMerge(t, layers(l(tc.in)))
			for _, tree := range []*Tree{tr, decodeCopy(t, tr)} {
				n := tree.Lookup(tree.Root(), "x")
				if n == nil {
					p := cleanName(want.Name)
					n = mustResolve(t, tree, p)
				}
				if !sameEntry(n.Entry, &want) {
					t.Errorf("Lookup(%q).Entry = %+v, want %+v", "x", *n.Entry, want)
				}
				if n.Layer != 0 || n.Nlink != 1 {
					t.Errorf("Lookup(%q) = layer %d nlink %d, want 0, 1", "x", n.Layer, n.Nlink)
				}
			}
		})
	}
}

func TestNodesAreFresh(t *testing.T) {
	tr := mustMerge(t, layers(l(dir("d", xattr("user.a", "1")), file("d/f"))))
	a, b := tr.Node(2), tr.Node(2)
	if a == b || a.Entry == b.Entry {
		t.Fatalf("Node(2) twice gave one pointer; nodes must be decoded per call")
	}
	a.Entry.Mode, a.Entry.Xattrs[0].Value = 0, "changed"
	if c := tr.Node(2); c.Entry.Mode != 0o755 || c.Entry.Xattrs[0].Value != "1" {
		t.Errorf("changing a returned Node changed the tree: %+v", *c.Entry)
	}
}

// TestDecodeZeroCopy proves that decoded names are substrings of the
// encoding, not copies.
func TestDecodeZeroCopy(t *testing.T) {
	b, _ := mustMerge(t, layers(l(dir("dir"), file("dir/file"), sym("dir/s", "file")))).MarshalBinary()
	b = bytes.Clone(b)
	tr, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	inside := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		return p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(b))
	}
	n := mustResolve(t, tr, "dir/s")
	des := tr.ReadDir(mustResolve(t, tr, "dir"))
	for _, s := range []string{n.Entry.Name, n.Entry.Linkname, des[0].Name} {
		if !inside(s) {
			t.Errorf("string %q is not in the encoding", s)
		}
	}
}

func TestNodeAllocations(t *testing.T) {
	tr := mustMerge(t, stack100k(false))
	dir := mustResolve(t, tr, "usr03/lib2/pkg4")
	name := tr.ReadDir(dir)[40].Name
	for _, tc := range []struct {
		name string
		fn   func()
		max  float64
	}{
		// One allocation holds the Node and its Entry.
		{"Node", func() { tr.Node(12345) }, 1},
		{"Lookup", func() { tr.Lookup(dir, name) }, 1},
		{"Lookup miss", func() { tr.Lookup(dir, "nope") }, 0},
	} {
		if got := testing.AllocsPerRun(100, tc.fn); got > tc.max {
			t.Errorf("%s: %v allocations, want <= %v", tc.name, got, tc.max)
		}
	}
}

// Layout helpers for crafting encodings.

func recAt(b []byte, id uint64) []byte { return b[headerSize+int(id-1)*recSize:][:recSize] }

func direntAt(b []byte, i int) []byte {
	n := int(le.Uint32(b[hNodes:]))
	return b[headerSize+n*recSize+i*direntSize:][:direntSize]
}

func extraAt(b []byte, off uint32) []byte {
	n, d := int(le.Uint32(b[hNodes:])), int(le.Uint32(b[hDirents:]))
	return b[headerSize+n*recSize+d*direntSize+int(off):]
}

// fixCRC recomputes the block checksums and the trailer of an encoding
// whose sections still add up; others are left as they are.
func fixCRC(b []byte) {
	if len(b) < headerSize+trailerSize {
		return
	}
	body := uint64(headerSize) + uint64(le.Uint32(b[hNodes:]))*recSize + uint64(le.Uint32(b[hDirents:]))*direntSize +
		uint64(le.Uint32(b[hExtraLen:])) + uint64(le.Uint32(b[hNamesLen:]))
	nb := (body + blockSize - 1) >> blockShift
	if body+4*nb+trailerSize != uint64(len(b)) {
		return
	}
	for i := range int(nb) {
		le.PutUint32(b[int(body)+4*i:], crc32.Checksum(b[i<<blockShift:min((i+1)<<blockShift, int(body))], castagnoli))
	}
	le.PutUint32(b[len(b)-trailerSize:], crc32.Checksum(b[body:len(b)-trailerSize], castagnoli))
}

// smallTree has a directory, a file with an xattr, a symlink and a
// hardlink; the IDs are: / 1, d 2, h=z 3, s 4, d/f 5; the dirents: d h
// s z at 0-3, d/f at 4.
func smallTree(t testing.TB) []byte {
	t.Helper()
	tr := mustMerge(t, layers(l(dir("d"), file("d/f", xattr("user.a", "1")), sym("s", "d/f"), file("z"), link("h", "z"))))
	for p, id := range map[string]uint64{".": 1, "d": 2, "h": 3, "z": 3, "s": 4, "d/f": 5} {
		if n, err := tr.Resolve(p); err != nil || n.ID != id {
			t.Fatalf("smallTree: Resolve(%q) = %v, %v; want node %d", p, n, err, id)
		}
	}
	b, _ := tr.MarshalBinary()
	return bytes.Clone(b)
}

func TestDecodeCorrupt(t *testing.T) {
	u32 := func(off int, v uint32) func(b []byte) []byte {
		return func(b []byte) []byte { le.PutUint32(b[off:], v); return b }
	}
	rec32 := func(id uint64, field int, v uint32) func(b []byte) []byte {
		return func(b []byte) []byte { le.PutUint32(recAt(b, id)[field:], v); return b }
	}
	recByte := func(id uint64, field int, v byte) func(b []byte) []byte {
		return func(b []byte) []byte { recAt(b, id)[field] = v; return b }
	}
	dirent32 := func(i, field int, v uint32) func(b []byte) []byte {
		return func(b []byte) []byte { le.PutUint32(direntAt(b, i)[field:], v); return b }
	}
	for _, tc := range []struct {
		name   string
		mutate func(b []byte) []byte
		fixCRC bool // craft a valid checksum, so that the check behind it is reached
		want   error
	}{
		{"empty", func(b []byte) []byte { return nil }, false, ErrCorrupt},
		{"bad magic", func(b []byte) []byte { b[3] ^= 1; return b }, true, ErrCorrupt},
		{"index file", func(b []byte) []byte { copy(b, "OCIFSIDX"); return b }, true, ErrCorrupt},
		{"version 1", u32(hVersion, 1), true, ErrVersion},
		{"version 2, stale checksum", u32(hVersion, 2), false, ErrVersion},
		{"version 4, stale checksum", u32(hVersion, 4), false, ErrVersion},
		{"version 0", u32(hVersion, 0), true, ErrVersion},
		{"flipped name byte", func(b []byte) []byte { b[len(b)-6] ^= 0x20; return b }, false, ErrCorrupt},
		{"flipped checksum", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, false, ErrCorrupt},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, true, ErrCorrupt},
		{"header only", func(b []byte) []byte { return b[:headerSize+trailerSize] }, true, ErrCorrupt},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, true, ErrCorrupt},
		{"unknown header flag", u32(hFlags, 2), true, ErrCorrupt},
		{"xattr flag missing", u32(hFlags, 0), true, ErrCorrupt},
		{"reserved header byte", func(b []byte) []byte { b[headerSize-1] = 1; return b }, true, ErrCorrupt},
		{"no nodes", u32(hNodes, 0), true, ErrCorrupt},
		{"one node more", u32(hNodes, 6), true, ErrCorrupt},
		{"huge node count", u32(hNodes, math.MaxUint32), true, ErrCorrupt},
		{"one dirent more", u32(hDirents, 6), true, ErrCorrupt},
		{"names longer", u32(hNamesLen, 1<<20), true, ErrCorrupt},
		{"extra shorter", u32(hExtraLen, 0), true, ErrCorrupt},
		{"too many layers", u32(hLayers, math.MaxUint32), true, ErrCorrupt},
		{"root is a file", recByte(1, rType, tar.TypeReg), true, ErrCorrupt},
		{"root is an empty file", func(b []byte) []byte {
			r := recAt(b, 1)
			r[rType] = tar.TypeReg
			le.PutUint64(r[rKidsStart:], 0)
			return b
		}, true, ErrCorrupt},
		{"unknown type", recByte(4, rType, 'x'), true, ErrCorrupt},
		{"hardlink type", recByte(3, rType, tar.TypeLink), true, ErrCorrupt},
		{"layer out of range", rec32(3, rLayer, 1), true, ErrCorrupt},
		{"layer below -1", rec32(3, rLayer, math.MaxUint32-1), true, ErrCorrupt},
		{"entry name out of bounds", rec32(3, rNameOff, math.MaxUint32), true, ErrCorrupt},
		{"entry name too long", rec32(3, rNameLen, 1<<20), true, ErrCorrupt},
		{"unknown node flag", recByte(3, rFlags, 0x80), true, ErrCorrupt},
		{"extra offset without flags", rec32(3, rExtra, 1), true, ErrCorrupt},
		{"extra offset out of bounds", rec32(4, rExtra, 1<<20), true, ErrCorrupt},
		{"wide flag on a file", recByte(3, rFlags, fWide), true, ErrCorrupt},
		{"xattr count past the end", func(b []byte) []byte {
			extraAt(b, le.Uint32(recAt(b, 5)[rExtra:]))[0] = 0x7f
			return b
		}, true, ErrCorrupt},
		{"xattr count zero", func(b []byte) []byte {
			extraAt(b, le.Uint32(recAt(b, 5)[rExtra:]))[0] = 0
			return b
		}, true, ErrCorrupt},
		{"link target past the end", func(b []byte) []byte {
			extraAt(b, le.Uint32(recAt(b, 4)[rExtra:]))[0] = 0x7f
			return b
		}, true, ErrCorrupt},
		{"children of a file", rec32(3, rKidsLen, 1), true, ErrCorrupt},
		{"children past the table", rec32(1, rKidsLen, 6), true, ErrCorrupt},
		{"children elsewhere", rec32(2, rKidsStart, 3), true, ErrCorrupt},
		{"children count wraps", rec32(2, rKidsLen, math.MaxUint32), true, ErrCorrupt},
		{"dirent to node 0", dirent32(1, dID, 0), true, ErrCorrupt},
		{"dirent to the root", dirent32(1, dID, 1), true, ErrCorrupt},
		{"dirent past Len", dirent32(4, dID, 6), true, ErrCorrupt},
		{"IDs out of order", func(b []byte) []byte {
			le.PutUint32(direntAt(b, 1)[dID:], 4)
			le.PutUint32(direntAt(b, 2)[dID:], 3)
			return b
		}, true, ErrCorrupt},
		{"directory named twice", func(b []byte) []byte {
			le.PutUint32(direntAt(b, 3)[dID:], 2)
			le.PutUint32(recAt(b, 1)[rNlink:], 4) // two subdirectories now
			return b
		}, true, ErrCorrupt},
		{"directory inside itself", dirent32(4, dID, 2), true, ErrCorrupt},
		{"dirent name out of bounds", dirent32(0, dNameOff, math.MaxUint32), true, ErrCorrupt},
		{"empty name", dirent32(0, dNameLen, 0), true, ErrCorrupt},
		{"names unsorted", func(b []byte) []byte {
			// "h" and "s" swap names, keeping their IDs in order.
			x, y := direntAt(b, 1), direntAt(b, 2)
			var tmp [dID]byte
			copy(tmp[:], x[:dID])
			copy(x[:dID], y[:dID])
			copy(y[:dID], tmp[:])
			return b
		}, true, ErrCorrupt},
		{"duplicate name", func(b []byte) []byte {
			copy(direntAt(b, 2)[:dID], direntAt(b, 1)[:dID])
			return b
		}, true, ErrCorrupt},
		{"name with a slash", func(b []byte) []byte {
			de := direntAt(b, 4)                                           // "f"
			le.PutUint32(de[dNameOff:], le.Uint32(recAt(b, 5)[rNameOff:])) // "d/f"
			le.PutUint32(de[dNameLen:], 3)
			return b
		}, true, ErrCorrupt},
		{"name dot dot", func(b []byte) []byte {
			// the root's entry name is "."; two of its bytes make ".."
			// only if followed by another "."; use a one-byte ".".
			de := direntAt(b, 4)
			le.PutUint32(de[dNameOff:], le.Uint32(recAt(b, 1)[rNameOff:]))
			le.PutUint32(de[dNameLen:], 1)
			return b
		}, true, ErrCorrupt},
		{"directory nlink", rec32(1, rNlink, 2), true, ErrCorrupt},
		{"file without links", rec32(3, rNlink, 0), true, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(smallTree(t))
			if tc.fixCRC {
				fixCRC(b)
			}
			tr, err := Decode(b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode() = %v, %v; want error %v", tr, err, tc.want)
			}
			if tr != nil {
				t.Errorf("Decode() returned a tree with error %v", err)
			}
		})
	}
	if _, err := Decode(smallTree(t)); err != nil {
		t.Errorf("Decode(unchanged) = %v", err)
	}
}

// TestDecodeEveryFlipAndTruncation flips each bit of one byte at a time
// and cuts the encoding at every length: the checksum (or the checks
// before it) must catch them all.
func TestDecodeEveryFlipAndTruncation(t *testing.T) {
	good := smallTree(t)
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 1 << (i % 8)
		if _, err := Decode(b); err == nil {
			t.Errorf("Decode with byte %d flipped succeeded", i)
		}
	}
	for n := range len(good) {
		if _, err := Decode(good[:n]); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Errorf("Decode(first %d of %d bytes) = %v, want ErrCorrupt", n, len(good), err)
		}
	}
}

func TestZeroTree(t *testing.T) {
	var tr Tree
	if tr.Root() != nil || tr.Node(1) != nil || tr.Len() != 0 || tr.ReadDir(&Node{ID: 1}) != nil || tr.Lookup(&Node{ID: 1}, "x") != nil {
		t.Errorf("zero Tree returned nodes")
	}
	if _, err := tr.Resolve("x"); !errors.Is(err, ErrNotExist) {
		t.Errorf("zero Tree: Resolve = %v, want ErrNotExist", err)
	}
	if err := tr.Walk(func(string, *Node) error { t.Error("Walk visited a node"); return nil }); err != nil {
		t.Errorf("zero Tree: Walk = %v", err)
	}
}

// TestForeignNode passes nodes that do not belong to the tree.
func TestForeignNode(t *testing.T) {
	tr := mustMerge(t, layers(l(dir("d"), file("d/f"))))
	for _, n := range []*Node{nil, {}, {ID: 99}, {ID: 3}} {
		if tr.ReadDir(n) != nil || tr.Lookup(n, "f") != nil {
			t.Errorf("node %+v: ReadDir or Lookup found children", n)
		}
	}
}

// TestDecodeLargeCorrupt: a tree big enough to be checksummed on its
// own goroutine (parallelCheck) gets the same verdicts, and a damaged
// checksum is reported before the damage it hides.
func TestDecodeLargeCorrupt(t *testing.T) {
	var es []tarindex.Entry
	for i := range 12000 {
		es = append(es, file(fmt.Sprintf("dir%02d/file-with-a-longish-name-%05d", i%50, i)))
	}
	tr := mustMerge(t, layers(es))
	good, _ := tr.MarshalBinary()
	if len(good) < parallelCheck {
		t.Fatalf("tree of %d bytes, want at least %d", len(good), parallelCheck)
	}
	// Dirents 2 and 3 are children of the same directory, in order:
	// swapping their IDs breaks the ID order checkDirs insists on.
	swap := func(b []byte) {
		x, y := direntAt(b, 2)[dID:], direntAt(b, 3)[dID:]
		a, c := le.Uint32(x), le.Uint32(y)
		le.PutUint32(x, c)
		le.PutUint32(y, a)
	}
	for _, tc := range []struct {
		name     string
		mutate   func(b []byte)
		checksum bool // want the checksum's error
	}{
		{"flipped name byte", func(b []byte) { b[len(b)-10] ^= 0x20 }, true},
		{"swapped children, resealed", func(b []byte) { swap(b); fixCRC(b) }, false},
		{"swapped children, stale checksum", swap, true},
	} {
		b := bytes.Clone(good)
		tc.mutate(b)
		_, err := Decode(b)
		if !errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "checksum") != tc.checksum {
			t.Errorf("%s: Decode = %v, want ErrCorrupt (from the checksum: %v)", tc.name, err, tc.checksum)
		}
	}
	if _, err := Decode(bytes.Clone(good)); err != nil {
		t.Errorf("Decode(intact) = %v", err)
	}
}

// TestDecodeLazy: a lazily checked tree answers like a checked one;
// damage in a block DecodeLazy did not read is found when the block is
// first used, by the calls that use it, while the rest keeps working.
func TestDecodeLazy(t *testing.T) {
	var es []tarindex.Entry
	for i := range 12000 {
		es = append(es, file(fmt.Sprintf("dir%02d/file-with-a-longish-name-%05d", i%50, i), size(int64(i))))
	}
	tr := mustMerge(t, layers(es))
	good, _ := tr.MarshalBinary()
	good = bytes.Clone(good)
	if len(good) < 8*blockSize {
		t.Fatalf("tree of %d bytes, want several blocks", len(good))
	}

	lt, err := DecodeLazy(bytes.Clone(good))
	if err != nil {
		t.Fatalf("DecodeLazy(intact) = %v", err)
	}
	if got, want := flattenWalk(t, lt), flattenWalk(t, tr); got != want {
		t.Errorf("lazy tree walks differently from the merged one")
	}
	if lt.Err() != nil || tr.Err() != nil {
		t.Errorf("Err() = %v, %v on intact trees", lt.Err(), tr.Err())
	}

	// Damage the record of a file deep in the tree, in a block the
	// root's listing does not read: the lazy decode does not see it,
	// the directory that lists the file does.
	bad := bytes.Clone(good)
	victim := tr.Lookup(tr.Lookup(tr.Root(), "dir30"), "file-with-a-longish-name-05030")
	at := tr.nodesAt() + int(victim.ID-1)*recSize + rSize
	if at>>blockShift == (tr.nodesAt()+51*recSize)>>blockShift {
		t.Fatalf("victim record in the root's children's block")
	}
	bad[at] ^= 0x20
	if _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Decode(damaged) = %v, want ErrCorrupt", err)
	}
	lt, err = DecodeLazy(bad)
	if err != nil {
		t.Fatalf("DecodeLazy(damaged past the header) = %v, want success", err)
	}
	des, err := lt.ReadDirChecked(lt.Root())
	if err != nil || len(des) != 50 {
		t.Fatalf("ReadDirChecked(root) = %d names, %v; want 50", len(des), err)
	}
	failures := 0
	for _, de := range des {
		des, err := lt.ReadDirChecked(de.Node)
		switch {
		case errors.Is(err, ErrCorrupt):
			failures++
			if n, err := lt.LookupChecked(de.Node, "anything"); n != nil || !errors.Is(err, ErrCorrupt) {
				t.Errorf("LookupChecked in a damaged directory = %v, %v; want ErrCorrupt", n, err)
			}
		case err != nil:
			t.Errorf("ReadDirChecked(%s) = %v", de.Name, err)
		case len(des) != 240:
			t.Errorf("ReadDirChecked(%s) = %d names, want 240", de.Name, len(des))
		}
	}
	if failures == 0 || failures == len(des) {
		t.Errorf("%d of %d directories failed after damage to node %d, want some, not all", failures, len(des), victim.ID)
	}
	if !errors.Is(lt.Err(), ErrCorrupt) {
		t.Errorf("Err() = %v after damage was found, want ErrCorrupt", lt.Err())
	}
	if err := lt.Walk(func(string, *Node) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Walk over the damage = %v, want ErrCorrupt", err)
	}

	// A directory listed by two directories: Decode refuses the
	// encoding; the lazy tree refuses the second directory to list it.
	two := bytes.Clone(good)
	d0, d1 := tr.Lookup(tr.Root(), "dir00"), tr.Lookup(tr.Root(), "dir01")
	s0, _ := tr.kids(uint32(d0.ID))
	sub := direntAt(two, int(s0))[dID:] // dir00's first child, a file
	le.PutUint32(sub, uint32(d1.ID))    // now names dir01
	fixCRC(two)
	if _, err := Decode(two); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Decode(directory listed twice) = %v, want ErrCorrupt", err)
	}
	lt, err = DecodeLazy(two)
	if err != nil {
		t.Fatalf("DecodeLazy(directory listed twice) = %v", err)
	}
	if _, err := lt.ReadDirChecked(lt.Root()); err != nil {
		t.Fatalf("ReadDirChecked(root) = %v", err)
	}
	if _, err := lt.ReadDirChecked(lt.Lookup(lt.Root(), "dir00")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadDirChecked(second directory listing dir01) = %v, want ErrCorrupt", err)
	}
}

// flattenWalk lists a tree as Walk sees it, one line per name.
func flattenWalk(t *testing.T, tr *Tree) string {
	t.Helper()
	var b strings.Builder
	if err := tr.Walk(func(name string, n *Node) error {
		fmt.Fprintf(&b, "%s %s\n", name, desc(n))
		return nil
	}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return b.String()
}
