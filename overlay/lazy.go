package overlay

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// DecodeLazy returns the tree b encodes, like Decode, but checks only
// what it must before returning: the magic, the FormatVersion, that the
// sections add up, the checksum of the block checksum table, the header
// block and the root. Everything else is checked when it is first used:
// a node's record (and the blocks holding it, its name and its extra
// fields) when the node is first decoded, a directory's dirents, its
// children's records and the names it lists when it is first looked
// into. Opening a tree so costs the same whatever its size, which is
// what a mount wants; a caller that will read the whole tree anyway
// (export, diff) loses nothing with Decode.
//
// What the lazy checks guarantee is what Decode's do (no input makes a
// call panic or loop) with one difference in kind: Decode also checks
// facts about the whole tree that no part of it can show, namely that
// every node is reachable, that IDs follow Merge's order, and that the
// header's xattr flag agrees with the nodes. Instead, each directory
// may be listed by one directory only (checked as directories are
// looked into), so what can be reached from the root is a tree, and
// walking it ends.
//
// Damage found after DecodeLazy returned makes the call that found it
// fail: NodeChecked, LookupChecked and ReadDirChecked return an error
// wrapping ErrCorrupt, Resolve, ResolvePath and Walk return it, and
// Node, Lookup and ReadDir return nil. Err reports the first such
// error. Parts of the tree that are intact keep working.
func DecodeLazy(b []byte) (*Tree, error) {
	t, err := decodeLazy(b)
	if err != nil {
		return nil, fmt.Errorf("decode tree: %w", err)
	}
	return t, nil
}

func decodeLazy(b []byte) (*Tree, error) {
	l, err := parseLayout(b)
	if err != nil {
		return nil, err
	}
	if err := checkBlock(b, &l, 0); err != nil {
		return nil, err
	}
	if err := l.checkHeader(b); err != nil {
		return nil, err
	}
	t := newTree(b, &l)
	words := func(n int) []atomic.Uint64 { return make([]atomic.Uint64, n/64+1) }
	t.lazy = &lazyCheck{
		layout: l,
		blocks: words(len(l.table) / 4),
		nodes:  words(int(l.nn) + 1),
		dirs:   words(int(l.nn) + 1),
		parent: map[uint32]uint32{},
	}
	t.lazy.blocks[0].Or(1)
	if err := t.checkNodeLazy(1); err != nil {
		return nil, err
	}
	if t.typ(1) != typeDir {
		return nil, corrupt("root is not a directory")
	}
	return t, nil
}

// lazyCheck is what a tree from DecodeLazy has checked so far. The
// bitmaps only ever gain bits, each set once what it stands for has
// been checked; two goroutines may check the same thing at once, which
// costs time, never correctness.
type lazyCheck struct {
	layout
	blocks []atomic.Uint64 // blocks whose checksum matched
	nodes  []atomic.Uint64 // node IDs whose record (and the bytes it points to) passed checkNode
	dirs   []atomic.Uint64 // directory IDs whose dirents and children passed checkDirLazy
	extra  atomic.Bool     // the whole extra section's blocks matched

	mu     sync.Mutex
	parent map[uint32]uint32 // directory ID → the directory that lists it

	err atomic.Pointer[error] // the first damage found
}

func hasBit(bits []atomic.Uint64, i uint32) bool { return bits[i/64].Load()&(1<<(i%64)) != 0 }
func setBit(bits []atomic.Uint64, i uint32)      { bits[i/64].Or(1 << (i % 64)) }

// Err returns the first damage the lazy checks of a tree from
// DecodeLazy found, or nil. It is always nil for trees from Decode and
// Merge.
func (t *Tree) Err() error {
	if t.lazy == nil {
		return nil
	}
	if p := t.lazy.err.Load(); p != nil {
		return *p
	}
	return nil
}

// failed records err as the tree's first damage, if it is, and returns
// it.
func (t *Tree) failed(err error) error {
	t.lazy.err.CompareAndSwap(nil, &err)
	return err
}

// need checks the blocks holding b[off:off+n] (n > 0).
func (t *Tree) need(off, n int) error {
	lz := t.lazy
	for i := off >> blockShift; i <= (off+n-1)>>blockShift; i++ {
		if hasBit(lz.blocks, uint32(i)) {
			continue
		}
		if err := checkBlock(t.b, &lz.layout, i); err != nil {
			return t.failed(err)
		}
		setBit(lz.blocks, uint32(i))
	}
	return nil
}

// Offsets of the sections in b.
func (t *Tree) nodesAt() int   { return headerSize }
func (t *Tree) direntsAt() int { return headerSize + len(t.nodes) }
func (t *Tree) extraAt() int   { return t.direntsAt() + len(t.dirents) }
func (t *Tree) namesAt() int   { return t.extraAt() + len(t.extra) }

