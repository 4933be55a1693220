package overlay

import (
	"archive/tar"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
	"unsafe"

	"github.com/ocifs/ocifs/tarindex"
)

// The encoding of a Tree; docs/tree-format.md explains every field.

// FormatVersion is the version of the tree encoding that Decode reads
// and Merge writes. Caches keep it in their file names, so a new
// version never reads an old file: it merges again.
const FormatVersion = 3

// Errors returned by Decode, wrapped.
var (
	// ErrCorrupt: the bytes are not a tree encoding, or are damaged
	// (checksum, bounds, structure). A cache should merge again.
	ErrCorrupt = errors.New("overlay: corrupt tree encoding")
	// ErrVersion: an encoding of another FormatVersion.
	ErrVersion = errors.New("overlay: unsupported tree format version")
)

const (
	treeMagic   = "OCIFSTRE"
	headerSize  = 64
	recSize     = 64
	direntSize  = 12
	trailerSize = 4

	// The body (header to names) is checksummed in blocks of this
	// size, so that DecodeLazy checks only the blocks a mount reads.
	blockShift = 16
	blockSize  = 1 << blockShift

	// Header fields (byte offsets).
	hVersion  = 8
	hFlags    = 12
	hLayers   = 16
	hNodes    = 20
	hDirents  = 24
	hExtraLen = 28
	hNamesLen = 32
	hReserved = 36 // to headerSize, zero

	// Header flags.
	hasXattrsFlag = 1

	// Node record fields (byte offsets).
	rSize      = 0
	rMtime     = 8
	rOffset    = 16
	rLayer     = 24
	rNlink     = 28
	rUID       = 32
	rGID       = 36
	rKidsStart = 40
	rKidsLen   = 44
	rNameOff   = 48
	rNameLen   = 52
	rExtra     = 56
	rMode      = 60
	rType      = 62
	rFlags     = 63

	// Node flags: which optional fields the node's extra holds, in
	// this order.
	fLinkname = 1 << 0
	fWide     = 1 << 1 // uid, gid and mode that do not fit the record
	fDevice   = 1 << 2
	fXattrs   = 1 << 3
	fSparse   = 1 << 4
	fTime     = 1 << 5 // an mtime that int64 nanoseconds do not hold
	fKnown    = fLinkname | fWide | fDevice | fXattrs | fSparse | fTime

	// Dirent fields (byte offsets).
	dNameOff = 0
	dNameLen = 4
	dID      = 8

	// prefixProbe bounds how many children the encoder tries when
	// looking for one whose entry name starts with its directory's
	// (usually the first does).
	prefixProbe = 8
)

var (
	le         = binary.LittleEndian
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// MarshalBinary returns the tree's encoding, which Decode reads back.
// It is the tree's own backing array, not a copy: the caller must not
// modify it. The error is always nil.
func (t *Tree) MarshalBinary() ([]byte, error) { return t.b, nil }

// Decode returns the tree b encodes. It checks everything the methods of
// Tree rely on before returning (magic, FormatVersion, the CRC-32C of
// every block, section bounds, every node record and its extra fields,
// every directory's children: in bounds, strictly sorted by name,
// forming one tree from the root), so no input makes a later call
// panic or loop; errors wrap ErrCorrupt or ErrVersion. The cost is one
// pass over the bytes and no allocation per node.
//
// The Tree and the nodes it returns keep references into b (names and
// link targets are substrings of it): the caller must not modify b
// afterwards.
func Decode(b []byte) (*Tree, error) {
	t, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("decode tree: %w", err)
	}
	return t, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrCorrupt)...)
}

// layout is what the header says of the sections, checked against the
// length of the encoding.
type layout struct {
	nn, nd, xl, nl, layers uint32
	flags                  uint32
	body                   int    // header to names
	table                  []byte // the block checksums
}

