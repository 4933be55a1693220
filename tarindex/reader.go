package tarindex

import (
	"bufio"
	"container/list"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sort"
	"sync"

	"github.com/ocifs/ocifs/internal/hugemem"
)

// DefaultCacheBytes bounds a Reader's decompressed chunks when
// ReaderOptions.CacheBytes is zero.
const DefaultCacheBytes = 64 << 20

// ReaderOptions tunes NewReader. The zero value works.
type ReaderOptions struct {
	// CacheBytes bounds the memory kept for decompressed spans; zero
	// picks DefaultCacheBytes.
	CacheBytes int64
	// Decoders bounds the live decoders kept positioned where the last
	// reads stopped, so that sequential reads continue instead of
	// restarting at an access point (what makes a zstd layer with one
	// long frame readable); zero picks 4. Each holds up to one zstd
	// window or one 32 KiB inflate window plus a 64 KiB read buffer.
	Decoders int
}

// Reader serves entry contents from the blob. It is safe for concurrent
// use.
//
// For compressed blobs it reads in chunks of 256 KiB of uncompressed
// data: a chunk is decoded from the nearest access point at or before
// it (or from a live decoder already positioned between the two), its
// CRC-32C is checked against the index, and it is kept in an LRU bounded
// by CacheBytes. Two goroutines that miss the same chunk decode it once.
type Reader struct {
	ix         *Index
	blob       io.ReaderAt
	limit      int64
	keepBehind int64
	maxDec     int

	mu     sync.Mutex // guards chunks, lru, bytes, decs
	chunks map[chunkKey]*list.Element
	lru    *list.List // of *cachedChunk, most recent first
	bytes  int64
	decs   []*liveDecoder // oldest first

	// stripes serialise decoding per segment (hashed), so concurrent
	// misses in one segment wait for one decoder rather than each
	// starting their own.
	stripes [32]sync.Mutex

	// bufs recycles buffers of chunk sizes other than chunkSize (which
	// come from chunkBufs): a fresh buffer per chunk costs more in page
	// faults and garbage than decoding it.
	bufs sync.Pool
}

// chunkBufs holds the buffers of chunkSize chunks, the size every index
// Build writes, for all Readers: memory advised for huge pages, so that
// the first reads of a mount do not pay a page fault per 4 KiB of
// decoded data (see internal/hugemem). Readers give their buffers back
// when chunks leave their cache, on Close, and, for a Reader dropped
// without Close, when it is garbage collected.
var chunkBufs = hugemem.NewSlab(chunkSize)

type chunkKey struct{ seg, k int }

// cachedChunk is a decompressed chunk. Its buffer is recycled once it
// has left the LRU and no reader is still copying from it.
type cachedChunk struct {
	key     chunkKey
	data    []byte
	refs    int  // readers copying from data; guarded by Reader.mu
	evicted bool // not in the LRU (or never was); guarded by Reader.mu
}

// liveDecoder is a decompressor positioned at pos, on a chunk boundary
// of segment seg.
type liveDecoder struct {
	seg   int
	pos   int64
	r     io.Reader
	close func()
}

// NewReader returns a Reader over blob, which must be the blob ix was
// built from.
func NewReader(ix *Index, blob io.ReaderAt, opts ReaderOptions) *Reader {
	r := &Reader{
		ix:     ix,
		blob:   blob,
		limit:  opts.CacheBytes,
		maxDec: opts.Decoders,
		chunks: map[chunkKey]*list.Element{},
		lru:    list.New(),
	}
	runtime.AddCleanup(r, giveBack, r.lru)
	if r.limit <= 0 {
		r.limit = DefaultCacheBytes
	}
	if r.maxDec <= 0 {
		r.maxDec = 4
	}
	r.keepBehind = min(4<<20, r.limit/4)
	return r
}

// Close releases the live decoders and the cache. The Reader must not be
// used afterwards.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.decs {
		d.close()
	}
	r.decs = nil
	for el := r.lru.Front(); el != nil; el = el.Next() {
		c := el.Value.(*cachedChunk)
		c.evicted = true
		r.recycle(c)
	}
	r.chunks = map[chunkKey]*list.Element{}
	r.lru.Init()
	r.bytes = 0
	return nil
}

