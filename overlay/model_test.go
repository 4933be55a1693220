package overlay

import (
	"archive/tar"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/tarindex"
)

// The model test merges random layer stacks and compares the result with
// refApply, a deliberately simple applier over a map of full paths. The
// generator keeps symlinks and hardlinks as leaves (their names are never
// used as directories), so the reference needs no path resolution; the
// symlink-parent rules have their own table test and the umoci
// differential test.

// refObj is one file of the reference; hardlinked paths share a pointer.
type refObj struct {
	entry    *tarindex.Entry
	layer    int
	implicit bool
}

func (o *refObj) isDir() bool { return o.entry.Type == tar.TypeDir }

var refImplicit = tarindex.Entry{Type: tar.TypeDir, Mode: 0o755}

// refApply applies layers to a map, in order. It returns an error exactly
// when Merge must.
func refApply(ls []Layer) (map[string]*refObj, error) {
	state := map[string]*refObj{}
	removeTree := func(p string) {
		delete(state, p)
		for k := range state {
			if strings.HasPrefix(k, p+"/") {
				delete(state, k)
			}
		}
	}
	for li, l := range ls {
		// Whiteouts first, all against the lower state.
		var doomed []string
		for _, e := range l.Entries {
			dir, base := splitName(e.Name)
			switch {
			case base == whOpaque:
				if d := state[dir]; dir == "" || (d != nil && d.isDir()) {
					for k := range state {
						if dir == "" || strings.HasPrefix(k, dir+"/") {
							doomed = append(doomed, k)
						}
					}
				}
			case strings.HasPrefix(base, whMeta):
			case strings.HasPrefix(base, whPrefix):
				doomed = append(doomed, joinPath(dir, base[len(whPrefix):]))
			}
		}
		for _, p := range doomed {
			removeTree(p)
		}
		for i := range l.Entries {
			e := &l.Entries[i]
			if e.Name == "." {
				continue // root metadata, checked separately
			}
			if _, base := splitName(e.Name); strings.HasPrefix(base, whPrefix) {
				continue
			}
			parts := strings.Split(e.Name, "/")
			for j := 1; j < len(parts); j++ {
				p := strings.Join(parts[:j], "/")
				if o := state[p]; o == nil || !o.isDir() {
					delete(state, p)
					state[p] = &refObj{entry: &refImplicit, layer: -1, implicit: true}
				}
			}
			old := state[e.Name]
			if e.Type == tar.TypeDir && old != nil && old.isDir() {
				state[e.Name] = &refObj{entry: e, layer: li}
				continue
			}
			removeTree(e.Name)
			if e.Type == tar.TypeLink {
				t := state[e.Linkname]
				if t == nil || t.isDir() {
					return nil, fmt.Errorf("link %q to %q: missing or directory", e.Name, e.Linkname)
				}
				state[e.Name] = t
				continue
			}
			state[e.Name] = &refObj{entry: e, layer: li}
		}
	}
	return state, nil
}

// genStack makes a random stack of layers. It tracks nothing but a rough
// list of the paths it made, to aim whiteouts and hardlinks at things
// that probably exist.
func genStack(r *rand.Rand) []Layer {
	dirNames := []string{"a", "b", "c"}
	leafNames := []string{"a", "b", "c", "f", "g"}
	linkNames := []string{"h1", "h2", "f", "g"}
	var made, dirs []string
	randDir := func() string {
		n := r.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = dirNames[r.IntN(len(dirNames))]
		}
		return strings.Join(parts, "/")
	}
	pick := func(s []string) string {
		if len(s) == 0 || r.IntN(8) == 0 {
			return joinPath(randDir(), leafNames[r.IntN(len(leafNames))])
		}
		return s[r.IntN(len(s))]
	}
	nl := 1 + r.IntN(4)
	var ls []Layer
	for li := range nl {
		var es, wos []tarindex.Entry
		// Hardlinks aim at what the lower layers left, or at this
		// layer's earlier files.
		var targets []string
		if lower, err := refApply(ls); err == nil {
			for p, o := range lower {
				if !o.isDir() {
					targets = append(targets, p)
				}
			}
			sort.Strings(targets)
		}
		n := 1 + r.IntN(16)
		for range n {
			d := randDir()
			switch k := r.IntN(20); {
			case k < 6:
				p := joinPath(d, leafNames[r.IntN(len(leafNames))])
				es = append(es, file(p, size(int64(1+r.IntN(9)))))
				made, targets = append(made, p), append(targets, p)
			case k < 10:
				p := joinPath(d, dirNames[r.IntN(len(dirNames))])
				es = append(es, dir(p, mode(uint32(0o700+r.IntN(0o77)))))
				made, dirs = append(made, p), append(dirs, p)
			case k < 11:
				p := joinPath(d, fmt.Sprintf("s%d", r.IntN(2)))
				es = append(es, sym(p, pick(made)))
				made, targets = append(made, p), append(targets, p)
			case k < 12:
				es = append(es, chr(joinPath(d, leafNames[r.IntN(len(leafNames))])))
			case k < 14:
				p := joinPath(d, linkNames[r.IntN(len(linkNames))])
				lk := link(p, pick(targets))
				// Keep links that resolve now (whiteouts placed later may
				// still break them), and a few that do not.
				try := append(ls[:len(ls):len(ls)], Layer{Entries: append(es[:len(es):len(es)], lk)})
				if _, err := refApply(try); err != nil && r.IntN(10) != 0 {
					continue
				}
				es = append(es, lk)
				targets = append(targets, p)
			case k < 17:
				wos = append(wos, wh(splitName(pick(made))))
			case k < 18:
				if r.IntN(4) == 0 {
					wos = append(wos, opq(""))
				} else {
					wos = append(wos, opq(pick(dirs)))
				}
			case k < 19:
				es = append(es, dir(".", mode(uint32(0o700+r.IntN(0o77)))))
			default:
				es = append(es, file(joinPath(d, ".wh..wh.plnk")))
			}
		}
		// Whiteouts anywhere in the tar.
		for _, w := range wos {
			at := r.IntN(len(es) + 1)
			es = append(es[:at], append([]tarindex.Entry{w}, es[at:]...)...)
		}
		ls = append(ls, Layer{Name: fmt.Sprintf("L%d", li), Entries: es})
	}
	return ls
}