// parseLayout checks what can be checked without the block checksums:
// magic, version, that the sections add up to len(b), and the
// checksum of the block checksum table.
func parseLayout(b []byte) (layout, error) {
	var l layout
	if len(b) < headerSize+trailerSize || string(b[:len(treeMagic)]) != treeMagic {
		return l, corrupt("bad magic")
	}
	// The version comes before the checksums: another version may lay
	// out (or checksum) its bytes differently.
	if v := le.Uint32(b[hVersion:]); v != FormatVersion {
		return l, fmt.Errorf("version %d, want %d: %w", v, FormatVersion, ErrVersion)
	}
	l.flags = le.Uint32(b[hFlags:])
	l.nn, l.nd = le.Uint32(b[hNodes:]), le.Uint32(b[hDirents:])
	l.xl, l.nl = le.Uint32(b[hExtraLen:]), le.Uint32(b[hNamesLen:])
	l.layers = le.Uint32(b[hLayers:])
	// Sections follow each other in a fixed order; their sizes must add
	// up to the file exactly (uint64: no overflow from 32-bit counts).
	body := uint64(headerSize) + uint64(l.nn)*recSize + uint64(l.nd)*direntSize + uint64(l.xl) + uint64(l.nl)
	nb := (body + blockSize - 1) >> blockShift
	if want := body + 4*nb + trailerSize; want != uint64(len(b)) {
		return l, corrupt("sections need %d bytes, have %d", want, len(b))
	}
	l.body = int(body)
	l.table = b[l.body : len(b)-trailerSize]
	if got, want := crc32.Checksum(l.table, castagnoli), le.Uint32(b[len(b)-trailerSize:]); got != want {
		return l, corrupt("checksum of the block checksums %08x, trailer says %08x", got, want)
	}
	return l, nil
}

// checkHeader checks the header fields; its block has been checked.
func (l *layout) checkHeader(b []byte) error {
	if l.flags&^hasXattrsFlag != 0 {
		return corrupt("header flags %#x", l.flags)
	}
	for _, c := range b[hReserved:headerSize] {
		if c != 0 {
			return corrupt("reserved header bytes")
		}
	}
	if l.nn == 0 {
		return corrupt("no root")
	}
	if l.layers > math.MaxInt32 {
		return corrupt("%d layers", l.layers)
	}
	return nil
}

// checkBlock checks block i of the body against its checksum.
func checkBlock(b []byte, l *layout, i int) error {
	lo := i << blockShift
	hi := min(lo+blockSize, l.body)
	if got, want := crc32.Checksum(b[lo:hi], castagnoli), le.Uint32(l.table[4*i:]); got != want {
		return corrupt("block %d checksum %08x, table says %08x", i, got, want)
	}
	return nil
}

func decode(b []byte) (*Tree, error) {
	l, err := parseLayout(b)
	if err != nil {
		return nil, err
	}
	// The checksums and the checks below are independent passes over
	// b: a large tree runs them on two cores (the checks are safe on
	// any bytes), and the checksums' verdict comes first either way.
	sum := func() error {
		for i := range len(l.table) / 4 {
			if err := checkBlock(b, &l, i); err != nil {
				return err
			}
		}
		return nil
	}
	if len(b) < parallelCheck {
		if err := sum(); err != nil {
			return nil, err
		}
		return decodeChecked(b, &l)
	}
	sumErr := make(chan error, 1)
	go func() { sumErr <- sum() }()
	t, err := decodeChecked(b, &l)
	if err := <-sumErr; err != nil {
		return nil, err
	}
	return t, err
}

// parallelCheck is the encoding size from which decode checksums on
// another goroutine: about 1 ms of work each way.
const parallelCheck = 1 << 20

// decodeChecked is decode after the layout, for an encoding whose
// blocks are checked (or being checked) elsewhere.
func decodeChecked(b []byte, l *layout) (*Tree, error) {
	if err := l.checkHeader(b); err != nil {
		return nil, err
	}
	t := newTree(b, l)
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}

// newTree cuts b into its sections; the sizes have been checked (Decode)
// or are right by construction (Merge).
func newTree(b []byte, l *layout) *Tree {
	t := &Tree{b: b, len: l.nn, ndirents: l.nd, layers: l.layers, hasXattrs: l.flags&hasXattrsFlag != 0}
	o := headerSize
	t.nodes = b[o : o+int(l.nn)*recSize : o+int(l.nn)*recSize]
	o += int(l.nn) * recSize
	t.dirents = b[o : o+int(l.nd)*direntSize : o+int(l.nd)*direntSize]
	o += int(l.nd) * direntSize
	t.extra = b[o : o+int(l.xl) : o+int(l.xl)]
	o += int(l.xl)
	names := b[o : o+int(l.nl)]
	t.extraStr = unsafe.String(unsafe.SliceData(t.extra), len(t.extra))
	t.names = unsafe.String(unsafe.SliceData(names), len(names))
	return t
}

