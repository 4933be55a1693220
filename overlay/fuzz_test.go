package overlay

import (
	"errors"
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
		// Every walked path resolves to its node: no name is reachable
		// only by leaving the root.
		tr.Walk(func(name string, n *Node) error {
			if got, err := tr.Resolve(name); err != nil || got != n {
				t.Errorf("Resolve(%q) = %v, %v; want node %d", name, desc(got), err, n.ID)
			}
			return nil
		})
	})
}