// giveBack returns the buffers of a garbage collected Reader's cache.
// Nothing else can reach them by then: every read holds the Reader.
func giveBack(lru *list.List) {
	for el := lru.Front(); el != nil; el = el.Next() {
		if c := el.Value.(*cachedChunk); c.data != nil {
			chunkBufs.Put(c.data)
			c.data = nil
		}
	}
}

// ReadAt reads len(p) bytes of e's contents at off, like io.ReaderAt.
// Holes of sparse files read as zeros. Data that does not decompress, or
// does not match the checksum recorded at build time, is an error
// wrapping ErrMalformed.
//
// e need not be one of the Index's own Entries (an Index from
// DecodeAccess has none): any entry of the same layer works, such as one
// from a cached merged tree. An entry whose data (Offset plus its size,
// or its sparse regions) does not lie inside the tar stream is refused
// with ErrMalformed before anything is read, so a stale or damaged tree
// gets an error, never a panic; an entry that is in range but wrong reads
// whatever bytes of the layer it names.
func (r *Reader) ReadAt(e *Entry, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %q at offset %d: negative offset", e.Name, off)
	}
	if err := r.ix.checkData(e); err != nil {
		return 0, fmt.Errorf("read %q: %w", e.Name, err)
	}
	if off >= e.Size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(len(p)) > e.Size-off {
		p = p[:e.Size-off]
	}
	if err := r.read(e, p, off); err != nil {
		return 0, fmt.Errorf("read %q at offset %d: %w", e.Name, off, err)
	}
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}

// checkData checks that e's data lies inside the tar stream: Offset and
// Size non-negative and, for a sparse file, regions in order, inside
// Size, and stored (one after another from Offset) before TarSize. It is
// what makes reading an entry that did not come from this Index safe,
// and what Decode checks of every entry. It costs a few comparisons, plus
// one pass over the sparse map, which reading a sparse file makes anyway.
func (ix *Index) checkData(e *Entry) error {
	phys := e.Size
	if e.Size < 0 {
		return fmt.Errorf("entry size %d: %w", e.Size, ErrMalformed)
	}
	if e.Sparse != nil {
		phys = 0
		var end int64 // logical end of the previous region
		for _, s := range e.Sparse {
			// Regions are ordered and inside [0, Size), so their
			// lengths add up to at most Size: phys cannot overflow.
			if s.Offset < end || s.Length < 0 || s.Length > e.Size || s.Offset > e.Size-s.Length {
				return fmt.Errorf("sparse region %d+%d out of order or past size %d: %w", s.Offset, s.Length, e.Size, ErrMalformed)
			}
			end = s.Offset + s.Length
			phys += s.Length
		}
	}
	if e.Offset < 0 || e.Offset > ix.TarSize-phys {
		return fmt.Errorf("entry data %d+%d outside the stream's %d bytes: %w", e.Offset, phys, ix.TarSize, ErrMalformed)
	}
	return nil
}

// read fills p from e's contents at off; ReadAt has checked e and
// clipped p to e's size.
func (r *Reader) read(e *Entry, p []byte, off int64) error {
	if e.Sparse == nil {
		return r.readStream(p, e.Offset+off)
	}
	clear(p)
	end := off + int64(len(p))
	stream := e.Offset // where the current region's data is stored
	for _, s := range e.Sparse {
		if s.Offset >= end {
			break
		}
		if s.Offset+s.Length > off {
			lo, hi := max(s.Offset, off), min(s.Offset+s.Length, end)
			if err := r.readStream(p[lo-off:hi-off], stream+lo-s.Offset); err != nil {
				return err
			}
		}
		stream += s.Length
	}
	return nil
}