// check validates a tree Decode has cut into sections, in one pass over
// the directories that checks each node's record when its ID first
// appears (see checkDirs for the order).
func (t *Tree) check() error {
	xattrs := false
	if typ, err := t.checkNode(1, &xattrs); err != nil {
		return err
	} else if typ != typeDir {
		return corrupt("root is not a directory")
	}
	if err := t.checkDirs(&xattrs); err != nil {
		return err
	}
	if xattrs != t.hasXattrs {
		return corrupt("header xattr flag %v, nodes say %v", t.hasXattrs, xattrs)
	}
	return nil
}

// checkNode checks the record of node id on its own and returns its
// type; checkDirs checks a directory's children and link count.
func (t *Tree) checkNode(id uint32, xattrs *bool) (byte, error) {
	r := t.rec(id)
	flags := r[rFlags]
	switch r[rType] {
	case typeDir:
	case tar.TypeReg, tar.TypeRegA, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if le.Uint64(r[rKidsStart:]) != 0 {
			return 0, corrupt("node %d: children of a non-directory", id)
		}
		if le.Uint32(r[rNlink:]) == 0 {
			return 0, corrupt("node %d: no links", id)
		}
	default:
		return 0, corrupt("node %d: type %q", id, r[rType])
	}
	if layer := int32(le.Uint32(r[rLayer:])); layer < -1 || int64(layer) >= int64(t.layers) {
		return 0, corrupt("node %d: layer %d of %d", id, layer, t.layers)
	}
	if uint64(le.Uint32(r[rNameOff:]))+uint64(le.Uint32(r[rNameLen:])) > uint64(len(t.names)) {
		return 0, corrupt("node %d: name out of bounds", id)
	}
	if flags == 0 {
		if le.Uint32(r[rExtra:]) != 0 {
			return 0, corrupt("node %d: extra offset without extra fields", id)
		}
		return r[rType], nil
	}
	if flags&^fKnown != 0 {
		return 0, corrupt("node %d: flags %#x", id, flags)
	}
	if flags&fTime != 0 && le.Uint64(r[rMtime:]) != 0 {
		return 0, corrupt("node %d: mtime both in the record and wide", id)
	}
	if flags&fWide != 0 && (le.Uint64(r[rUID:]) != 0 || le.Uint16(r[rMode:]) != 0) {
		return 0, corrupt("node %d: owner or mode both in the record and wide", id)
	}
	if !t.readExtra(nil, flags, le.Uint32(r[rExtra:])) {
		return 0, corrupt("node %d: extra fields", id)
	}
	*xattrs = *xattrs || flags&fXattrs != 0
	return r[rType], nil
}

// checkDirs checks the dirent table, that the directories form one tree
// from the root, and (checkNode) every node as its ID first appears. It
// visits directories in the order freeze writes them (a stack, a
// directory's subdirectories popped in name order) and insists on
// freeze's layout: each directory's children start where the previous
// directory's ended, and a node's ID first appears right after the
// highest ID seen so far; a later dirent of the same ID (a hardlink)
// must name a non-directory, and none names the root. Each directory is
// then pushed once, when its ID first appears, so the walk ends; and
// once it has used every dirent and reached ID Len, every node has been
// checked and every directory visited exactly once. Walk can then
// neither loop nor reach a directory twice.
func (t *Tree) checkDirs(xattrs *bool) error {
	stack := []uint32{1}
	pos, maxID := uint32(0), uint32(1)
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		r := t.rec(d)
		start, n := le.Uint32(r[rKidsStart:]), le.Uint32(r[rKidsLen:])
		if start != pos || n > t.ndirents-pos {
			return corrupt("directory %d: children %d+%d, expected at %d of %d", d, start, n, pos, t.ndirents)
		}
		first := len(stack)
		subdirs := uint64(0)
		prev := ""
		des := t.dirents[int(start)*direntSize : int(start+n)*direntSize]
		for i := 0; i+direntSize <= len(des); i += direntSize {
			de := des[i : i+direntSize]
			off, l, id := le.Uint32(de[dNameOff:]), le.Uint32(de[dNameLen:]), le.Uint32(de[dID:])
			if uint64(off)+uint64(l) > uint64(len(t.names)) {
				return corrupt("directory %d: name out of bounds", d)
			}
			name := t.names[off : off+l]
			if i > 0 && name <= prev {
				return corrupt("directory %d: %q after %q", d, name, prev)
			}
			prev = name
			// Merge gives no other names; resolution and FUSE rely
			// on it (a "/" or ".." would name another path, a
			// ".wh." name is a whiteout to whoever reads it).
			if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 || strings.HasPrefix(name, whPrefix) {
				return corrupt("directory %d: name %q", d, name)
			}
			switch {
			case id == maxID+1 && id <= t.len:
				maxID = id
				typ, err := t.checkNode(id, xattrs)
				if err != nil {
					return err
				}
				if typ == typeDir {
					subdirs++
					stack = append(stack, id)
				}
			case id < 2 || id > maxID:
				return corrupt("directory %d: child %d, highest so far %d of %d", d, id, maxID, t.len)
			case t.typ(id) == typeDir:
				return corrupt("directory %d named twice", id)
			}
		}
		// freeze pushes subdirectories last first, so the first is
		// visited next.
		for i, j := first, len(stack)-1; i < j; i, j = i+1, j-1 {
			stack[i], stack[j] = stack[j], stack[i]
		}
		if nl := le.Uint32(r[rNlink:]); uint64(nl) != 2+subdirs {
			return corrupt("directory %d: nlink %d with %d subdirectories", d, nl, subdirs)
		}
		pos += n
	}
	switch {
	case pos != t.ndirents:
		return corrupt("%d of %d dirents in directories", pos, t.ndirents)
	case maxID != t.len:
		return corrupt("%d of %d nodes named", maxID, t.len)
	}
	return nil
}

