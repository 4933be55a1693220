package overlay

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/tarindex"
)

// The model test merges random layer stacks and compares the result
// with refApply, a reference applier written from layer.md and umoci's
// TarExtractor rather than from merge.go, so that the two do not share
// assumptions:
//
//   - Merge applies a layer in two passes (whiteouts against the lower
//     tree, then entries) and decides what a path of the layer names by
//     the layer's own entries wherever they stand in the tar. refApply
//     makes one pass in tar order, as umoci does: it remembers the paths
//     the layer has written (with their ancestors, umoci's upperPaths),
//     a whiteout removes its target subtree except those paths, and an
//     opaque marker the directory's children except those paths.
//   - Merge keeps a tree of nodes; refApply keeps a map from full
//     resolved paths to objects and resolves a parent path the way
//     filepath-securejoin does, over that map: symlinks are followed
//     inside the root, ".." stays at the root, an absolute target
//     starts again at the root, more than 255 links is an error.
//     Missing parents become implicit 0755 directories and
//     non-directories in the way are replaced by one (umoci 0.5).
//
// The two agree on the stacks real layers make, in which every entry's
// parents are listed in its layer before it, as tar writers do. genStack
// makes those, and more (entries under a lower symlink their layer does
// not list, as a hand-made layer over a merged-usr base has), but never
// a stack on which the two rules legitimately differ: each such case is
// excluded by construction with the reason next to it (see layerGen).

// refObj is one file of the reference; hardlinked paths share a pointer.
type refObj struct {
	entry    *tarindex.Entry
	layer    int
	implicit bool
}

func (o *refObj) isDir() bool     { return o.entry.Type == tar.TypeDir }
func (o *refObj) isSymlink() bool { return o.entry.Type == tar.TypeSymlink }

var (
	refImplicit = tarindex.Entry{Type: tar.TypeDir, Mode: 0o755}

	errRefLoop      = errors.New("reference: too many levels of symbolic links")
	errRefLink      = errors.New("reference: hardlink target missing")
	errRefLinkDir   = errors.New("reference: hardlink to a directory")
	errRefWhiteout  = errors.New("reference: invalid whiteout")
	errRefEntryType = errors.New("reference: unsupported entry type")
)

// The whiteout names of layer.md, spelled out again here rather than
// taken from merge.go.
const (
	refWh       = ".wh."
	refWhMeta   = ".wh..wh."
	refWhOpaque = ".wh..wh..opq"
)

// refState is the reference's unpacked root: objs maps every path
// (clean, relative, never "") to what is there, and the root is kept
// apart. Since it is a map of full paths, an object's ancestors are
// always directories in it.
type refState struct {
	objs map[string]*refObj
	root *refObj
	li   int
	// upper holds the paths the current layer wrote and their
	// ancestors (umoci's upperPaths); wrote only the written ones.
	upper, wrote map[string]bool
}

func newRefState() *refState {
	return &refState{
		objs: map[string]*refObj{},
		root: &refObj{entry: &refImplicit, layer: -1, implicit: true},
		li:   -1,
	}
}

func (s *refState) beginLayer(li int) {
	s.li = li
	s.upper, s.wrote = map[string]bool{}, map[string]bool{}
}

// refApply applies layers to a fresh state. It returns an error exactly
// when Merge must, and the state as a map that includes the root as ".".
func refApply(ls []Layer) (map[string]*refObj, error) {
	s := newRefState()
	for li, l := range ls {
		s.beginLayer(li)
		for i := range l.Entries {
			if err := s.apply(&l.Entries[i]); err != nil {
				return nil, fmt.Errorf("layer %d entry %q: %w", li, l.Entries[i].Name, err)
			}
		}
	}
	return s.result(), nil
}

func (s *refState) result() map[string]*refObj {
	out := maps.Clone(s.objs)
	out["."] = s.root
	return out
}

