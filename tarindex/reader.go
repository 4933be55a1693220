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
	// picks DefaultCacheBytes. Ignored when Cache is set.
	CacheBytes int64
	// Cache, when set, holds the Reader's decompressed chunks together
	// with those of the other Readers given it, within its one bound
	// (the layers of one image share one). Nil gives the Reader a cache
	// of its own of CacheBytes.
	Cache *ChunkCache
	// Decoders bounds the live decoders kept positioned where the last
	// reads stopped, so that sequential reads continue instead of
	// restarting at an access point (what makes a zstd layer with one
	// long frame readable); zero picks 4. Each holds up to one zstd
	// window (at most ZstdMaxWindow) or one 32 KiB inflate window, plus
	// a 64 KiB read buffer.
	Decoders int
}

// Reader serves entry contents from the blob. It is safe for concurrent
// use.
//
// For compressed blobs it reads in chunks of 256 KiB of uncompressed
// data: a chunk is decoded from the nearest access point at or before
// it (or from a live decoder already positioned between the two), its
// CRC-32C is checked against the index, and it is kept in a ChunkCache
// (its own, or one shared with other Readers). Two goroutines that miss
// the same chunk decode it once.
type Reader struct {
	ix         *Index
	blob       io.ReaderAt
	keepBehind int64
	maxDec     int
	cache      *ChunkCache
	id         uint64 // the Reader's chunks in cache

	mu   sync.Mutex     // guards decs
	decs []*liveDecoder // oldest first

	// stripes serialise decoding per segment (hashed), so concurrent
	// misses in one segment wait for one decoder rather than each
	// starting their own.
	stripes [32]sync.Mutex

	// bufs recycles buffers of chunk sizes other than chunkSize (which
	// come from chunkBufs): a fresh buffer per chunk costs more in page
	// faults and garbage than decoding it. A pointer, so that chunks in
	// a shared cache can give buffers back without holding the Reader.
	bufs *sync.Pool
}

// chunkBufs holds the buffers of chunkSize chunks, the size every index
// Build writes, for all Readers: memory advised for huge pages, so that
// the first reads of a mount do not pay a page fault per 4 KiB of
// decoded data (see internal/hugemem). Readers give their buffers back
// when chunks leave their cache, on Close, and, for a Reader dropped
// without Close, when it is garbage collected.
var chunkBufs = hugemem.NewSlab(chunkSize)

// chunkKey names chunk k of segment seg of the Reader numbered reader.
type chunkKey struct {
	reader uint64
	seg, k int
}

// cachedChunk is a decompressed chunk. Its buffer is recycled once it
// has left the LRU and no reader is still copying from it.
type cachedChunk struct {
	key     chunkKey
	data    []byte
	pool    *sync.Pool // where data goes back, if not chunkBufs
	refs    int        // readers copying from data; guarded by ChunkCache.mu
	evicted bool       // not in the LRU (or never was); guarded by ChunkCache.mu
}

// ChunkCache holds decompressed chunks for one or more Readers, least
// recently used first out, within one bound on the bytes it keeps: the
// layers of an image share one, so that the image's cache is bounded
// whatever its number of layers. It is safe for concurrent use; each
// operation holds its one mutex for a map look-up and a few list moves.
//
// So that a few sequential readers of every layer still find the
// chunks they just decoded while a busy layer fills the cache, eviction
// passes over the chunks of a Reader that keeps no more than
// ReaderReserve bytes, as long as another chunk can go. The bound
// itself never gives way: when only reserved chunks are left, the
// least recently used of them goes.
type ChunkCache struct {
	limit int64

	mu     sync.Mutex // guards everything below and the chunks' refs, evicted
	chunks map[chunkKey]*list.Element
	lru    *list.List // of *cachedChunk, most recent first
	bytes  int64
	held   map[uint64]int64 // bytes per Reader
	nextID uint64
}

// ReaderReserve is what a ChunkCache keeps of each Reader's chunks
// before others' while it can (see ChunkCache): four chunks, the last
// one read by each of a few sequential readers.
const ReaderReserve = 4 * chunkSize

// NewChunkCache returns a cache of at most limit bytes of chunks; zero
// or less picks DefaultCacheBytes. A single chunk larger than limit is
// still kept, alone.
func NewChunkCache(limit int64) *ChunkCache {
	if limit <= 0 {
		limit = DefaultCacheBytes
	}
	return &ChunkCache{limit: limit, chunks: map[chunkKey]*list.Element{}, lru: list.New(), held: map[uint64]int64{}}
}

// Bytes returns the bytes of the chunks the cache holds now.
func (c *ChunkCache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Limit returns the cache's bound in bytes.
func (c *ChunkCache) Limit() int64 { return c.limit }

// register returns a new Reader's number.
func (c *ChunkCache) register() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	return c.nextID
}

// drop removes the chunks of Reader id, recycling their buffers once
// nobody copies from them: for Close, and for a Reader garbage
// collected without Close.
func (c *ChunkCache) drop(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		if ch := el.Value.(*cachedChunk); ch.key.reader == id {
			c.remove(el)
		}
		el = next
	}
}