// extraReader reads a node's extra fields; the first error sticks and
// later reads return zero values.
type extraReader struct {
	b   []byte
	s   string // b as a string, for zero-copy substrings
	pos int
	bad bool
}

func (r *extraReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 {
		r.bad, r.pos = true, len(r.b)
		return 0
	}
	r.pos += n
	return v
}

func (r *extraReader) varint() int64 {
	v, n := binary.Varint(r.b[r.pos:])
	if n <= 0 {
		r.bad, r.pos = true, len(r.b)
		return 0
	}
	r.pos += n
	return v
}

func (r *extraReader) uint32() uint32 {
	v := r.uvarint()
	if v > math.MaxUint32 {
		r.bad = true
	}
	return uint32(v)
}

func (r *extraReader) int() int {
	v := r.varint()
	if v < math.MinInt || v > math.MaxInt {
		r.bad = true
	}
	return int(v)
}

func (r *extraReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.pos) {
		r.bad, r.pos = true, len(r.b)
		return ""
	}
	s := r.s[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return s
}

// count reads an element count, at least least, bounded by the bytes
// left at minSize bytes per element, so that a damaged count cannot
// allocate much.
func (r *extraReader) count(least uint64, minSize int) int {
	v := r.uvarint()
	if v < least || v > uint64((len(r.b)-r.pos)/minSize) {
		r.bad, r.pos = true, len(r.b)
		return 0
	}
	return int(v)
}

// readExtra reads the extra fields flags announce at off into e and
// reports whether they are well formed. With a nil e it only checks
// them, allocating nothing: Decode calls it so that later calls with
// an Entry cannot fail.
func (t *Tree) readExtra(e *tarindex.Entry, flags byte, off uint32) bool {
	if uint64(off) >= uint64(len(t.extra)) {
		return false
	}
	r := extraReader{b: t.extra, s: t.extraStr, pos: int(off)}
	if flags&fLinkname != 0 {
		l := r.str()
		if l == "" {
			r.bad = true // flagged only when present
		}
		if e != nil {
			e.Linkname = l
		}
	}
	if flags&fWide != 0 {
		uid, gid, mode := r.int(), r.int(), r.uint32()
		if e != nil {
			e.UID, e.GID, e.Mode = uid, gid, mode
		}
	}
	if flags&fDevice != 0 {
		maj, min := r.uint32(), r.uint32()
		if e != nil {
			e.Devmajor, e.Devminor = maj, min
		}
	}
	if flags&fXattrs != 0 {
		n := r.count(1, 2) // flagged only when present
		if e != nil && !r.bad {
			e.Xattrs = make([]tarindex.Xattr, n)
		}
		for i := 0; i < n && !r.bad; i++ {
			k, v := r.str(), r.str()
			if e != nil {
				e.Xattrs[i] = tarindex.Xattr{Key: k, Value: v}
			}
		}
	}
	if flags&fSparse != 0 {
		n := r.count(0, 2) // an all-hole file has no regions
		if e != nil && !r.bad {
			e.Sparse = make([]tarindex.SparseRegion, n)
		}
		var end int64
		for i := 0; i < n && !r.bad; i++ {
			// Offsets are deltas from the previous region's end, with
			// wrapping arithmetic: exact for any int64s, small for the
			// ordered regions tarindex makes.
			o := end + r.varint()
			l := r.varint()
			end = o + l
			if e != nil {
				e.Sparse[i] = tarindex.SparseRegion{Offset: o, Length: l}
			}
		}
	}
	if flags&fTime != 0 {
		sec, nsec := r.varint(), r.uint32()
		if _, fits := recordMtime(sec, nsec); fits || nsec >= 1e9 {
			r.bad = true // what the record holds is never wide
		}
		if e != nil {
			e.Mtime, e.MtimeNsec = sec, nsec
		}
	}
	return !r.bad
}