func refSplit(name string) (dir, base string) {
	if i := strings.LastIndex(name, "/"); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

func refJoin(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// isDirAt reports whether p ("" for the root) is a directory.
func (s *refState) isDirAt(p string) bool {
	if p == "" {
		return true
	}
	o := s.objs[p]
	return o != nil && o.isDir()
}

// resolve resolves the path p as securejoin does over the map: every
// component that exists and is a symlink is followed (its target read
// relative to the directory it is in, or from the root if absolute),
// ".." drops the last resolved component and stays at the root, and
// anything else is taken as it is. It returns the resolved path ("" for
// the root) and calls seen, if not nil, with every path it looked at.
func (s *refState) resolve(p string, seen func(string)) (string, error) {
	var out []string
	todo := strings.Split(p, "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		}
		cur := refJoin(strings.Join(out, "/"), c)
		if seen != nil {
			seen(cur)
		}
		if o := s.objs[cur]; o != nil && o.isSymlink() {
			if links++; links > 255 {
				return "", errRefLoop
			}
			t := o.entry.Linkname
			if strings.HasPrefix(t, "/") {
				out = out[:0]
			}
			todo = append(strings.Split(t, "/"), todo...)
			continue
		}
		out = append(out, c)
	}
	return strings.Join(out, "/"), nil
}

// removeTree removes p and everything under it.
func (s *refState) removeTree(p string) {
	delete(s.objs, p)
	for k := range s.objs {
		if strings.HasPrefix(k, p+"/") {
			delete(s.objs, k)
		}
	}
}

// children lists the paths of p's children, sorted.
func (s *refState) children(p string) []string {
	var out []string
	for k := range s.objs {
		if d, _ := refSplit(k); d == p {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// mkdirAll makes every component of the resolved path p a directory:
// a missing one becomes an implicit directory, and so does a
// non-directory in the way (umoci 0.5 replaces it).
func (s *refState) mkdirAll(p string) {
	if p == "" {
		return
	}
	parts := strings.Split(p, "/")
	for j := 1; j <= len(parts); j++ {
		q := strings.Join(parts[:j], "/")
		if o := s.objs[q]; o == nil || !o.isDir() {
			s.removeTree(q)
			s.objs[q] = &refObj{entry: &refImplicit, layer: -1, implicit: true}
		}
	}
}

// markUpper records that the layer wrote p.
func (s *refState) markUpper(p string) {
	s.wrote[p] = true
	for q := p; ; {
		s.upper[q] = true
		d, _ := refSplit(q)
		if d == "" {
			return
		}
		q = d
	}
}

// whiteoutPlan is what a whiteout entry does to the state: the resolved
// path it removes (the directory itself for an opaque marker), what it
// removes and which upper paths it keeps. ok is false for a whiteout
// of nothing; target is set even then, once the parent resolved.
type whiteoutPlan struct {
	target  string
	opaque  bool
	ok      bool
	removes []string
	keeps   []string
}

// planWhiteout works out what the whiteout e does, without doing it.
// The parent resolves as any entry's does; a whiteout under a path that
// is missing or not a directory, or of a name that is not there, does
// nothing. Otherwise the walk removes each path that the layer has not
// written and descends into the directories it has, umoci's
// TarExtractor walk over upperPaths.
func (s *refState) planWhiteout(e *tarindex.Entry, seen func(string)) (whiteoutPlan, error) {
	dir, base := refSplit(e.Name)
	var w whiteoutPlan
	name := ""
	if base == refWhOpaque {
		w.opaque = true
	} else {
		name = base[len(refWh):]
		if name == "" || name == "." || name == ".." {
			return w, errRefWhiteout
		}
	}
	d, err := s.resolve(dir, seen)
	if err != nil {
		return w, err
	}
	w.target = d
	if !w.opaque {
		w.target = refJoin(d, name)
	}
	if !s.isDirAt(d) || s.objs[w.target] == nil && !w.opaque {
		return w, nil
	}
	w.ok = true
	var walk func(p string)
	walk = func(p string) {
		if !s.upper[p] {
			w.removes = append(w.removes, p)
			return
		}
		w.keeps = append(w.keeps, p)
		if s.isDirAt(p) {
			for _, c := range s.children(p) {
				walk(c)
			}
		}
	}
	if w.opaque {
		for _, c := range s.children(d) {
			walk(c)
		}
	} else {
		walk(w.target)
	}
	return w, nil
}

// apply applies one entry of the current layer, in tar order.
func (s *refState) apply(e *tarindex.Entry) error {
	if e.Name == "." {
		if e.Type == tar.TypeDir {
			s.root = &refObj{entry: e, layer: s.li}
		}
		return nil // a non-directory root cannot replace the root
	}
	dir, base := refSplit(e.Name)
	if strings.HasPrefix(base, refWh) {
		if base != refWhOpaque && strings.HasPrefix(base, refWhMeta) {
			return nil // aufs metadata, no whiteout
		}
		w, err := s.planWhiteout(e, nil)
		if err != nil {
			return err
		}
		for _, p := range w.removes {
			s.removeTree(p)
		}
		return nil
	}
	switch e.Type {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return errRefEntryType
	}
	d, err := s.resolve(dir, nil)
	if err != nil {
		return err
	}
	for _, c := range strings.Split(d, "/") {
		if strings.HasPrefix(c, refWh) {
			return nil // never create a whiteout name on the way
		}
	}
	s.mkdirAll(d)
	p := refJoin(d, base)
	old := s.objs[p]
	if e.Type == tar.TypeDir && old != nil && old.isDir() {
		s.objs[p] = &refObj{entry: e, layer: s.li}
		s.markUpper(p)
		return nil
	}
	s.removeTree(p)
	if e.Type == tar.TypeLink {
		_, o, err := s.linkTarget(e.Linkname, nil)
		if err != nil {
			return err
		}
		s.objs[p] = o
	} else {
		s.objs[p] = &refObj{entry: e, layer: s.li}
	}
	s.markUpper(p)
	return nil
}

// linkTarget finds what a hardlink's target names: its parent resolves
// as any path does, its last component is not followed (link(2) links a
// symlink itself).
// It returns the resolved path too.
func (s *refState) linkTarget(name string, seen func(string)) (string, *refObj, error) {
	if name == "." || name == "" {
		return "", nil, errRefLinkDir
	}
	dir, base := refSplit(name)
	d, err := s.resolve(dir, seen)
	if err != nil {
		return "", nil, err
	}
	p := refJoin(d, base)
	o := s.objs[p]
	switch {
	case o == nil:
		return p, nil, errRefLink
	case o.isDir():
		return p, nil, errRefLinkDir
	}
	return p, o, nil
}

// genStats counts what genStack made, so the test can show the
// generator reaches the shapes it is meant to.
type genStats struct {
	stacks, entries int
	// sloppy counts entries whose layer does not list their parents,
	// followed those whose parent path followed a symlink, replaced
	// directories a layer put where a lower layer had a symlink, and
	// under whiteouts and opaque markers below such a directory.
	sloppy, followed, replaced, under int
	// dropped counts entries left out, by reason.
	dropped map[string]int
}

func genStack(r *rand.Rand) []Layer { return genStackStats(r, nil) }

// genStackStats makes a random stack of 1-4 layers in the shapes real
// layers have, applying each entry to a reference state as it goes so
// that it can aim hardlinks, whiteouts and symlinks at what exists and
// leave out what the two rule sets legitimately disagree on.
func genStackStats(r *rand.Rand, stats *genStats) []Layer {
	if stats == nil {
		stats = &genStats{}
	}
	if stats.dropped == nil {
		stats.dropped = map[string]int{}
	}
	stats.stacks++
	st := newRefState()
	var ls []Layer
	var made []string // every name made, as spelled, for stale targets
	usr := r.IntN(4) == 0
	nl := 1 + r.IntN(4)
	for li := range nl {
		st.beginLayer(li)
		g := &layerGen{
			r: r, st: st, stats: stats, made: &made, usr: usr,
			listed: map[string]bool{}, listedDir: map[string]bool{},
			unlisted: map[string]bool{}, aliased: map[string]bool{},
			replacedSymlink: map[string]bool{},
			madeDir:         map[string]bool{},
		}
		n := 1 + r.IntN(16)
		if li == 0 && usr {
			g.mergedUsr()
			n = r.IntN(4)
		} else if r.IntN(5) < 2 {
			g.sloppyRate = 3
		}
		g.fill(n)
		ls = append(ls, Layer{Name: fmt.Sprintf("L%d", li), Entries: g.es})
		if g.failed {
			break // the stack is refused; nothing above it matters
		}
	}
	return ls
}

// layerGen builds one layer in tar order. Merge decides what a path of
// a layer names by the layer's own entries wherever they stand and
// applies whiteouts before entries; the reference follows the tar
// order. They agree when a layer lists a path before using it, which
// tar writers do. The checks in emit leave out, by construction, the
// entries on which they would not:
//
//   - "listed after use": an entry named after a path that an earlier
//     entry's resolution looked at while the layer had no entry of that
//     name. Merge lets the later entry decide the earlier resolution
//     (the rule "A layer's paths are its own"); tar order does not.
//   - "whiteout of a used path": a whiteout that removes such a path,
//     placed after the entry that used it. Merge removes it before
//     placing any entry of the layer.
//   - "whiteout of a linked file": a whiteout placed after a hardlink
//     that bound a lower file the whiteout removes. Merge removes it
//     first and refuses the link (ErrHardlinkTarget); umoci links
//     first. Documented; both refuse when the whiteout comes first.
//   - "whiteout of an unlisted parent": a whiteout that would remove a
//     lower directory the layer wrote into without listing it. umoci
//     keeps the lower directory's metadata, Merge makes it implicit.
//   - "whiteout through an alias": a whiteout whose parent path goes
//     through a path the layer wrote under another spelling (through a
//     symlink). Merge's first pass knows the layer's entries by the
//     names they spell, not by where they land.
//   - "whiteout through an implicit directory": a whiteout whose path
//     goes through a directory an earlier entry made in place of a
//     lower file or nothing; Merge's first pass sees the lower tree
//     there and does nothing.
//   - "whiteout under an earlier whiteout": a whiteout whose path goes
//     through a path, unlisted by the layer, that an earlier whiteout
//     of the layer removed. Merge resolves every whiteout against the
//     lower tree before removing any.
//
// Three more are divergences in Merge that umoci does not share
// (umoci 0.4.7, checked by hand), left out until Merge is fixed:
//
//   - "path through a hardlinked symlink": the layer hardlinks a
//     symlink (h -> s, s a symlink to d) and then uses h as a
//     parent: umoci follows h (h/x lands in d/x, h/.wh.g removes
//     d/g), Merge treats the hardlink entry as a non-symlink of the
//     layer and replaces h by an implicit directory, or removes
//     nothing.
//   - "path through a moved entry": the layer lists a/b, then makes a
//     a symlink (a -> ../b) and writes a/b/g: umoci puts g in the
//     lower b/b's target, Merge takes the layer's earlier entry a/b as
//     replacing the lower symlink b/b and makes b/b an implicit
//     directory.
//   - "whiteout through a symlink in a new directory": the layer
//     makes c (new) and c/l -> ../d and whites out c/l/x: umoci
//     removes d/x, Merge removes nothing (it stops at the layer's own
//     directory c over nothing lower).
type layerGen struct {
	r     *rand.Rand
	st    *refState
	stats *genStats
	made  *[]string
	usr   bool
	es    []tarindex.Entry
	// failed is set once an entry failed in the reference.
	failed bool
	// sloppyRate, if not 0, makes one entry in sloppyRate leave its
	// parents unlisted.
	sloppyRate int
	// listed holds the names of the layer's entries so far, listedDir
	// the directories it listed that are still its directories.
	listed, listedDir map[string]bool
	// unlisted holds the paths earlier entries' resolution looked at
	// while the layer had no entry of that name.
	unlisted map[string]bool
	// aliased holds the resolved paths the layer wrote through a
	// spelling other than their own.
	aliased map[string]bool
	// replacedSymlink holds the directories the layer put where a
	// lower layer had a symlink, for the statistics.
	replacedSymlink map[string]bool
	// madeDir holds the implicit directories the layer's entries made.
	madeDir map[string]bool
	// whTargets are the paths the layer's whiteouts named, resolved
	// and as spelled.
	whTargets []whTarget
	// hlLower holds the resolved paths of lower files the layer's
	// hardlinks bound.
	hlLower []string
	// pending whiteouts, placed later in the tar.
	pending []func()
}

type whTarget struct {
	path   string
	opaque bool
}

var (
	genDirs   = []string{"a", "b", "c"}
	genLeaves = []string{"a", "b", "f", "g"}
)

func (g *layerGen) drop(reason string) bool {
	g.stats.dropped[reason]++
	return false
}

// under reports whether p is root or below it; opaque markers exclude
// root itself.
func under(p, root string, opaque bool) bool {
	if root == "" {
		return !opaque || p != ""
	}
	return (!opaque && p == root) || strings.HasPrefix(p, root+"/")
}

func prefixes(p string) []string {
	if p == "" {
		return nil
	}
	parts := strings.Split(p, "/")
	out := make([]string, len(parts))
	for i := range parts {
		out[i] = strings.Join(parts[:i+1], "/")
	}
	return out
}

// emit adds e to the layer and applies it to the reference, unless it
// falls into one of the excluded shapes.
func (g *layerGen) emit(e tarindex.Entry) bool {
	if g.failed {
		return false
	}
	dir, base := refSplit(e.Name)
	isWh := strings.HasPrefix(base, refWh)
	meta := isWh && base != refWhOpaque && strings.HasPrefix(base, refWhMeta)
	if !isWh && g.unlisted[e.Name] {
		return g.drop("listed after use")
	}
	var seen []string
	see := func(p string) { seen = append(seen, p) }
	spelled := prefixes(dir)
	var resolvedDir string
	var wt []whTarget
	switch {
	case meta:
	case isWh:
		w, err := g.st.planWhiteout(&e, see)
		for _, v := range seen {
			if g.aliased[v] {
				return g.drop("whiteout through an alias")
			}
			if g.madeDir[v] {
				return g.drop("whiteout through an implicit directory")
			}
			for _, t := range g.whTargets {
				if !g.listed[v] && under(v, t.path, t.opaque) {
					return g.drop("whiteout under an earlier whiteout")
				}
			}
		}
		// Merge's first pass acts on what the lower layers left,
		// which the layer may have replaced by now: compare with the
		// target as resolved and as spelled, whether or not it is
		// there now.
		targets := []string{w.target, dir}
		if !w.opaque {
			targets[1] = refJoin(dir, base[len(refWh):])
		}
		for _, t := range targets {
			if err != nil {
				break
			}
			for u := range g.unlisted {
				if under(u, t, w.opaque) {
					return g.drop("whiteout of a used path")
				}
			}
			for _, h := range g.hlLower {
				if under(h, t, w.opaque) {
					return g.drop("whiteout of a linked file")
				}
			}
		}
		if err == nil {
			for _, t := range targets {
				wt = append(wt, whTarget{t, w.opaque})
			}
		}
		if err == nil && w.ok {
			for _, k := range w.keeps {
				if !g.st.wrote[k] && !g.st.objs[k].implicit {
					return g.drop("whiteout of an unlisted parent")
				}
			}
		}
		if rd, err := g.st.resolve(dir, nil); err == nil && g.replacedSymlink[rd] {
			g.stats.under++
		}
	default:
		resolvedDir, _ = g.st.resolve(dir, see)
		if resolvedDir != dir {
			g.stats.followed++
		}
		for _, q := range prefixes(resolvedDir) {
			if !g.st.isDirAt(q) {
				g.madeDir[q] = true
			}
		}
		if e.Type == tar.TypeLink {
			ld, _ := refSplit(e.Linkname)
			spelled = append(spelled, prefixes(ld)...)
			p, o, err := g.st.linkTarget(e.Linkname, see)
			if err == nil && !g.st.wrote[p] && o.layer < g.st.li {
				g.hlLower = append(g.hlLower, p)
			}
		}
	}
	// A whiteout's path is resolved by the layer's entries of every
	// name on it, another entry's only where it meets a lower symlink.
	metLower := isWh
	for _, v := range seen {
		if o := g.st.objs[v]; o != nil && o.isSymlink() && o.layer < g.st.li {
			metLower = true
		}
	}
	for _, v := range append(spelled, seen...) {
		if metLower && !g.listed[v] {
			g.unlisted[v] = true
		}
	}
	var replaced bool
	if !isWh && e.Type == tar.TypeDir {
		o := g.st.objs[refJoin(resolvedDir, base)]
		replaced = o != nil && o.isSymlink() && o.layer < g.st.li
	}
	g.whTargets = append(g.whTargets, wt...)
	g.es = append(g.es, e)
	g.stats.entries++
	if err := g.st.apply(&g.es[len(g.es)-1]); err != nil {
		g.failed = true
		return true
	}
	if isWh || e.Name == "." {
		return true
	}
	p := refJoin(resolvedDir, base)
	g.listed[e.Name] = true
	if p != e.Name {
		g.aliased[p] = true
	}
	if e.Type == tar.TypeDir {
		g.listedDir[e.Name] = true
		if replaced {
			g.replacedSymlink[p] = true
			g.stats.replaced++
		}
	} else {
		g.unlist(e.Name)
		g.unlist(p)
	}
	*g.made = append(*g.made, e.Name)
	return true
}

// unlist forgets the directories at and under p once a non-directory
// replaced them, so that later entries list them again.
func (g *layerGen) unlist(p string) {
	for k := range g.listedDir {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(g.listedDir, k)
		}
	}
}

// parents lists d and its ancestors as directories, as tar writers do,
// unless the entry is one of the layer's sloppy ones. It returns false
// if the entry must be left out.
func (g *layerGen) parents(d string) bool {
	if g.sloppyRate > 0 && g.r.IntN(g.sloppyRate) == 0 {
		g.stats.sloppy++
		return true
	}
	for _, p := range prefixes(d) {
		if !g.listedDir[p] && !g.emit(dir(p, mode(uint32(0o700+g.r.IntN(0o100))))) {
			return false
		}
	}
	return true
}

func (g *layerGen) randDir() string {
	parts := make([]string, g.r.IntN(3))
	for i := range parts {
		parts[i] = genDirs[g.r.IntN(len(genDirs))]
	}
	d := strings.Join(parts, "/")
	if g.usr && g.r.IntN(3) == 0 {
		u := []string{"lib", "usr/lib", "bin", "lib/a"}[g.r.IntN(4)]
		if d == "" {
			return u
		}
		d = u + "/" + d
	}
	return d
}

// mergedUsr makes a merged-usr base: lib and bin are symlinks into usr,
// which holds files and a directory.
func (g *layerGen) mergedUsr() {
	lib, bin := "usr/lib", "usr/bin"
	if g.r.IntN(2) == 0 {
		lib = "/usr/lib"
	}
	for _, e := range []tarindex.Entry{
		dir("usr"), dir("usr/lib"), file("usr/lib/f", size(1)),
		dir("usr/lib/a"), file("usr/lib/a/f", size(2)),
		dir("usr/bin"), file("usr/bin/g", size(3)),
		sym("lib", lib), sym("bin", bin),
	} {
		g.emit(e)
	}
}

// symlinkDir returns, one time in three, the name of a lower layer's
// symlink to put a whiteout or an opaque marker under (issue 16's
// class: the layer lists the name as a directory again, or uses the
// symlink), and d otherwise.
func (g *layerGen) symlinkDir(d string) string {
	if g.r.IntN(3) != 0 {
		return d
	}
	var links []string
	for p, o := range g.st.objs {
		if o.isSymlink() && o.layer < g.st.li {
			links = append(links, p)
		}
	}
	if len(links) == 0 {
		return d
	}
	sort.Strings(links)
	return links[g.r.IntN(len(links))]
}

// nonDirs lists the reference's non-directories, sorted.
func (g *layerGen) nonDirs() []string {
	var out []string
	for p, o := range g.st.objs {
		if !o.isDir() {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (g *layerGen) pick(s []string) string {
	if len(s) == 0 || g.r.IntN(8) == 0 {
		return refJoin(g.randDir(), genLeaves[g.r.IntN(len(genLeaves))])
	}
	return s[g.r.IntN(len(s))]
}

// whiteoutName picks a name to white out in d: mostly one that is there.
func (g *layerGen) whiteoutName(d string) string {
	if rd, err := g.st.resolve(d, nil); err == nil && g.r.IntN(4) != 0 {
		if kids := g.st.children(rd); len(kids) > 0 {
			_, b := refSplit(kids[g.r.IntN(len(kids))])
			return b
		}
	}
	if g.r.IntN(2) == 0 {
		return genDirs[g.r.IntN(len(genDirs))]
	}
	return genLeaves[g.r.IntN(len(genLeaves))]
}

func (g *layerGen) fill(n int) {
	r := g.r
	for range n {
		d := g.randDir()
		switch k := r.IntN(24); {
		case k < 6:
			if g.parents(d) {
				g.emit(file(refJoin(d, genLeaves[r.IntN(len(genLeaves))]), size(int64(1+r.IntN(9)))))
			}
		case k < 9:
			if g.parents(d) {
				g.emit(dir(refJoin(d, genDirs[r.IntN(len(genDirs))]), mode(uint32(0o700+r.IntN(0o77)))))
			}
		case k < 10:
			if g.parents(d) {
				t := g.pick(*g.made)
				if r.IntN(3) == 0 {
					t = "/" + t
				}
				g.emit(sym(refJoin(d, fmt.Sprintf("s%d", r.IntN(2))), t))
			}
		case k < 13:
			// A symlink at a name other entries use as a directory, to
			// a sibling directory where files are, so that a whiteout
			// or an entry resolved through it would show.
			i := r.IntN(len(genDirs))
			sib := genDirs[(i+1)%len(genDirs)]
			var t string
			switch r.IntN(5) {
			case 0, 1:
				t = sib
			case 2:
				t = "/" + refJoin(d, sib)
			case 3:
				t = "./" + sib + "/"
			default:
				t = "../" + sib // above the root it stays at the root
			}
			if g.parents(d) {
				g.emit(sym(refJoin(d, genDirs[i]), t))
			}
		case k < 14:
			if g.parents(d) {
				g.emit(chr(refJoin(d, genLeaves[r.IntN(len(genLeaves))])))
			}
		case k < 16:
			p := refJoin(d, fmt.Sprintf("h%d", r.IntN(2)))
			var t string
			switch {
			case r.IntN(20) == 0:
				t = refJoin(g.randDir(), genDirs[r.IntN(len(genDirs))]) // a directory, probably
			case r.IntN(6) == 0:
				t = g.pick(*g.made) // as spelled once, maybe stale
			default:
				t = g.pick(g.nonDirs())
			}
			if t == p && r.IntN(10) != 0 {
				continue
			}
			if _, _, err := g.st.linkTarget(t, nil); err != nil && r.IntN(10) != 0 {
				continue // keep a few that fail
			}
			if g.parents(d) {
				g.emit(link(p, t))
			}
		case k < 20:
			d = g.symlinkDir(d)
			g.pending = append(g.pending, func() {
				if g.parents(d) {
					g.emit(wh(d, g.whiteoutName(d)))
				}
			})
		case k < 21:
			if r.IntN(4) == 0 {
				d = ""
			}
			d = g.symlinkDir(d)
			g.pending = append(g.pending, func() {
				if g.parents(d) {
					g.emit(opq(d))
				}
			})
		case k < 22:
			g.emit(dir(".", mode(uint32(0o700+r.IntN(0o77)))))
		case k < 23:
			if g.parents(d) {
				g.emit(file(refJoin(d, ".wh..wh.plnk")))
			}
		default:
			if r.IntN(8) == 0 {
				g.emit(file(refJoin(d, refWh))) // invalid: both refuse
			} else if g.parents(d) {
				g.emit(fifo(refJoin(d, genLeaves[r.IntN(len(genLeaves))])))
			}
		}
		// Whiteouts stand anywhere after their parents.
		if len(g.pending) > 0 && r.IntN(3) == 0 {
			w := g.pending[0]
			g.pending = g.pending[1:]
			w()
		}
	}
	for _, w := range g.pending {
		w()
	}
}

var modelSeeds = flag.Int("overlay.seeds", 0, "stacks TestMergeMatchesReference merges (default 4000, 500 with -short)")

func TestMergeMatchesReference(t *testing.T) {
	seeds := 4000
	if testing.Short() {
		seeds = 500
	}
	if *modelSeeds > 0 {
		seeds = *modelSeeds
	}
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	base := h.Sum64()
	stats := &genStats{}
	failed, errs := 0, 0
	for s := range seeds {
		r := rand.New(rand.NewPCG(base, uint64(s)))
		ls := genStackStats(r, stats)
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
	t.Logf("%d stacks, %d entries, %d refused by both; %d entries with unlisted parents, %d resolved through a symlink, %d directories over lower symlinks, %d whiteouts under them; left out: %v",
		seeds, stats.entries, errs, stats.sloppy, stats.followed, stats.replaced, stats.under, stats.dropped)
	// The generator is useless if nearly every stack fails, or if it
	// stops making the shapes it is there for.
	if errs > seeds/2 {
		t.Errorf("%d of %d stacks failed to merge; the generator makes too many bad hardlinks", errs, seeds)
	}
	if stats.followed < seeds/20 || stats.replaced < seeds/20 || stats.under < seeds/50 {
		t.Errorf("generator made too few symlink shapes: %d followed, %d replaced, %d whiteouts under them", stats.followed, stats.replaced, stats.under)
	}
}

// compareRef compares a merged tree with the reference's paths (the
// root as "."): type, layer, entry (size, link target, ...) and which
// names share a node.
func compareRef(tr *Tree, want map[string]*refObj) string {
	got := map[string]*Node{}
	tr.Walk(func(name string, n *Node) error {
		got[name] = n
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

// TestReferenceMatchesUmoci pins the reference to what umoci 0.4.7
// (raw unpack, umask 022) left on disk for the shapes the generator
// once left out as Merge bugs (fixed since), and to issue 16's example, so that the
// reference stays an independent judge where the two disagree.
func TestReferenceMatchesUmoci(t *testing.T) {
	base := l(dir("d"), file("d/g", size(1)), sym("s", "d"))
	tests := []struct {
		name string
		ls   []Layer
		want map[string]string
	}{{
		name: "opaque under a directory over a lower symlink",
		ls:   layers(l(dir("d"), file("d/x"), sym("l", "d")), l(dir("l"), opq("l"), file("l/y"))),
		want: map[string]string{"d": "d0", "d/x": "f0", "l": "d1", "l/y": "f1"},
	}, {
		name: "whiteout through a hardlinked symlink",
		ls:   layers(base, l(link("h", "s"), wh("h", "g"))),
		want: map[string]string{"d": "d0", "h": "l0->d", "s": "l0->d"},
	}, {
		name: "entry through a hardlinked symlink",
		ls:   layers(base, l(link("h", "s"), file("h/x"))),
		want: map[string]string{"d": "d0", "d/g": "f0", "d/x": "f1", "h": "l0->d", "s": "l0->d"},
	}, {
		name: "whiteout through a symlink in a new directory",
		ls:   layers(l(dir("d"), file("d/x")), l(dir("c"), sym("c/l", "../d"), wh("c/l", "x"))),
		want: map[string]string{"c": "d1", "c/l": "l1->../d", "d": "d0"},
	}, {
		name: "entry through a moved entry",
		ls:   layers(l(dir("b"), sym("b/b", "c")), l(dir("a"), dir("a/b"), sym("a", "../b"), file("a/b/g"))),
		want: map[string]string{"a": "l1->../b", "b": "d0", "b/b": "l0->c", "b/c": "d-", "b/c/g": "f1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := refApply(tt.ls)
			if err != nil {
				t.Fatalf("refApply: %v", err)
			}
			delete(got, ".")
			flat := map[string]string{}
			for p, o := range got {
				s := refDesc(o)
				if o.isSymlink() {
					s += "->" + o.entry.Linkname
				}
				flat[p] = s
			}
			if !maps.Equal(flat, tt.want) {
				t.Errorf("refApply() = %v, want %v", flat, tt.want)
			}
		})
	}
}
