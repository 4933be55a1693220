package overlay

import (
	"archive/tar"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ocifs/ocifs/tarindex"
)

// RulesVersion numbers the merge rules (the package documentation's
// "Rules"). It changes whenever Merge may build another tree from the
// same layers, and a cache of merged trees must key on it, so that a
// tree an older ocifs merged is merged again instead of served.
//
//	1: the rules up to issue 15
//	2: a layer's own entries decide what a path of it names before a
//	   lower layer's symlink does (whiteouts, opaque markers, parents)
const RulesVersion = 2

const (
	typeDir     = tar.TypeDir
	typeSymlink = tar.TypeSymlink

	// maxSymlinks is filepath-securejoin's limit, which both umoci and
	// containerd's continuity hit before failing with ELOOP.
	maxSymlinks = 255

	// Whiteout names, layer.md "Whiteouts" and "Opaque Whiteout".
	whPrefix = ".wh."
	// whMeta starts aufs' own metadata names (.wh..wh.plnk,
	// .wh..wh.aufs); apart from whOpaque they carry nothing for us.
	whMeta   = ".wh..wh."
	whOpaque = ".wh..wh..opq"

	// xattrOverlay is the namespace a kernel overlayfs obeys
	// (trusted.overlay.opaque, .redirect, .metacopy...).
	xattrOverlay = "trusted.overlay."
)

// mnode is a node of the mutable tree Merge builds before freezing it.
// It is kept small (32 bytes) because there is one per entry; the
// directory part lives in mdir.
type mnode struct {
	entry *tarindex.Entry
	*mdir        // non-nil exactly for directories
	id    uint32 // assigned by freeze
	layer int32
	names int32 // names pointing here, counted by freeze
	// symlink caches entry.Type == TypeSymlink: resolution asks it of
	// every component and the entry itself is rarely in cache.
	symlink bool
	// xattrs caches len(entry.Xattrs) > 0 for the encoder, likewise.
	xattrs bool
}

// mdir holds a directory's children.
type mdir struct {
	// kids are the children, a removed child staying as a hole with a
	// nil node until the next compaction.
	kids []dentry
	// idx finds a child in an unsorted directory of more than
	// smallDir children; smaller ones are scanned.
	idx  map[string]int32
	live int32 // children that are not holes
	// kidStart is where freeze puts the children in the dirent table.
	kidStart uint32
	// unsorted is set once a directory of sortedInsertMax children
	// gets a child out of name order; until then kids (holes included)
	// are sorted, so the usual append of a sorted tar stream costs one
	// comparison and finds are binary searches.
	unsorted bool
}

type dentry struct {
	name string
	node *mnode
}

const (
	// smallDir is the size up to which an unsorted directory is
	// scanned rather than indexed.
	smallDir = 8
	// sortedInsertMax is the size up to which a directory stays sorted
	// by inserting out-of-order names in place: moving up to this many
	// entries is cheaper than hashing every name. Larger directories
	// met out of order switch to the hash index and a sort at freeze.
	sortedInsertMax = 256
)

func (n *mnode) isDir() bool     { return n.mdir != nil }
func (n *mnode) isSymlink() bool { return n.symlink }

// find returns the index in kids of the live child name, or -1.
func (n *mnode) find(name string) int {
	if !n.unsorted {
		i, ok := n.search(name)
		if ok && n.kids[i].node != nil {
			return i
		}
		return -1
	}
	if n.idx != nil {
		if i, ok := n.idx[name]; ok {
			return int(i)
		}
		return -1
	}
	for i := range n.kids {
		if n.kids[i].node != nil && n.kids[i].name == name {
			return i
		}
	}
	return -1
}

// lookup returns the child name of n, or nil.
func (n *mnode) lookup(name string) *mnode {
	if i := n.find(name); i >= 0 {
		return n.kids[i].node
	}
	return nil
}

// search finds name in sorted kids: its index and whether it is there
// (possibly as a hole), or where it would go.
func (n *mnode) search(name string) (int, bool) {
	k := n.kids
	if len(k) == 0 || k[len(k)-1].name < name {
		return len(k), false // the common append
	}
	lo, hi := 0, len(k)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if k[m].name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, k[lo].name == name
}