func TestMergeMatchesReference(t *testing.T) {
	seeds := 4000
	if testing.Short() {
		seeds = 500
	}
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	base := h.Sum64()
	failed, errs := 0, 0
	for s := range seeds {
		r := rand.New(rand.NewPCG(base, uint64(s)))
		ls := genStack(r)
		want, wantErr := refApply(ls)
		tr, err := Merge(ls, Options{})
		if (err != nil) != (wantErr != nil) {
			t.Errorf("seed %d: Merge() error = %v, reference error = %v\n%s", s, err, wantErr, dumpLayers(ls))
			failed++
		} else if err == nil {
			if msg := compareRef(tr, want); msg != "" {
				t.Errorf("seed %d: %s\n%s", s, msg, dumpLayers(ls))
				failed++
			} else {
				checkInvariants(t, tr)
			}
		} else {
			errs++
		}
		if failed > 3 {
			t.Fatalf("too many failures")
		}
	}
	t.Logf("%d stacks, %d failed to merge (as the reference did)", seeds, errs)
	// The generator is useless if nearly every stack fails.
	if errs > seeds/2 {
		t.Errorf("%d of %d stacks failed to merge; the generator makes too many bad hardlinks", errs, seeds)
	}
}

func compareRef(tr *Tree, want map[string]*refObj) string {
	got := map[string]*Node{}
	tr.Walk(func(name string, n *Node) error {
		if name != "." {
			got[name] = n
		}
		return nil
	})
	var msgs []string
	ids := map[*refObj]uint64{}
	objs := map[uint64]*refObj{}
	for p, o := range want {
		n := got[p]
		switch {
		case n == nil:
			msgs = append(msgs, fmt.Sprintf("Lookup(%q) = <nil>, want %s", p, refDesc(o)))
			continue
		case o.implicit:
			if n.Layer != -1 || !n.IsDir() || n.Entry.Mode != 0o755 {
				msgs = append(msgs, fmt.Sprintf("Lookup(%q) = %s, want implicit directory", p, desc(n)))
			}
		case !sameEntry(n.Entry, o.entry) || n.Layer != o.layer:
			msgs = append(msgs, fmt.Sprintf("Lookup(%q) = %s (%q), want %s (%q)", p, desc(n), n.Entry.Name, refDesc(o), o.entry.Name))
		}
		if !o.isDir() {
			if id, ok := ids[o]; ok && id != n.ID {
				msgs = append(msgs, fmt.Sprintf("Lookup(%q).ID = %d, want %d (hardlink)", p, n.ID, id))
			}
			if prev, ok := objs[n.ID]; ok && prev != o {
				msgs = append(msgs, fmt.Sprintf("Lookup(%q).ID = %d shared with an unrelated file", p, n.ID))
			}
			ids[o], objs[n.ID] = n.ID, o
		}
	}
	for p, n := range got {
		if want[p] == nil {
			msgs = append(msgs, fmt.Sprintf("Lookup(%q) = %s, want <nil>", p, desc(n)))
		}
	}
	sort.Strings(msgs)
	return strings.Join(msgs, "\n")
}

func refDesc(o *refObj) string {
	if o.implicit {
		return "d-"
	}
	return fmt.Sprintf("%s%d", typeLetter(o.entry.Type), o.layer)
}

func dumpLayers(ls []Layer) string {
	var b strings.Builder
	for i, l := range ls {
		fmt.Fprintf(&b, "layer %d:\n", i)
		for _, e := range l.Entries {
			fmt.Fprintf(&b, "\t%s %s", typeLetter(e.Type), e.Name)
			if e.Linkname != "" {
				fmt.Fprintf(&b, " -> %s", e.Linkname)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// TestBigDirectoryChurn drives large directories through every state of
// the mutable directory (sorted appends, out-of-order adds, the hash
// index, holes and compaction) and compares with the reference.
func TestBigDirectoryChurn(t *testing.T) {
	for s := range 50 {
		r := rand.New(rand.NewPCG(7, uint64(s)))
		var ls []Layer
		for li := range 5 {
			var es []tarindex.Entry
			n := 50 + r.IntN(300)
			sortedRun := r.IntN(2) == 0
			for i := range n {
				name := fmt.Sprintf("d/n%03d", r.IntN(200))
				if sortedRun {
					name = fmt.Sprintf("d/n%03d", i*200/n)
				}
				switch k := r.IntN(10); {
				case k < 6:
					es = append(es, file(name, size(int64(li+1))))
				case k < 7:
					es = append(es, dir(name))
				case k < 9:
					dir, base := splitName(name)
					es = append(es, wh(dir, base))
				default:
					if r.IntN(20) == 0 {
						es = append(es, opq("d"))
					}
				}
			}
			ls = append(ls, Layer{Name: fmt.Sprintf("L%d", li), Entries: es})
		}
		want, wantErr := refApply(ls)
		tr, err := Merge(ls, Options{})
		if err != nil || wantErr != nil {
			t.Fatalf("seed %d: Merge() = %v, reference %v", s, err, wantErr)
		}
		if msg := compareRef(tr, want); msg != "" {
			t.Fatalf("seed %d: %s", s, msg)
		}
		checkInvariants(t, tr)
	}
}