// remove takes el out of the LRU. c.mu must be held.
func (c *ChunkCache) remove(el *list.Element) {
	ch := c.lru.Remove(el).(*cachedChunk)
	delete(c.chunks, ch.key)
	c.bytes -= int64(len(ch.data))
	if c.held[ch.key.reader] -= int64(len(ch.data)); c.held[ch.key.reader] <= 0 {
		delete(c.held, ch.key.reader)
	}
	ch.evicted = true
	c.recycle(ch)
}

// victim returns the element to evict: the least recently used chunk of
// a Reader holding more than ReaderReserve, else the least recently used
// one, never the most recent (the one just inserted). c.mu must be held
// and the LRU hold two chunks or more.
func (c *ChunkCache) victim() *list.Element {
	for el := c.lru.Back(); el != c.lru.Front(); el = el.Prev() {
		if c.held[el.Value.(*cachedChunk).key.reader] > ReaderReserve {
			return el
		}
	}
	return c.lru.Back()
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
	cache := opts.Cache
	if cache == nil {
		cache = NewChunkCache(opts.CacheBytes)
	}
	r := &Reader{
		ix:     ix,
		blob:   blob,
		maxDec: opts.Decoders,
		cache:  cache,
		id:     cache.register(),
		bufs:   new(sync.Pool),
	}
	// A Reader dropped without Close gives its chunks back when it is
	// garbage collected: nothing in the cache refers to it.
	runtime.AddCleanup(r, func(k chunkKey) { cache.drop(k.reader) }, chunkKey{reader: r.id})
	if r.maxDec <= 0 {
		r.maxDec = 4
	}
	r.keepBehind = min(4<<20, cache.limit/4)
	return r
}

// Close releases the live decoders and the Reader's chunks in the
// cache. The Reader must not be used afterwards.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.decs {
		d.close()
	}
	r.decs = nil
	r.cache.drop(r.id)
	return nil
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
		r.cache.release(c)
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
func (c *ChunkCache) lookup(key chunkKey) *cachedChunk {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.chunks[key]; ok {
		c.lru.MoveToFront(el)
		ch := el.Value.(*cachedChunk)
		ch.refs++
		return ch
	}
	return nil
}

// release drops a reference taken by lookup or chunk.
func (c *ChunkCache) release(ch *cachedChunk) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch.refs--
	c.recycle(ch)
}

// recycle returns ch's buffer to its pool if nothing uses it any more.
// c.mu must be held.
func (c *ChunkCache) recycle(ch *cachedChunk) {
	if ch.evicted && ch.refs == 0 && ch.data != nil {
		putBuf(ch.pool, ch.data)
		ch.data = nil
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

// putBuf recycles a buffer from Reader.newBuf that nothing uses any
// more: to chunkBufs if it is of chunkSize, else to pool.
func putBuf(pool *sync.Pool, b []byte) {
	if cap(b) == chunkSize {
		chunkBufs.Put(b)
		return
	}
	b = b[:cap(b)]
	pool.Put(&b)
}

// insert adds ch to the LRU, or marks it evicted if it is there
// already, and evicts chunks (see victim) until the cache is within its
// limit.
func (c *ChunkCache) insert(ch *cachedChunk) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.chunks[ch.key]; ok {
		ch.evicted = true
		c.recycle(ch)
		return
	}
	c.chunks[ch.key] = c.lru.PushFront(ch)
	c.bytes += int64(len(ch.data))
	c.held[ch.key.reader] += int64(len(ch.data))
	for c.bytes > c.limit && c.lru.Len() > 1 {
		c.remove(c.victim())
	}
}

// chunk returns chunk k of segment seg, decoding it if needed,
// referenced: the caller must release it.
func (r *Reader) chunk(seg, k int) (*cachedChunk, error) {
	key := chunkKey{r.id, seg, k}
	if c := r.cache.lookup(key); c != nil {
		return c, nil
	}
	st := &r.stripes[seg%len(r.stripes)]
	st.Lock()
	defer st.Unlock()
	if c := r.cache.lookup(key); c != nil {
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
			putBuf(r.bufs, buf)
			d.close()
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("decompressed stream ends before offset %d: %w", d.pos+n, ErrMalformed)
			}
			return nil, fmt.Errorf("decompress at offset %d: %w", d.pos, err)
		}
		if got, sum := crc32.Checksum(buf, castagnoli), ix.chunkCRC[ix.chunkBase[d.seg]+ck]; got != sum {
			putBuf(r.bufs, buf)
			d.close()
			return nil, fmt.Errorf("decompress at offset %d: CRC-32C %08x, index says %08x: %w", d.pos, got, sum, ErrMalformed)
		}
		c := &cachedChunk{key: chunkKey{r.id, d.seg, ck}, data: buf, pool: r.bufs}
		if c.key == key {
			c.refs, want = 1, c
		}
		if c == want || start-d.pos <= r.keepBehind {
			r.cache.insert(c)
		} else {
			putBuf(r.bufs, buf) // unreferenced, and in no cache
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