// Record access. Callers pass IDs they have checked (valid) or read from
// a checked encoding.

func (t *Tree) valid(id uint64) bool { return id >= 1 && id <= uint64(t.len) }

func (t *Tree) rec(id uint32) []byte {
	return t.nodes[int(id-1)*recSize:][:recSize]
}

func (t *Tree) typ(id uint32) byte { return t.rec(id)[rType] }

// kids returns the range of dir's children in the dirent table (empty
// for non-directories).
func (t *Tree) kids(id uint32) (start, n uint32) {
	r := t.rec(id)
	return le.Uint32(r[rKidsStart:]), le.Uint32(r[rKidsLen:])
}

// dirent returns the name and node ID of dirent i.
func (t *Tree) dirent(i uint32) (string, uint32) {
	de := t.dirents[int(i)*direntSize:][:direntSize]
	off, l := le.Uint32(de[dNameOff:]), le.Uint32(de[dNameLen:])
	return t.names[off : off+l], le.Uint32(de[dID:])
}

// lookup binary-searches dir's children for name and returns its ID, or
// 0. Only the probed dirents are read.
func (t *Tree) lookup(dir uint32, name string) uint32 {
	start, n := t.kids(dir)
	lo, hi := start, start+n
	for lo < hi {
		m := lo + (hi-lo)/2
		de := t.dirents[int(m)*direntSize:][:direntSize]
		off, l := le.Uint32(de[dNameOff:]), le.Uint32(de[dNameLen:])
		switch c := strings.Compare(t.names[off:off+l], name); {
		case c == 0:
			return le.Uint32(de[dID:])
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0
}

// linkname returns the link target of node id.
func (t *Tree) linkname(id uint32) string {
	r := t.rec(id)
	if r[rFlags]&fLinkname == 0 {
		return ""
	}
	x := extraReader{b: t.extra, s: t.extraStr, pos: int(le.Uint32(r[rExtra:]))}
	return x.str()
}

// nodeAlloc puts a Node and its Entry in one allocation.
type nodeAlloc struct {
	n Node
	e tarindex.Entry
}

// node decodes node id.
func (t *Tree) node(id uint32) *Node {
	r := t.rec(id)
	a := new(nodeAlloc)
	e := &a.e
	off, l := le.Uint32(r[rNameOff:]), le.Uint32(r[rNameLen:])
	e.Name = t.names[off : off+l]
	e.Type = r[rType]
	e.Mode = uint32(le.Uint16(r[rMode:]))
	e.UID, e.GID = int(le.Uint32(r[rUID:])), int(le.Uint32(r[rGID:]))
	e.Size = int64(le.Uint64(r[rSize:]))
	e.Mtime, e.MtimeNsec = splitNs(int64(le.Uint64(r[rMtime:])))
	e.Offset = int64(le.Uint64(r[rOffset:]))
	if flags := r[rFlags]; flags != 0 {
		t.readExtra(e, flags, le.Uint32(r[rExtra:]))
	}
	a.n = Node{
		ID:    uint64(id),
		Layer: int(int32(le.Uint32(r[rLayer:]))),
		Entry: e,
		Nlink: le.Uint32(r[rNlink:]),
	}
	return &a.n
}

// recordMtime returns the int64 nanoseconds since the epoch that the
// record's mtime field holds for sec, nsec, and whether they fit:
// seconds within ±9223372035 (about 1678 to 2262). Others go in the
// fTime extra field, so that PAX mtimes beyond keep their seconds.
func recordMtime(sec int64, nsec uint32) (int64, bool) {
	const lim = math.MaxInt64/1_000_000_000 - 1
	if sec < -lim || sec > lim || nsec >= 1e9 {
		return 0, false
	}
	return sec*1e9 + int64(nsec), true
}

// splitNs turns the record's nanoseconds into seconds and nanoseconds
// in [0, 1e9), as tarindex.Entry keeps them.
func splitNs(ns int64) (int64, uint32) {
	sec, rem := ns/1e9, ns%1e9
	if rem < 0 {
		sec, rem = sec-1, rem+1e9
	}
	return sec, uint32(rem)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