// readStream fills p from the uncompressed stream at off.
func (r *Reader) readStream(p []byte, off int64) error {
	if r.ix.compression == Uncompressed {
		return r.readPlain(p, off)
	}
	pts := r.ix.points
	for len(p) > 0 {
		seg := sort.Search(len(pts), func(i int) bool { return pts[i].U > off }) - 1
		if seg < 0 {
			return fmt.Errorf("no access point before offset %d: %w", off, ErrCorrupt)
		}
		k := int((off - pts[seg].U) / r.ix.chunkSize)
		c, err := r.chunk(seg, k)
		if err != nil {
			return err
		}
		start := pts[seg].U + int64(k)*r.ix.chunkSize
		n := copy(p, c.data[off-start:])
		r.release(c)
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// readPlain fills p from a plain tar blob at off. It reads whole chunks
// and checks each against the CRC-32C recorded at build time, like the
// compressed path, so a blob truncated or rewritten after indexing (or
// between mounts, when the index comes from the cache) gives an error,
// never its new bytes. Chunks are not kept: there is nothing to
// decompress, the kernel's page cache keeps what was read, and a fresh
// 64 KiB buffer per read would cost more in page faults than the read
// (BenchmarkReadPlain measures the check).
func (r *Reader) readPlain(p []byte, off int64) error {
	ix := r.ix
	cs := ix.chunkSize
	bp := plainBufs.Get().(*[]byte)
	defer plainBufs.Put(bp)
	for len(p) > 0 {
		k := off / cs
		if k >= int64(len(ix.chunkCRC)) || cs > int64(cap(*bp)) {
			return fmt.Errorf("chunk %d of %d (%d bytes): %w", k, len(ix.chunkCRC), cs, ErrCorrupt)
		}
		start := k * cs
		buf := (*bp)[:min(cs, ix.TarSize-start)]
		n, err := r.blob.ReadAt(buf, start)
		if n < len(buf) {
			if err == nil || err == io.EOF {
				return fmt.Errorf("read blob at offset %d: blob is shorter than the index says: %w", start+int64(n), ErrMalformed)
			}
			return fmt.Errorf("read blob at offset %d: %w", start, err)
		}
		if got, sum := crc32.Checksum(buf, castagnoli), ix.chunkCRC[k]; got != sum {
			return fmt.Errorf("read blob at offset %d: CRC-32C %08x, index says %08x: %w", start, got, sum, ErrMalformed)
		}
		n = copy(p, buf[off-start:])
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// plainBufs holds chunk buffers for readPlain. Decode accepts chunk
// sizes up to 64 MiB; plain tar indexes Build writes use plainChunkSize,
// and readPlain refuses larger ones rather than allocate.
var plainBufs = sync.Pool{New: func() any { b := make([]byte, plainChunkSize); return &b }}

// lookup returns the cached chunk key, referenced: the caller must
// release it.
func (r *Reader) lookup(key chunkKey) *cachedChunk {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.chunks[key]; ok {
		r.lru.MoveToFront(el)
		c := el.Value.(*cachedChunk)
		c.refs++
		return c
	}
	return nil
}

// release drops a reference taken by lookup or chunk.
func (r *Reader) release(c *cachedChunk) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.refs--
	r.recycle(c)
}

// recycle returns c's buffer to the pool if nothing uses it any more.
// r.mu must be held.
func (r *Reader) recycle(c *cachedChunk) {
	if c.evicted && c.refs == 0 && c.data != nil {
		r.putBuf(c.data)
		c.data = nil
	}
}

// newBuf returns a chunk buffer of n bytes, n ≤ the index's chunk size.
func (r *Reader) newBuf(n int64) []byte {
	if r.ix.chunkSize == chunkSize {
		return chunkBufs.Get()[:n]
	}
	if bp, ok := r.bufs.Get().(*[]byte); ok && int64(cap(*bp)) >= n {
		return (*bp)[:n]
	}
	return make([]byte, n, r.ix.chunkSize)
}

// putBuf recycles a buffer from newBuf that nothing uses any more.
func (r *Reader) putBuf(b []byte) {
	if cap(b) == chunkSize {
		chunkBufs.Put(b)
		return
	}
	b = b[:cap(b)]
	r.bufs.Put(&b)
}

// insert adds c to the LRU, or marks it evicted if it is there already,
// and evicts the least recently used chunks beyond the limit.
func (r *Reader) insert(c *cachedChunk) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.chunks[c.key]; ok {
		c.evicted = true
		r.recycle(c)
		return
	}
	r.chunks[c.key] = r.lru.PushFront(c)
	r.bytes += int64(len(c.data))
	for r.bytes > r.limit && r.lru.Len() > 1 {
		old := r.lru.Remove(r.lru.Back()).(*cachedChunk)
		delete(r.chunks, old.key)
		r.bytes -= int64(len(old.data))
		old.evicted = true
		r.recycle(old)
	}
}

// chunk returns chunk k of segment seg, decoding it if needed,
// referenced: the caller must release it.
func (r *Reader) chunk(seg, k int) (*cachedChunk, error) {
	key := chunkKey{seg, k}
	if c := r.lookup(key); c != nil {
		return c, nil
	}
	st := &r.stripes[seg%len(r.stripes)]
	st.Lock()
	defer st.Unlock()
	if c := r.lookup(key); c != nil {
		return c, nil
	}
	ix := r.ix
	start := ix.points[seg].U + int64(k)*ix.chunkSize
	if k < 0 || start >= ix.segmentEnd(seg) {
		// readStream never asks for this once ReadAt has checked the
		// entry; a decoder sent past the last segment would panic.
		return nil, fmt.Errorf("chunk %d of segment %d outside the stream: %w", k, seg, ErrCorrupt)
	}
	d := r.takeDecoder(seg, start)
	if d == nil {
		var err error
		if d, err = r.openDecoder(seg); err != nil {
			return nil, err
		}
	}
	var want *cachedChunk
	for d.pos <= start {
		segU := ix.points[d.seg].U
		ck := int((d.pos - segU) / ix.chunkSize)
		n := min(ix.chunkSize, ix.segmentEnd(d.seg)-d.pos)
		buf := r.newBuf(n)
		if _, err := io.ReadFull(d.r, buf); err != nil {
			r.putBuf(buf)
			d.close()
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("decompressed stream ends before offset %d: %w", d.pos+n, ErrMalformed)
			}
			return nil, fmt.Errorf("decompress at offset %d: %w", d.pos, err)
		}
		if got, sum := crc32.Checksum(buf, castagnoli), ix.chunkCRC[ix.chunkBase[d.seg]+ck]; got != sum {
			r.putBuf(buf)
			d.close()
			return nil, fmt.Errorf("decompress at offset %d: CRC-32C %08x, index says %08x: %w", d.pos, got, sum, ErrMalformed)
		}
		c := &cachedChunk{key: chunkKey{d.seg, ck}, data: buf}
		if c.key == key {
			c.refs, want = 1, c
		}
		if c == want || start-d.pos <= r.keepBehind {
			r.insert(c)
		} else {
			r.discard(c)
		}
		d.pos += n
		for d.seg < len(ix.points) && d.pos == ix.segmentEnd(d.seg) {
			d.seg++
		}
	}
	if d.seg < len(ix.points) {
		r.putDecoder(d)
	} else {
		d.close()
	}
	return want, nil
}

// discard recycles an unreferenced decoded chunk that goes into no
// cache.
func (r *Reader) discard(c *cachedChunk) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.evicted = true
	r.recycle(c)
}