// add adds a child the caller knows is absent.
func (n *mnode) add(name string, c *mnode) {
	n.live++
	if !n.unsorted {
		i, ok := n.search(name)
		switch {
		case ok: // a hole of the same name
			n.kids[i].node = c
			return
		case i == len(n.kids):
			n.kids = append(n.kids, dentry{name, c})
			return
		case len(n.kids) < sortedInsertMax:
			n.kids = slices.Insert(n.kids, i, dentry{name, c})
			return
		}
		n.unsorted = true
	}
	n.kids = append(n.kids, dentry{name, c})
	switch {
	case n.idx != nil:
		n.idx[name] = int32(len(n.kids) - 1)
	case len(n.kids) > smallDir:
		n.reindex()
	}
}

// reindex drops holes and rebuilds idx.
func (n *mnode) reindex() {
	if int(n.live) != len(n.kids) {
		n.kids = slices.DeleteFunc(n.kids, func(d dentry) bool { return d.node == nil })
	}
	n.idx = nil
	if n.unsorted && len(n.kids) > smallDir {
		n.idx = make(map[string]int32, len(n.kids))
		for i, d := range n.kids {
			n.idx[d.name] = int32(i)
		}
	}
}

// set points n's child name at c, replacing what was there (the caller
// has called dropped for it).
func (n *mnode) set(name string, c *mnode) {
	if i := n.find(name); i >= 0 {
		n.kids[i].node = c
		return
	}
	n.add(name, c)
}

// frame is one step of a resolved path. node is nil for a component
// that does not exist (yet); such a frame is only ever followed by
// frames that do not exist either, or popped by "..".
type frame struct {
	node *mnode
	name string
}

type merger struct {
	log  *slog.Logger
	root *mnode
	slab []mnode

	// layer being applied, for messages, and its entries; pos is the
	// index of the entry being placed, and own finds the layer's
	// entries by name once ownReplaces or a whiteout needs it.
	li      int
	label   string
	entries []tarindex.Entry
	pos     int
	own     *ownNames

	// dirs caches the directory an entry's parent path resolved to,
	// keyed by that path as the layer spells it, so most entries cost
	// one map lookup to place. Removing a directory or symlink may
	// change how any path resolves, so it bumps gen and every older
	// cache record is stale. Adding nodes never changes where an
	// existing directory path resolves.
	dirs    map[string]cachedDir
	gen     uint32
	scratch []frame

	// last is the directory of the previous entry, which tar streams
	// usually share, valid while lastGen == gen.
	lastDir  string
	lastNode *mnode
	lastGen  uint32
}

type cachedDir struct {
	n   *mnode
	gen uint32
}

// Merge applies layers in order, lowest first, and returns the merged
// tree, encoded (see Tree). The tree copies what it keeps of the
// entries: they may change or go once Merge returns. See the package
// documentation for the rules.
func Merge(layers []Layer, opts Options) (*Tree, error) {
	m := &merger{log: opts.Logger, dirs: make(map[string]cachedDir)}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.root = m.newNode(implicitEntry("."), -1, true)
	for i := range layers {
		m.li = i
		m.label = layers[i].Name
		if m.label == "" {
			m.label = strconv.Itoa(i)
		}
		m.entries, m.own = layers[i].Entries, nil
		if err := m.apply(layers[i].Entries); err != nil {
			return nil, fmt.Errorf("apply layer %q: %w", m.label, err)
		}
	}
	return m.freeze(len(layers))
}

func implicitEntry(name string) *tarindex.Entry {
	// What an unpacker's MkdirAll leaves behind with umask 022 when
	// running as root; mtime 0 because the unpack time is no image data.
	return &tarindex.Entry{Name: name, Type: typeDir, Mode: 0o755}
}

func (m *merger) newNode(e *tarindex.Entry, layer int, dir bool) *mnode {
	if len(m.slab) == cap(m.slab) {
		m.slab = make([]mnode, 0, 1024)
	}
	m.slab = append(m.slab, mnode{
		entry: e, layer: int32(layer),
		symlink: e.Type == typeSymlink, xattrs: len(e.Xattrs) > 0,
	})
	n := &m.slab[len(m.slab)-1]
	if dir {
		n.mdir = new(mdir)
	}
	return n
}

