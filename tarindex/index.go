package tarindex

import (
	"github.com/opencontainers/go-digest"

	"github.com/ocifs/ocifs/internal/cachefile"
)

// Index describes one layer blob: its entries and how to reach any byte
// of its uncompressed tar stream.
type Index struct {
	MediaType string        // the layer descriptor's media type
	Digest    digest.Digest // the blob's digest
	BlobSize  int64         // the blob's size in bytes
	DiffID    digest.Digest // digest of the uncompressed tar stream
	TarSize   int64         // size of the uncompressed tar stream
	// Entries are the layer's entries in tar order; nil when the Index
	// came from DecodeAccess, as on a Cache.Access hit (Summary still
	// counts them).
	Entries []Entry

	// compression-specific access points are unexported
	compression Compression
	span        int64    // distance between access points asked for at build time
	chunkSize   int64    // granularity of chunkCRC and of the Reader's cache
	points      []point  // access points, by increasing U; empty for plain tar
	windows     []byte   // flate-compressed gzip windows, referenced by points
	chunkCRC    []uint32 // CRC-32C of each chunk of each segment, in order
	chunkBase   []int    // index into chunkCRC of each segment's first chunk
	encodedSize int      // size of the encoding this Index came from or went to; 0 if unknown
	entryCount  int      // entries in the encoding this Index came from; what Summary reports when Entries is nil

	// file is the mapped cache file windows points into, when the Index
	// was loaded by a Cache. Referencing it here keeps it mapped exactly
	// as long as the Index (or a copy of it) can be read.
	file *cachefile.Mapping
}

// point kinds.
const (
	// pointStart: a gzip member header or a zstd frame (or skippable
	// frame) starts at C; decoding needs no history.
	pointStart uint8 = iota
	// pointInflate: a deflate block boundary inside a gzip member; the
	// block starts Bits bits into byte C and needs the 32 KiB window.
	pointInflate
)

// point is an access point: a place in the compressed stream where
// decoding can begin, and the uncompressed offset it yields. Segment i
// is the uncompressed range [points[i].U, points[i+1].U) (the last one
// ends at TarSize).
type point struct {
	U      int64 // uncompressed offset
	C      int64 // compressed offset
	Bits   uint8 // pointInflate: bits of byte C already consumed
	Kind   uint8
	winOff int // pointInflate: window's compressed bytes are windows[winOff:winOff+winLen]
	winLen int
	winCRC uint32 // pointInflate: CRC-32C of the inflated window
}

// Summary is what a caller prints about an index.
type Summary struct {
	Compression Compression
	// Entries counts the layer's entries, also when Index.Entries was
	// not loaded (DecodeAccess).
	Entries      int
	TarSize      int64
	BlobSize     int64
	AccessPoints int
	// EncodedSize is the size of the index encoding, when this Index was
	// decoded, or loaded from or stored to a Cache; zero otherwise.
	EncodedSize int
}

// Summary returns counts and sizes for progress output and reports.
func (ix *Index) Summary() Summary {
	n := len(ix.Entries)
	if ix.Entries == nil {
		n = ix.entryCount
	}
	return Summary{
		Compression:  ix.compression,
		Entries:      n,
		TarSize:      ix.TarSize,
		BlobSize:     ix.BlobSize,
		AccessPoints: len(ix.points),
		EncodedSize:  ix.encodedSize,
	}
}

// Compression returns the blob's compression.
func (ix *Index) Compression() Compression { return ix.compression }

// segmentEnd returns the uncompressed end of segment i.
func (ix *Index) segmentEnd(i int) int64 {
	if i+1 < len(ix.points) {
		return ix.points[i+1].U
	}
	return ix.TarSize
}

// computeChunkBase fills chunkBase from points and reports the number of
// chunks the segments need. Plain tar has no access points: its one
// segment is the whole stream.
func (ix *Index) computeChunkBase() int {
	ix.chunkBase = nil
	if ix.compression == Uncompressed {
		return int((ix.TarSize + ix.chunkSize - 1) / ix.chunkSize)
	}
	if len(ix.points) > 0 {
		ix.chunkBase = make([]int, len(ix.points))
	}
	n := 0
	for i := range ix.points {
		ix.chunkBase[i] = n
		l := ix.segmentEnd(i) - ix.points[i].U
		n += int((l + ix.chunkSize - 1) / ix.chunkSize)
	}
	return n
}