// takeDecoder removes and returns the live decoder furthest along in
// [start of segment seg, target], or nil.
func (r *Reader) takeDecoder(seg int, target int64) *liveDecoder {
	r.mu.Lock()
	defer r.mu.Unlock()
	best := -1
	for i, d := range r.decs {
		if d.pos >= r.ix.points[seg].U && d.pos <= target && (best < 0 || d.pos > r.decs[best].pos) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	d := r.decs[best]
	r.decs = append(r.decs[:best], r.decs[best+1:]...)
	return d
}

func (r *Reader) putDecoder(d *liveDecoder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decs = append(r.decs, d)
	if len(r.decs) > r.maxDec {
		r.decs[0].close()
		r.decs = r.decs[1:]
	}
}

// openDecoder starts a decompressor at the access point of segment seg.
func (r *Reader) openDecoder(seg int) (*liveDecoder, error) {
	ix := r.ix
	p := ix.points[seg]
	if p.C < 0 || p.C > ix.BlobSize {
		return nil, fmt.Errorf("access point at compressed offset %d outside blob: %w", p.C, ErrCorrupt)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(r.blob, p.C, ix.BlobSize-p.C), 64<<10)
	d := &liveDecoder{seg: seg, pos: p.U, close: func() {}}
	switch {
	case ix.compression == Gzip && p.Kind == pointStart:
		d.r = &gzipStream{br: br, u: p.U}
	case ix.compression == Gzip && p.Kind == pointInflate:
		// DecodeAccess left the windows to be checked here, on use.
		win, err := ix.window(seg)
		if err != nil {
			return nil, err
		}
		d.r = resumeGzip(br, p, win)
	case ix.compression == Zstd && p.Kind == pointStart:
		z, err := newZstdStream(br)
		if err != nil {
			return nil, err
		}
		d.r, d.close = z, z.Close
	default:
		return nil, fmt.Errorf("access point %d of kind %d in a %s index: %w", seg, p.Kind, ix.compression, ErrCorrupt)
	}
	return d, nil
}
