package tarindex

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"unsafe"

	"github.com/opencontainers/go-digest"
)

// The encoding is documented field by field in docs/index-format.md.
// Change FormatVersion whenever the layout changes: the Cache keys files
// by it, so old files are simply not found.
const (
	indexMagic = "OCIFSIDX"
	// FormatVersion is the version of the index encoding written by
	// MarshalBinary and read by Decode and DecodeAccess.
	FormatVersion = 5
)

// entry flags: rare fields are present only when their bit is set.
const (
	flagLinkname = 1 << iota
	flagDevice
	flagXattrs
	flagSparse
)

// MarshalBinary encodes the index (format in docs/index-format.md). It
// refuses an Index loaded by DecodeAccess, whose entries are not there
// to encode.
func (ix *Index) MarshalBinary() ([]byte, error) {
	if ix.Entries == nil && ix.entryCount > 0 {
		return nil, fmt.Errorf("encode index: %d entries not loaded (DecodeAccess)", ix.entryCount)
	}
	b := make([]byte, 0, 64+40*len(ix.Entries)+24*len(ix.points)+len(ix.windows)+4*len(ix.chunkCRC))
	b = append(b, indexMagic...)
	b = binary.AppendUvarint(b, FormatVersion)
	b = append(b, byte(ix.compression))
	b = appendString(b, ix.MediaType)
	b = appendString(b, string(ix.Digest))
	b = appendString(b, string(ix.DiffID))
	for _, v := range []int64{ix.BlobSize, ix.TarSize, ix.span, ix.chunkSize} {
		if v < 0 {
			return nil, fmt.Errorf("encode index: negative size %d", v)
		}
		b = binary.AppendUvarint(b, uint64(v))
	}
	b = binary.AppendUvarint(b, uint64(len(ix.Entries)))
	strBytes := 0
	for i := range ix.Entries {
		strBytes += len(ix.Entries[i].Name) + len(ix.Entries[i].Linkname)
	}
	b = binary.AppendUvarint(b, uint64(strBytes))

	b = binary.AppendUvarint(b, uint64(len(ix.points)))
	var pu, pc int64
	for _, p := range ix.points {
		if p.U < pu || p.C < pc {
			return nil, fmt.Errorf("encode index: access points out of order")
		}
		b = binary.AppendUvarint(b, uint64(p.U-pu))
		b = binary.AppendUvarint(b, uint64(p.C-pc))
		pu, pc = p.U, p.C
		b = append(b, p.Kind)
		if p.Kind == pointInflate {
			b = append(b, p.Bits)
			b = binary.AppendUvarint(b, uint64(p.winLen))
			b = binary.LittleEndian.AppendUint32(b, p.winCRC)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(ix.chunkCRC)))
	for _, c := range ix.chunkCRC {
		b = binary.LittleEndian.AppendUint32(b, c)
	}
	// What a Reader needs, but for the windows, ends here and has its
	// own checksum: DecodeAccess checks these few KiB, not the file.
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	b = binary.AppendUvarint(b, uint64(len(ix.windows)))
	b = append(b, ix.windows...)

	// The entries come last, so that DecodeAccess can stop before them:
	// they run from here to the checksum.
	b, err := appendEntries(b, ix.Entries)
	if err != nil {
		return nil, err
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b, nil
}

// appendEntries encodes the entries section.
func appendEntries(b []byte, entries []Entry) ([]byte, error) {
	var prevName string
	var prevMtime, next int64
	for i := range entries {
		e := &entries[i]
		if e.Size < 0 || e.Offset < 0 {
			return nil, fmt.Errorf("encode entry %q: negative size or offset", e.Name)
		}
		var flags byte
		if e.Linkname != "" {
			flags |= flagLinkname
		}
		if e.Devmajor != 0 || e.Devminor != 0 {
			flags |= flagDevice
		}
		if len(e.Xattrs) > 0 {
			flags |= flagXattrs
		}
		if e.Sparse != nil {
			flags |= flagSparse
		}
		b = append(b, flags, e.Type)
		shared := commonPrefix(prevName, e.Name)
		b = binary.AppendUvarint(b, uint64(shared))
		b = appendString(b, e.Name[shared:])
		prevName = e.Name
		b = binary.AppendUvarint(b, uint64(e.Mode))
		b = binary.AppendVarint(b, int64(e.UID))
		b = binary.AppendVarint(b, int64(e.GID))
		b = binary.AppendUvarint(b, uint64(e.Size))
		b = binary.AppendVarint(b, e.Mtime-prevMtime) // wraps: exact for any int64s
		prevMtime = e.Mtime
		b = binary.AppendUvarint(b, uint64(e.MtimeNsec))
		b = binary.AppendVarint(b, e.Offset-next)
		next = align512(e.Offset+physSize(e)) + 512
		if flags&flagLinkname != 0 {
			b = appendString(b, e.Linkname)
		}
		if flags&flagDevice != 0 {
			b = binary.AppendUvarint(b, uint64(e.Devmajor))
			b = binary.AppendUvarint(b, uint64(e.Devminor))
		}
		if flags&flagXattrs != 0 {
			b = binary.AppendUvarint(b, uint64(len(e.Xattrs)))
			for _, x := range e.Xattrs {
				b = appendString(b, x.Key)
				b = appendString(b, x.Value)
			}
		}
		if flags&flagSparse != 0 {
			b = binary.AppendUvarint(b, uint64(len(e.Sparse)))
			var end int64
			for _, s := range e.Sparse {
				if s.Offset < end || s.Length < 0 {
					return nil, fmt.Errorf("encode entry %q: sparse regions out of order", e.Name)
				}
				b = binary.AppendUvarint(b, uint64(s.Offset-end))
				b = binary.AppendUvarint(b, uint64(s.Length))
				end = s.Offset + s.Length
			}
		}
	}
	return b, nil
}

// physSize is the number of bytes an entry's data occupies in the stream.
func physSize(e *Entry) int64 {
	if e.Sparse == nil {
		return e.Size
	}
	var n int64
	for _, s := range e.Sparse {
		n += s.Length
	}
	return n
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// Decode parses an encoding made by MarshalBinary. It checks the magic,
// the version (ErrVersion) and the CRC-32C trailer, then every field
// (ErrCorrupt), so a decoded Index is safe to read with. The Index keeps
// parts of b (the gzip windows): the caller must not modify b afterwards.
// Each window is checked against its own checksum when a Reader first
// inflates it.
func Decode(b []byte) (*Index, error) {
	ix, err := decode(b, true)
	if err != nil {
		return nil, fmt.Errorf("decode index: %w", err)
	}
	return ix, nil
}

// DecodeAccess is Decode without the entries: it checks what a Reader
// reads with (magic, version, the access section and its CRC-32C,
// every access point and chunk checksum, the windows' bounds, and that
// the entry count fits in the entries section), and returns an Index
// whose Entries is nil but which a Reader can read with; Summary still
// reports the entry count. It reads neither the entries nor the windows,
// nor the whole-file checksum over them: each window is checked when a
// Reader inflates it, and the entries are not used. It is for callers
// that get their entries elsewhere (a cached merged tree), and its cost
// does not grow with the layer's files or windows.
//
// Whatever Decode accepts, DecodeAccess accepts and decodes to the same
// Index but for Entries. Like Decode, the Index keeps parts of b.
func DecodeAccess(b []byte) (*Index, error) {
	ix, err := decode(b, false)
	if err != nil {
		return nil, fmt.Errorf("decode index without entries: %w", err)
	}
	return ix, nil
}

// decode parses b; with entries false it stops before the entries
// section.
func decode(b []byte, entries bool) (*Index, error) {
	if len(b) < len(indexMagic)+1+4 || string(b[:len(indexMagic)]) != indexMagic {
		return nil, fmt.Errorf("bad magic: %w", ErrCorrupt)
	}
	d := decoder{b: b[len(indexMagic) : len(b)-4]}
	if v := d.uvarint(); d.err != nil || v != FormatVersion {
		return nil, fmt.Errorf("version %d, want %d: %w", v, FormatVersion, ErrVersion)
	}
	if entries {
		if got, want := crc32.Checksum(b[:len(b)-4], castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
			return nil, fmt.Errorf("checksum %08x, trailer says %08x: %w", got, want, ErrCorrupt)
		}
	}
	ix := &Index{compression: Compression(d.byte1()), encodedSize: len(b)}
	ix.MediaType = d.str()
	ix.Digest = digest.Digest(d.str())
	ix.DiffID = digest.Digest(d.str())
	ix.BlobSize, ix.TarSize, ix.span, ix.chunkSize = d.size(), d.size(), d.size(), d.size()
	if d.err != nil {
		return nil, d.err
	}
	if c, err := CompressionOf(ix.MediaType); err != nil || c != ix.compression {
		return nil, fmt.Errorf("compression %s does not match media type %q: %w", ix.compression, ix.MediaType, ErrCorrupt)
	}
	if ix.Digest.Validate() != nil || ix.DiffID.Validate() != nil {
		return nil, fmt.Errorf("bad digest: %w", ErrCorrupt)
	}
	if ix.chunkSize < 4<<10 || ix.chunkSize > 64<<20 || ix.TarSize > math.MaxInt64-ix.chunkSize {
		return nil, fmt.Errorf("chunk size %d: %w", ix.chunkSize, ErrCorrupt)
	}
	// Checked against the entries section's length below, once its
	// start is known.
	n, strBytes := d.uvarint(), d.uvarint()

	np := d.count(3)
	if ix.compression == Uncompressed && np != 0 {
		d.fail("access points in a plain tar index")
	}
	if np > 0 {
		ix.points = make([]point, np)
	}
	var pu, pc int64
	winTotal := 0
	for i := range ix.points {
		p := &ix.points[i]
		du, dc := d.size(), d.size()
		p.U, p.C = pu+du, pc+dc
		if (i > 0 && du == 0) || p.U < pu || p.C < pc || p.U > ix.TarSize || p.C > ix.BlobSize {
			d.fail("access point")
		}
		pu, pc = p.U, p.C
		p.Kind = d.byte1()
		switch {
		case p.Kind == pointInflate && ix.compression == Gzip:
			p.Bits = d.byte1()
			p.winOff, p.winLen = winTotal, int(d.uvarint())
			if p.Bits > 7 || p.winLen < 0 || p.winLen > 1<<20 {
				d.fail("inflate access point")
			}
			if raw := d.bytes(4); raw != nil {
				p.winCRC = binary.LittleEndian.Uint32(raw)
			}
			winTotal += p.winLen
		case p.Kind == pointStart:
		default:
			d.fail("access point kind")
		}
	}
	if np > 0 && ix.points[0].U != 0 {
		d.fail("first access point")
	}
	if ix.compression != Uncompressed && np == 0 && ix.TarSize > 0 {
		d.fail("no access points")
	}
	nc := d.count(4)
	if nc > 0 {
		ix.chunkCRC = make([]uint32, nc)
	}
	raw := d.bytes(4 * nc)
	for i := range ix.chunkCRC {
		if d.err == nil {
			ix.chunkCRC[i] = binary.LittleEndian.Uint32(raw[4*i:])
		}
	}
	// The access section ends here, sealed by its own checksum.
	end := len(b) - 4 - len(d.b)
	sum := d.bytes(4)
	if d.err != nil {
		return nil, d.err
	}
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.LittleEndian.Uint32(sum); got != want {
		return nil, fmt.Errorf("access section checksum %08x, stored %08x: %w", got, want, ErrCorrupt)
	}
	if want := ix.computeChunkBase(); want != nc {
		return nil, fmt.Errorf("%d chunk checksums for %d chunks: %w", nc, want, ErrCorrupt)
	}
	wl := int(d.uvarint())
	if w := d.bytes(wl); len(w) > 0 {
		ix.windows = w // shares b, which Decode's caller gives up
	}
	if d.err != nil {
		return nil, d.err
	}
	if wl != winTotal {
		return nil, fmt.Errorf("%d bytes of windows, access points say %d: %w", wl, winTotal, ErrCorrupt)
	}

	// What is left is the entries section. An entry takes at least 8
	// bytes, so a count the section cannot hold is corrupt; checking it
	// here bounds the allocation Decode makes and keeps the count
	// DecodeAccess reports plausible.
	if n > uint64(len(d.b)/8) {
		return nil, fmt.Errorf("%d entries in %d bytes: %w", n, len(d.b), ErrCorrupt)
	}
	ix.entryCount = int(n)
	if !entries {
		return ix, nil
	}
	if err := ix.decodeEntries(&d, strBytes, len(b)); err != nil {
		return nil, err
	}
	return ix, nil
}

// decodeEntries decodes ix.entryCount entries from d, which must hold
// the entries section and nothing else. strBytes is the total length of
// names and link targets the header records; encSize, the size of the
// whole encoding, bounds the array allocated for them.
func (ix *Index) decodeEntries(d *decoder, strBytes uint64, encSize int) error {
	n := ix.entryCount
	ix.Entries = make([]Entry, n)
	// Names and link targets live in one array, allocated once at the
	// size the encoder recorded; each string points into it. The array
	// is only ever appended to, so even if a damaged count made it grow
	// the strings made so far stay valid.
	strs := make([]byte, 0, min(strBytes, 8*uint64(encSize)))
	var prevOff, prevLen int
	var prevMtime, next int64
	for i := 0; i < n && d.err == nil; i++ {
		e := &ix.Entries[i]
		flags, typ := d.byte1(), d.byte1()
		e.Type = typ
		shared := int(d.uvarint())
		suffix := d.bytes(int(d.uvarint()))
		if shared > prevLen {
			d.fail("name prefix")
			break
		}
		off := len(strs)
		strs = append(strs, strs[prevOff:prevOff+shared]...)
		strs = append(strs, suffix...)
		prevOff, prevLen = off, len(strs)-off
		e.Name = unsafe.String(unsafe.SliceData(strs[off:]), prevLen)
		mode := d.uvarint()
		if mode > 0o7777 {
			d.fail("mode")
		}
		e.Mode = uint32(mode)
		e.UID, e.GID = d.int(), d.int()
		e.Size = d.size()
		e.Mtime = prevMtime + d.varint()
		prevMtime = e.Mtime
		if ns := d.uvarint(); ns < 1e9 {
			e.MtimeNsec = uint32(ns)
		} else {
			d.fail("mtime nanoseconds")
		}
		e.Offset = next + d.varint()
		if flags&flagLinkname != 0 {
			l := d.bytes(int(d.uvarint()))
			off := len(strs)
			strs = append(strs, l...)
			e.Linkname = unsafe.String(unsafe.SliceData(strs[off:]), len(l))
		}
		if flags&flagDevice != 0 {
			e.Devmajor, e.Devminor = d.uint32(), d.uint32()
		}
		if flags&flagXattrs != 0 {
			e.Xattrs = make([]Xattr, d.count(2))
			for j := range e.Xattrs {
				e.Xattrs[j] = Xattr{Key: d.str(), Value: d.str()}
			}
		}
		if flags&flagSparse != 0 {
			e.Sparse = make([]SparseRegion, d.count(2))
			var end int64
			for j := range e.Sparse {
				gap, l := d.size(), d.size()
				if end+gap < end || end+gap+l < end+gap {
					d.fail("sparse region")
				}
				e.Sparse[j] = SparseRegion{Offset: end + gap, Length: l}
				end += gap + l
			}
			if end > e.Size {
				d.fail("sparse region past size")
			}
		}
		if ix.checkData(e) != nil {
			d.fail("entry data past end of stream")
		}
		next = align512(e.Offset+physSize(e)) + 512
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d trailing bytes: %w", len(d.b), ErrCorrupt)
	}
	if uint64(len(strs)) != strBytes {
		return fmt.Errorf("%d bytes of names, header says %d: %w", len(strs), strBytes, ErrCorrupt)
	}
	return nil
}

// decoder reads the fields of an encoding; the first error sticks and
// later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s: %w", what, ErrCorrupt)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// size reads a non-negative int64.
func (d *decoder) size() int64 {
	v := d.uvarint()
	if v > math.MaxInt64 {
		d.fail("size")
		return 0
	}
	return int64(v)
}

func (d *decoder) int() int {
	v := d.varint()
	if v < math.MinInt || v > math.MaxInt {
		d.fail("integer")
		return 0
	}
	return int(v)
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail("device number")
		return 0
	}
	return uint32(v)
}

// count reads an element count, refusing counts that could not fit in
// the remaining bytes at minSize bytes each (no huge allocations from a
// corrupt length).
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/minSize) {
		d.fail("count")
		return 0
	}
	return int(v)
}

func (d *decoder) byte1() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes(n int) []byte {
	if n < 0 || n > len(d.b) {
		d.fail("length")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes(int(d.uvarint()))) }