// ensureNode makes sure node id (1 ≤ id ≤ Len) may be decoded.
func (t *Tree) ensureNode(id uint32) error {
	if t.lazy == nil || hasBit(t.lazy.nodes, id) {
		return nil
	}
	return t.checkNodeLazy(id)
}

func (t *Tree) checkNodeLazy(id uint32) error {
	if err := t.need(t.nodesAt()+int(id-1)*recSize, recSize); err != nil {
		return err
	}
	r := t.rec(id)
	if r[rFlags] != 0 && !t.lazy.extra.Load() {
		// Extra fields are read by varint, to an end not known in
		// advance: the whole section is checked once, at the first
		// node that has any (a few link targets and xattrs, usually).
		if len(t.extra) > 0 {
			if err := t.need(t.extraAt(), len(t.extra)); err != nil {
				return err
			}
		}
		t.lazy.extra.Store(true)
	}
	var xattrs bool
	if _, err := t.checkNode(id, &xattrs); err != nil {
		return t.failed(err)
	}
	if l := int(le.Uint32(r[rNameLen:])); l > 0 {
		if err := t.need(t.namesAt()+int(le.Uint32(r[rNameOff:])), l); err != nil {
			return err
		}
	}
	setBit(t.lazy.nodes, id)
	return nil
}

// ensureDir makes sure the children of node id (which ensureNode has
// passed) may be listed and looked up, and their nodes decoded.
func (t *Tree) ensureDir(id uint32) error {
	if t.lazy == nil || hasBit(t.lazy.dirs, id) {
		return nil
	}
	if err := t.checkDirLazy(id); err != nil {
		return t.failed(err)
	}
	setBit(t.lazy.dirs, id)
	return nil
}

// checkDirLazy is checkDirs for one directory: its dirents in bounds,
// names valid and strictly sorted, children valid nodes, its link
// count, and that each subdirectory has one name, here: no other
// directory lists it, and this one lists it once. So a walk from the
// root enters each directory once.
func (t *Tree) checkDirLazy(d uint32) error {
	if t.typ(d) != typeDir {
		return nil // checkNode saw to it that it has no children
	}
	start, n := t.kids(d)
	if uint64(start)+uint64(n) > uint64(t.ndirents) {
		return corrupt("directory %d: children %d+%d of %d", d, start, n, t.ndirents)
	}
	if n == 0 {
		return t.checkNlink(d, 0)
	}
	if err := t.need(t.direntsAt()+int(start)*direntSize, int(n)*direntSize); err != nil {
		return err
	}
	subdirs := uint64(0)
	var seen map[uint32]bool // subdirectories, each named once
	prev := ""
	for i := start; i < start+n; i++ {
		de := t.dirents[int(i)*direntSize:][:direntSize]
		off, l, id := le.Uint32(de[dNameOff:]), le.Uint32(de[dNameLen:]), le.Uint32(de[dID:])
		if uint64(off)+uint64(l) > uint64(len(t.names)) {
			return corrupt("directory %d: name out of bounds", d)
		}
		if l > 0 {
			if err := t.need(t.namesAt()+int(off), int(l)); err != nil {
				return err
			}
		}
		name := t.names[off : off+l]
		if i > start && name <= prev {
			return corrupt("directory %d: %q after %q", d, name, prev)
		}
		prev = name
		if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 || strings.HasPrefix(name, whPrefix) {
			return corrupt("directory %d: name %q", d, name)
		}
		if id < 2 || id > t.len {
			return corrupt("directory %d: child %d of %d", d, id, t.len)
		}
		if err := t.ensureNode(id); err != nil {
			return err
		}
		if t.typ(id) == typeDir {
			if seen[id] {
				return corrupt("directory %d named twice in directory %d", id, d)
			}
			if seen == nil {
				seen = map[uint32]bool{}
			}
			seen[id] = true
			subdirs++
			if err := t.claim(id, d); err != nil {
				return err
			}
		}
	}
	return t.checkNlink(d, subdirs)
}

func (t *Tree) checkNlink(d uint32, subdirs uint64) error {
	if nl := le.Uint32(t.rec(d)[rNlink:]); uint64(nl) != 2+subdirs {
		return corrupt("directory %d: nlink %d with %d subdirectories", d, nl, subdirs)
	}
	return nil
}

// claim records that directory parent lists directory id, which no
// other directory may.
func (t *Tree) claim(id, parent uint32) error {
	lz := t.lazy
	lz.mu.Lock()
	defer lz.mu.Unlock()
	if p, ok := lz.parent[id]; ok && p != parent {
		return corrupt("directory %d listed by directories %d and %d", id, p, parent)
	}
	lz.parent[id] = parent
	return nil
}
