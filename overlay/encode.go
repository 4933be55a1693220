package overlay

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
)

// encoder encodes the tree freeze numbers (docs/tree-format.md). freeze
// tells it about each node as the node gets its ID (first), each name
// (dirent) and each directory once its children have IDs (dir); by then
// the encoder has decided where every name and extra field goes and
// knows the exact size of the encoding. finish then writes it into one
// buffer of that size: every byte is written once and nothing large is
// copied, grown or kept aside (on the VMs ocifs runs on, the first touch
// of each fresh 4 KiB page costs about 9 µs, so memory touched is most
// of what encoding costs). Besides the encoding it keeps 20 bytes per
// node.
type encoder struct {
	byID []*mnode  // by ID-1
	meta []encMeta // by ID-1
	dirs []*mnode  // in the order their children are laid out
	// extra is the extra section. extras maps an extra encoding to
	// where it already is: symlinks to the same target, files with the
	// same xattrs share one copy.
	extra   []byte
	extras  map[string]uint32
	scratch []byte
	// namesLen is the size of the names section: each node's entry
	// name unless it shares a child's bytes, each dirent's name unless
	// it ends its node's entry name.
	namesLen uint64
	dirents  int
	xattrs   bool
}

// encMeta is what the encoder decides for a node before writing it.
type encMeta struct {
	extraOff uint32
	// share is the ID of a child whose entry name starts with this
	// directory's, which then takes no bytes of its own; 0 if none.
	share uint32
	flags byte
}

func newEncoder(nodes int) *encoder {
	return &encoder{
		byID:   make([]*mnode, nodes),
		meta:   make([]encMeta, nodes),
		extras: make(map[string]uint32),
	}
}

// first notes node n, which has just got its ID.
func (e *encoder) first(n *mnode) {
	e.byID[n.id-1] = n
	e.namesLen += uint64(len(n.entry.Name))
	e.putExtra(&e.meta[n.id-1], n)
}

// dirent notes a name of node n.
func (e *encoder) dirent(name string, n *mnode) {
	e.dirents++
	if !strings.HasSuffix(n.entry.Name, name) {
		e.namesLen += uint64(len(name))
	}
}

// dir notes directory d, whose children (d.kids, sorted, no holes) all
// have IDs now. A child's entry name usually starts with its
// directory's ("usr/bin/ls" holds "usr/bin"): the directory's name then
// costs no bytes. Only children with higher IDs qualify, because finish
// places names from the highest ID down; lower ones are hardlinks.
func (e *encoder) dir(d *mnode) {
	e.dirs = append(e.dirs, d)
	for _, k := range d.kids[:min(len(d.kids), prefixProbe)] {
		if k.node.id > d.id && strings.HasPrefix(k.node.entry.Name, d.entry.Name) {
			e.meta[d.id-1].share = k.node.id
			e.namesLen -= uint64(len(d.entry.Name))
			return
		}
	}
}

// putExtra encodes n's extra fields, if any, and notes where they are.
func (e *encoder) putExtra(mt *encMeta, n *mnode) {
	en := n.entry
	var flags byte
	x := e.scratch[:0]
	if en.Linkname != "" {
		flags |= fLinkname
		x = appendString(x, en.Linkname)
	}
	if uid, gid := int64(en.UID), int64(en.GID); uid < 0 || uid > math.MaxUint32 ||
		gid < 0 || gid > math.MaxUint32 || en.Mode > math.MaxUint16 {
		flags |= fWide
		x = binary.AppendVarint(x, uid)
		x = binary.AppendVarint(x, gid)
		x = binary.AppendUvarint(x, uint64(en.Mode))
	}
	if en.Devmajor != 0 || en.Devminor != 0 {
		flags |= fDevice
		x = binary.AppendUvarint(x, uint64(en.Devmajor))
		x = binary.AppendUvarint(x, uint64(en.Devminor))
	}
	if n.xattrs {
		// trusted.overlay.* is dropped here (see the package doc);
		// the layer's entry is left as it is.
		kept := 0
		for _, xa := range en.Xattrs {
			if !strings.HasPrefix(xa.Key, xattrOverlay) {
				kept++
			}
		}
		if kept > 0 {
			flags |= fXattrs
			e.xattrs = true
			x = binary.AppendUvarint(x, uint64(kept))
			for _, xa := range en.Xattrs {
				if !strings.HasPrefix(xa.Key, xattrOverlay) {
					x = appendString(x, xa.Key)
					x = appendString(x, xa.Value)
				}
			}
		}
	}
	if en.Sparse != nil { // an all-hole sparse file has a map with no regions
		flags |= fSparse
		x = binary.AppendUvarint(x, uint64(len(en.Sparse)))
		var end int64
		for _, s := range en.Sparse {
			x = binary.AppendVarint(x, s.Offset-end)
			x = binary.AppendVarint(x, s.Length)
			end = s.Offset + s.Length
		}
	}
	if _, fits := recordMtime(en.Mtime, en.MtimeNsec); !fits {
		flags |= fTime
		x = binary.AppendVarint(x, en.Mtime)
		x = binary.AppendUvarint(x, uint64(en.MtimeNsec))
	}
	mt.flags = flags
	if flags != 0 {
		off, ok := e.extras[string(x)]
		if !ok {
			off = uint32(len(e.extra)) // past 4 GiB finish fails
			e.extras[string(x)] = off
			e.extra = append(e.extra, x...)
		}
		mt.extraOff = off
	}
	e.scratch = x
}