// remove removes dir's child name, if any.
func (m *merger) remove(dir *mnode, name string) {
	i := dir.find(name)
	if i < 0 {
		return
	}
	m.dropped(dir.kids[i].node)
	dir.kids[i].node = nil
	dir.live--
	if dir.idx != nil {
		delete(dir.idx, name)
	}
	if int(dir.live) < len(dir.kids)/2 {
		dir.reindex()
	}
}

// clearDir removes all of dir's children.
func (m *merger) clearDir(dir *mnode) {
	for _, d := range dir.kids {
		if d.node != nil {
			m.dropped(d.node)
		}
	}
	dir.kids, dir.idx, dir.live, dir.unsorted = nil, nil, 0, false
}

// cleanName cleans name as tarindex cleans entry names. Names from
// tarindex are clean already and cost one scan; anything else is
// cleaned here so that no caller can put "..", "." or "" into the tree.
func cleanName(name string) string { return tarindex.CleanName(name) }

// splitName splits a cleaned entry name into its parent path ("" for
// the root) and base name.
func splitName(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// dropped notes that n lost a name.
func (m *merger) dropped(n *mnode) {
	if n.isDir() || n.isSymlink() {
		m.gen++
	}
}

// whiteout is one removal collected in a layer's first pass; an empty
// name means opaque.
type whiteout struct {
	dir  *mnode
	name string
}

func (m *merger) apply(entries []tarindex.Entry) error {
	// Pass 1: whiteouts only ever act on the lower layers (layer.md:
	// "Whiteout files MUST only apply to resources in lower/parent
	// layers"), wherever they stand in the tar, so resolve them all
	// against the tree as the lower layers left it, then remove.
	var wos []whiteout
	for i := range entries {
		e := &entries[i]
		dir, base := splitName(cleanName(e.Name))
		if !strings.HasPrefix(base, whPrefix) {
			continue
		}
		var name string
		switch {
		case base == whOpaque: // checked before the ".wh." prefix
		case strings.HasPrefix(base, whMeta):
			continue // aufs metadata
		default:
			name = base[len(whPrefix):]
			if name == "" || name == "." || name == ".." {
				return fmt.Errorf("whiteout %q: %w", e.Name, ErrInvalidWhiteout)
			}
		}
		m.pos = i
		d, err := m.whiteoutDir(dir)
		if err != nil {
			return fmt.Errorf("whiteout %q: %w", e.Name, err)
		}
		if d == nil {
			m.log.Debug("whiteout of nothing", "layer", m.label, "name", e.Name)
			continue
		}
		wos = append(wos, whiteout{dir: d, name: name})
	}
	for _, wo := range wos {
		if wo.name == "" {
			m.clearDir(wo.dir)
			continue
		}
		m.remove(wo.dir, wo.name)
	}

	// Pass 2: everything else, in tar order, so that a later entry for
	// a path replaces an earlier one and a hardlink finds the entries
	// before it.
	for i := range entries {
		m.pos = i
		if err := m.add(&entries[i]); err != nil {
			return err
		}
	}
	return nil
}

// ownNames finds a layer's entries (whiteouts aside) by cleaned name.
// A name the layer has more than once (layer.md forbids it, real
// layers have it) means, at a given place in the tar, the last entry
// of that name before that place, which is the one extraction would
// have left there, or else the first one after it.
type ownNames struct {
	entries []tarindex.Entry
	first   map[string]int32
	dups    map[string][]int32 // every index, for names seen twice
}

func (m *merger) ownNames() *ownNames {
	if m.own != nil {
		return m.own
	}
	o := &ownNames{entries: m.entries, first: make(map[string]int32, len(m.entries))}
	for i := range m.entries {
		name := cleanName(m.entries[i].Name)
		if _, base := splitName(name); strings.HasPrefix(base, whPrefix) {
			continue
		}
		f, seen := o.first[name]
		if !seen {
			o.first[name] = int32(i)
			continue
		}
		if o.dups == nil {
			o.dups = make(map[string][]int32)
		}
		if o.dups[name] == nil {
			o.dups[name] = []int32{f}
		}
		o.dups[name] = append(o.dups[name], int32(i))
	}
	m.own = o
	return o
}

// at returns the layer's entry name means at index pos, or nil.
func (o *ownNames) at(name string, pos int) *tarindex.Entry {
	if i := o.index(name, pos); i >= 0 {
		return &o.entries[i]
	}
	return nil
}

func (o *ownNames) index(name string, pos int) int {
	i, ok := o.first[name]
	if !ok {
		return -1
	}
	if all := o.dups[name]; all != nil {
		// The last index before pos, or the first.
		j, _ := slices.BinarySearch(all, int32(pos))
		if j > 0 {
			i = all[j-1]
		}
	}
	return int(i)
}

// spelled is at for a name as a path spells it after a symlink was
// followed on the way: the entry of that name landed at the place the
// path reaches only if every parent of the name meant, when the entry
// was placed, what it means at pos. A parent that the layer made a
// directory, then a symlink (or the reverse), moved the entry
// elsewhere.
func (o *ownNames) spelled(name string, pos int) *tarindex.Entry {
	i := o.index(name, pos)
	if i < 0 {
		return nil
	}
	for j := range len(name) {
		if name[j] == '/' && o.index(name[:j], i) != o.index(name[:j], pos) {
			return nil
		}
	}
	return &o.entries[i]
}

// whiteoutDir resolves the parent path dir of the whiteout at m.pos
// and returns the lower directory the whiteout acts on, or nil if it
// acts on nothing.
//
// A whiteout names a path of its own layer (layer.md, "Whiteouts": "a
// whiteout file ... indicates that the path should be removed"; the
// path is the layer's, as the layer would be unpacked by itself), so
// each component of that path is what the layer itself makes of it
// before it is what the lower layers made of it:
//
//   - a directory of the layer's own over a lower directory merges
//     with it (layer.md, "Changeset over existing files"), and the
//     resolution goes on into the lower directory;
//   - a directory of the layer's own over a lower symlink or other
//     non-directory replaces it (pass 2 does so), so the whiteout is
//     under a directory that starts empty and removes nothing: a lower
//     symlink is never followed where the layer put a directory. This
//     is what umoci and an overlayfs stack of the unpacked layers both
//     leave (`RUN rm /l && mkdir /l` makes this shape);
//   - a symlink of the layer's own replaces the lower node, and the
//     resolution follows the layer's symlink, as umoci does once it has
//     extracted it;
//   - any other entry of the layer's own over a lower symlink
//     replaces it too: the symlink is not followed and the whiteout
//     removes nothing. Over a lower directory, the entry replaces the
//     directory only when pass 2 reaches it, so the whiteout acts on
//     the lower directory (which only the layer's hardlinks placed
//     before that entry can tell);
//   - where the layer has no entry of that name (an implicit parent),
//     the lower tree answers, following its symlinks inside the root:
//     that is where pass 2 puts the layer's own entries under the same
//     parent path (the "Symlinks in parent paths" rule), and what
//     umoci's securejoin does for both.
//
// A name is looked up as the whiteout spells it and, once a symlink
// has been followed, also at the resolved place, where the layer's
// entries spelled that way land.
func (m *merger) whiteoutDir(dir string) (*mnode, error) {
	own := m.ownNames()
	frames := append(m.scratch[:0], frame{node: m.root})
	defer func() { m.scratch = frames[:0] }()
	links := 0
	// rest ends with the part of dir not yet consumed, dirLeft bytes
	// long; symlink targets are put before it. A frame with a nil node
	// is a directory of the layer's own with nothing lower in it.
	rest, dirLeft := dir, len(dir)
	for rest != "" {
		fromDir := len(rest) <= dirLeft
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		switch comp {
		case "", ".":
			continue
		case "..":
			if len(frames) > 1 {
				frames = frames[:len(frames)-1]
			}
			continue
		}
		top := frames[len(frames)-1].node
		e := own.at(framesPath(append(frames, frame{name: comp})), m.pos)
		if e == nil && fromDir && links > 0 {
			// dir itself is clean: its prefixes are names as the
			// layer spells them, which is where the layer's entries
			// of those names landed if their own parents resolved
			// then as they do now.
			e = own.spelled(strings.TrimSuffix(dir[:len(dir)-len(rest)], "/"), m.pos)
		}
		if fromDir {
			dirLeft = len(rest)
		}
		var lower *mnode
		if top != nil {
			lower = top.lookup(comp)
		}
		var target string
		switch {
		case e != nil && e.Type == typeSymlink:
			target = e.Linkname
		case e != nil && e.Type == tar.TypeLink:
			// The layer links name to a node of the lower tree: a
			// symlink is followed as the name's own.
			n := m.lowerNode(cleanName(e.Linkname))
			if n == nil || !n.isSymlink() {
				return nil, nil
			}
			target = n.entry.Linkname
		case e != nil:
			if lower == nil || !lower.isDir() {
				if e.Type != typeDir {
					return nil, nil
				}
				// The layer's directory replaces a lower non-directory,
				// symlinks included, or is new: nothing lower is in
				// it, but the layer's own symlinks below may lead out.
				lower = nil
			}
			// Over a lower directory, any entry replaces it only when
			// pass 2 reaches it, so the whiteout acts on the lower
			// directory (which only the layer's hardlinks placed
			// before that entry can tell).
			frames = append(frames, frame{node: lower, name: comp})
			continue
		default:
			switch {
			case lower == nil || (!lower.isDir() && !lower.isSymlink()):
				return nil, nil
			case lower.isDir():
				frames = append(frames, frame{node: lower, name: comp})
				continue
			}
			target = lower.entry.Linkname
		}
		var err error
		if frames, rest, err = follow(frames, target, rest, &links); err != nil {
			return nil, err
		}
	}
	return frames[len(frames)-1].node, nil
}

// follow goes on with a resolution at a symlink's target, which goes
// before the rest of the path; an absolute target starts again at the
// root. More than maxSymlinks links on one resolution is a loop.
func follow(frames []frame, target, rest string, links *int) ([]frame, string, error) {
	*links++
	if *links > maxSymlinks {
		return frames, rest, ErrSymlinkLoop
	}
	if strings.HasPrefix(target, "/") {
		frames = frames[:1]
	}
	if rest == "" {
		return frames, target, nil
	}
	return frames, target + "/" + rest, nil
}

// lowerNode returns the node name (cleaned) names in the tree as it
// stands, its last component not followed, or nil.
func (m *merger) lowerNode(name string) *mnode {
	if name == "." {
		return m.root
	}
	dir, base := splitName(name)
	frames, err := m.resolve(dir, nil)
	if err != nil {
		return nil
	}
	if d := frames[len(frames)-1].node; d != nil && d.isDir() {
		return d.lookup(base)
	}
	return nil
}

func (m *merger) add(e *tarindex.Entry) error {
	name := cleanName(e.Name)
	if name == "." {
		if e.Type != typeDir {
			// umoci refuses such a layer, containerd ignores every root
			// entry; replacing the root is impossible either way.
			m.log.Debug("skip non-directory root entry", "layer", m.label, "type", string(rune(e.Type)))
			return nil
		}
		m.root.entry, m.root.layer, m.root.xattrs = e, int32(m.li), len(e.Xattrs) > 0
		return nil
	}
	dirName, base := splitName(name)
	if strings.HasPrefix(base, whPrefix) {
		return nil // handled in pass 1
	}
	switch e.Type {
	case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return fmt.Errorf("add %q: %w %q", e.Name, ErrUnsupportedType, string(rune(e.Type)))
	}
	parent, err := m.parent(dirName, e)
	if err != nil {
		return fmt.Errorf("add %q: %w", e.Name, err)
	}
	if parent == nil {
		return nil // skipped, logged
	}
	i := parent.find(base)
	var old *mnode
	if i >= 0 {
		old = parent.kids[i].node
	}

	if e.Type == tar.TypeDir && old != nil && old.isDir() {
		// layer.md "Changeset over existing files": both directories,
		// so the entry's attributes replace the old ones and the
		// children stay.
		old.entry, old.layer, old.xattrs = e, int32(m.li), len(e.Xattrs) > 0
		return nil
	}
	// Everything else removes the old path, subtree and all, first.
	if e.Type == tar.TypeLink {
		// The old path goes before the target is looked up, as in
		// both unpackers.
		m.remove(parent, base)
		target, err := m.linkTarget(cleanName(e.Linkname))
		if err != nil {
			return fmt.Errorf("link %q to %q: %w", e.Name, e.Linkname, err)
		}
		parent.set(base, target)
		return nil
	}
	n := m.newNode(e, m.li, e.Type == tar.TypeDir)
	if old != nil {
		m.dropped(old)
		parent.kids[i].node = n
		return nil
	}
	parent.add(base, n)
	return nil
}

// parent returns the directory an entry whose parent path is dir lands
// in, creating missing directories (and replacing non-directories in
// the way) as an unpacker does. It returns nil if the entry is skipped.
func (m *merger) parent(dir string, e *tarindex.Entry) (*mnode, error) {
	if dir == "" {
		return m.root, nil
	}
	if m.lastGen == m.gen && m.lastNode != nil && dir == m.lastDir {
		return m.lastNode, nil
	}
	n, err := m.parentCached(dir, e)
	if n != nil {
		m.lastDir, m.lastNode, m.lastGen = dir, n, m.gen
	}
	return n, err
}

func (m *merger) parentCached(dir string, e *tarindex.Entry) (*mnode, error) {
	if dir == "" {
		return m.root, nil
	}
	if c, ok := m.dirs[dir]; ok && c.gen == m.gen {
		return c.n, nil
	}
	// The common cases, a directory or nothing, extend the parent's
	// resolution by one component.
	up, base := splitName(dir)
	p, err := m.parentCached(up, e)
	if err != nil || p == nil {
		return nil, err
	}
	n := p.lookup(base)
	switch {
	case n != nil && n.isDir():
	case n == nil && !strings.HasPrefix(base, whPrefix):
		n = m.newNode(implicitEntry(dir), -1, true)
		p.add(base, n)
	default:
		// A symlink, a non-directory or a whiteout name: resolve from
		// the root.
		n, err = m.parentSlow(dir, e)
		if err != nil || n == nil {
			return nil, err
		}
	}
	m.dirs[dir] = cachedDir{n: n, gen: m.gen}
	return n, nil
}

// parentSlow is parent for paths that need symlinks followed or
// non-directories replaced.
func (m *merger) parentSlow(dir string, e *tarindex.Entry) (*mnode, error) {
	frames, err := m.resolve(dir, m.scratch[:0])
	m.scratch = frames
	if err != nil {
		return nil, err
	}
	for i := 1; i < len(frames); i++ {
		f := &frames[i]
		if f.node != nil && f.node.isDir() {
			continue
		}
		if strings.HasPrefix(f.name, whPrefix) {
			// A symlink led here; the spec allows no such name.
			m.log.Debug("skip entry whose parent would be a whiteout name", "layer", m.label, "name", e.Name)
			return nil, nil
		}
		up := frames[i-1].node
		if f.node != nil {
			// umoci (since 0.5) replaces a non-directory in the way with
			// a directory; containerd fails. Entries are never dropped
			// silently, so we follow umoci.
			m.log.Debug("replace non-directory parent", "layer", m.label, "name", e.Name, "parent", f.name)
			m.dropped(f.node)
		}
		n := m.newNode(implicitEntry(framesPath(frames[:i+1])), -1, true)
		up.set(f.name, n)
		f.node = n
	}
	return frames[len(frames)-1].node, nil
}

func framesPath(frames []frame) string {
	var b strings.Builder
	for i, f := range frames[1:] {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(f.name)
	}
	return b.String()
}

// resolve resolves the directory path p from the root without creating
// anything, following every symlink inside the root the way
// filepath-securejoin does for umoci: ".." pops one resolved component
// and stays at the root, an absolute target starts again at the root,
// components that do not exist are kept as frames with a nil node.
//
// p is a path of the layer being applied, and a symlink of a lower
// layer is not followed where that layer has an entry of the same name
// (as p spells it) other than a symlink: the layer replaces the
// symlink with that entry when it reaches it, and what the layer puts
// under the name belongs there whatever the tar order (see
// whiteoutDir). Such a symlink is returned as a non-directory frame,
// which parentSlow replaces and linkTarget finds no target in.
func (m *merger) resolve(p string, frames []frame) ([]frame, error) {
	frames = append(frames, frame{node: m.root})
	links := 0
	// rest ends with the part of p not yet consumed, pLeft bytes long;
	// symlink targets are put before it.
	rest, pLeft := p, len(p)
	for rest != "" {
		fromP := len(rest) <= pLeft
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		if fromP {
			pLeft = len(rest)
		}
		switch comp {
		case "", ".":
			continue
		case "..":
			if len(frames) > 1 {
				frames = frames[:len(frames)-1]
			}
			continue
		}
		top := frames[len(frames)-1].node
		if top == nil || !top.isDir() {
			frames = append(frames, frame{name: comp})
			continue
		}
		n := top.lookup(comp)
		if n == nil || !n.isSymlink() || (fromP && int(n.layer) < m.li && m.ownReplaces(strings.TrimSuffix(p[:len(p)-len(rest)], "/"))) {
			frames = append(frames, frame{node: n, name: comp})
			continue
		}
		var err error
		if frames, rest, err = follow(frames, n.entry.Linkname, rest, &links); err != nil {
			return frames, err
		}
	}
	return frames, nil
}

// ownReplaces reports whether the layer being applied has an entry
// named name (cleaned) other than a symlink or a hardlink (which may
// link a symlink), which replaces whatever a lower layer left there,
// building the layer's name map the first time
// it is asked: only layers that meet a lower symlink on a parent path
// pay for it.
func (m *merger) ownReplaces(name string) bool {
	e := m.ownNames().spelled(name, m.pos)
	return e != nil && e.Type != typeSymlink && e.Type != tar.TypeLink
}

// linkTarget finds the node a hardlink's (cleaned) Linkname names now.
// The parent path follows symlinks inside the root; the last component
// does not, as link(2) does not.
func (m *merger) linkTarget(linkname string) (*mnode, error) {
	if linkname == "." || linkname == "" {
		return nil, ErrHardlinkDir
	}
	dir, base := splitName(linkname)
	frames, err := m.resolve(dir, m.scratch[:0])
	m.scratch = frames
	if err != nil {
		return nil, err
	}
	d := frames[len(frames)-1].node
	if d == nil || !d.isDir() {
		return nil, ErrHardlinkTarget
	}
	n := d.lookup(base)
	switch {
	case n == nil:
		return nil, ErrHardlinkTarget
	case n.isDir():
		return nil, ErrHardlinkDir
	}
	return n, nil
}

// freeze numbers the nodes of the mutable tree in depth-first order,
// each directory's children sorted by name, so the same layers always
// give the same IDs, and encodes the result (docs/tree-format.md): the
// Tree is those bytes.
func (m *merger) freeze(layers int) (*Tree, error) {
	// Count nodes and names.
	nodes, names := 1, 0
	stack := []*mnode{m.root}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		names += int(d.live)
		for _, de := range d.kids {
			k := de.node
			if k == nil {
				continue
			}
			k.names++
			if k.names == 1 {
				nodes++
				if k.isDir() {
					stack = append(stack, k)
				}
			}
		}
	}
	if nodes > math.MaxUint32 || names > math.MaxUint32 || layers > math.MaxInt32 {
		return nil, fmt.Errorf("encode tree: %d nodes, %d names, %d layers: too many", nodes, names, layers)
	}

	// Number the nodes and lay out the dirent table: a directory's
	// children get their IDs, in name order, when it is popped, and
	// their dirents go where the previous directory's ended. The
	// mutable tree is not used after this, so each directory's kids
	// are compacted and sorted in place to be its dirents.
	enc := newEncoder(nodes)
	m.root.id = 1
	enc.first(m.root)
	next, pos := uint32(1), uint32(0)
	stack = append(stack[:0], m.root)
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d.kids = slices.DeleteFunc(d.kids, func(de dentry) bool { return de.node == nil })
		if d.unsorted {
			slices.SortFunc(d.kids, func(a, b dentry) int { return strings.Compare(a.name, b.name) })
		}
		d.kidStart = pos
		subdirs := 0
		for _, k := range d.kids {
			if k.node.id == 0 {
				next++
				k.node.id = next
				enc.first(k.node)
			}
			enc.dirent(k.name, k.node)
			if k.node.isDir() {
				subdirs++
			}
		}
		pos += uint32(len(d.kids))
		// names, the count of a directory's names (1), is spent: it
		// holds the link count from now on.
		d.names = int32(2 + subdirs)
		enc.dir(d)
		for i := len(d.kids) - 1; i >= 0; i-- {
			if k := d.kids[i].node; k.isDir() {
				stack = append(stack, k)
			}
		}
	}
	return enc.finish(layers)
}