// finish writes the encoding and returns the tree over it.
func (e *encoder) finish(layers int) (*Tree, error) {
	if len(e.extra) > math.MaxUint32 || e.namesLen > math.MaxUint32 {
		return nil, fmt.Errorf("encode tree: %d bytes of extra fields and %d of names, limit 4 GiB each", len(e.extra), e.namesLen)
	}
	nn, nd := len(e.byID), e.dirents
	nodesAt := headerSize
	direntsAt := nodesAt + nn*recSize
	extraAt := direntsAt + nd*direntSize
	namesAt := extraAt + len(e.extra)
	body := namesAt + int(e.namesLen)
	nb := (body + blockSize - 1) >> blockShift
	size := body + 4*nb + trailerSize
	b := make([]byte, size)

	copy(b, treeMagic)
	le.PutUint32(b[hVersion:], FormatVersion)
	if e.xattrs {
		le.PutUint32(b[hFlags:], hasXattrsFlag)
	}
	le.PutUint32(b[hLayers:], uint32(layers))
	le.PutUint32(b[hNodes:], uint32(nn))
	le.PutUint32(b[hDirents:], uint32(nd))
	le.PutUint32(b[hExtraLen:], uint32(len(e.extra)))
	le.PutUint32(b[hNamesLen:], uint32(e.namesLen))
	copy(b[extraAt:], e.extra)

	rec := func(id uint32) []byte { return b[nodesAt+int(id-1)*recSize:][:recSize] }
	names := b[namesAt : namesAt+int(e.namesLen)]
	no := 0 // names placed so far

	// Highest ID first, so that a directory's sharing child is placed.
	for id := uint32(nn); id >= 1; id-- {
		n, mt := e.byID[id-1], &e.meta[id-1]
		en := n.entry
		r := rec(id)
		if mt.share != 0 {
			le.PutUint32(r[rNameOff:], le.Uint32(rec(mt.share)[rNameOff:]))
		} else {
			le.PutUint32(r[rNameOff:], uint32(no))
			no += copy(names[no:], en.Name)
		}
		le.PutUint32(r[rNameLen:], uint32(len(en.Name)))
		le.PutUint64(r[rSize:], uint64(en.Size))
		if ns, fits := recordMtime(en.Mtime, en.MtimeNsec); fits {
			le.PutUint64(r[rMtime:], uint64(ns)) // else 0, and fTime
		}
		le.PutUint64(r[rOffset:], uint64(en.Offset))
		le.PutUint32(r[rLayer:], uint32(n.layer))
		// freeze leaves a directory's link count in names.
		le.PutUint32(r[rNlink:], uint32(n.names))
		if n.isDir() {
			le.PutUint32(r[rKidsStart:], n.kidStart)
			le.PutUint32(r[rKidsLen:], uint32(len(n.kids)))
		}
		if mt.flags&fWide == 0 {
			le.PutUint32(r[rUID:], uint32(en.UID))
			le.PutUint32(r[rGID:], uint32(en.GID))
			le.PutUint16(r[rMode:], uint16(en.Mode))
		}
		le.PutUint32(r[rExtra:], mt.extraOff)
		r[rType] = en.Type
		r[rFlags] = mt.flags
	}
	// A dirent's name usually ends its node's entry name ("usr/bin/ls"
	// holds "ls"): the dirent then points there.
	for _, d := range e.dirs {
		for i, k := range d.kids {
			r := b[direntsAt+(int(d.kidStart)+i)*direntSize:][:direntSize]
			en := k.node.entry.Name
			if strings.HasSuffix(en, k.name) {
				le.PutUint32(r[dNameOff:], le.Uint32(rec(k.node.id)[rNameOff:])+uint32(len(en)-len(k.name)))
			} else {
				le.PutUint32(r[dNameOff:], uint32(no))
				no += copy(names[no:], k.name)
			}
			le.PutUint32(r[dNameLen:], uint32(len(k.name)))
			le.PutUint32(r[dID:], k.node.id)
		}
	}
	if no != len(names) {
		// The decisions above and in first, dirent and dir disagree.
		panic(fmt.Sprintf("overlay: encoded %d bytes of names, planned %d", no, len(names)))
	}
	for i := range nb {
		le.PutUint32(b[body+4*i:], crc32.Checksum(b[i<<blockShift:min((i+1)<<blockShift, body)], castagnoli))
	}
	le.PutUint32(b[size-trailerSize:], crc32.Checksum(b[body:size-trailerSize], castagnoli))

	var flags uint32
	if e.xattrs {
		flags = hasXattrsFlag
	}
	return newTree(b, &layout{nn: uint32(nn), nd: uint32(nd), xl: uint32(len(e.extra)), nl: uint32(e.namesLen), layers: uint32(layers), flags: flags, body: body}), nil
}
