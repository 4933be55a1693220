package blobcache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocifs/ocifs/internal/cachefile"
)

const (
	// ChunkSize is the unit of fetching and storing: large enough that
	// a cold read costs one request, small enough that a read of one
	// small file fetches little more than its span.
	ChunkSize = 1 << 20
	// MaxReadahead bounds how far a sequential reader fetches ahead, and
	// so the memory one read holds.
	MaxReadahead = 8 << 20
	// DefaultMaxBytes is Cache.MaxBytes when it is zero.
	DefaultMaxBytes = 10 << 30

	headerSize = 32
	magic      = "ocifsbc1"
	// Version is the chunk file format's; it is part of the path.
	Version = 1
	// touchEvery is how stale a chunk's mtime may get before a read
	// refreshes it: LRU needs no finer grain.
	touchEvery = time.Minute
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadChunk is wrapped by the reason a chunk file was not used.
var ErrBadChunk = errors.New("blobcache: bad chunk file")

// Blob is what Wrap takes and returns: image.Blob's methods.
type Blob interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// Cache is a directory of fetched chunks. The zero value is not
// usable: Dir must be set. A Cache is safe for concurrent use, and
// several processes may share a directory.
type Cache struct {
	// Dir is ocifs's cache directory; chunks go under Dir/blobs.
	Dir string
	// MaxBytes bounds the chunk files kept; zero means
	// DefaultMaxBytes.
	MaxBytes int64
	// Logger receives a record for each chunk that was bad or could
	// not be stored; nil discards.
	Logger *slog.Logger

	mu       sync.Mutex
	used     int64 // bytes of chunk files, once scanned
	scanned  bool
	evicting bool
}

func (c *Cache) root() string {
	return filepath.Join(c.Dir, "blobs", "v"+strconv.Itoa(Version))
}

func (c *Cache) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Cache) maxBytes() int64 {
	if c.MaxBytes > 0 {
		return c.MaxBytes
	}
	return DefaultMaxBytes
}

// Wrap returns src read through the cache; d is src's digest, the
// address of its chunks. Closing the result closes src.
func (c *Cache) Wrap(d digest.Digest, src Blob) Blob {
	return &cachedBlob{
		c: c, src: src, size: src.Size(),
		dir:      filepath.Join(c.root(), d.Algorithm().String(), d.Encoded()),
		inflight: make(map[int64]*flight),
	}
}

type cachedBlob struct {
	c    *Cache
	src  Blob
	size int64
	dir  string

	mu       sync.Mutex
	inflight map[int64]*flight // chunk index -> fetch under way
	lastEnd  int64             // where the last read ended
	window   int64             // readahead of a sequential reader
}

// flight is one chunk being fetched; done closes when data or err is
// set.
type flight struct {
	done chan struct{}
	data []byte
	err  error
}

func (b *cachedBlob) Size() int64  { return b.size }
func (b *cachedBlob) Close() error { return b.src.Close() }

func (b *cachedBlob) chunkLen(i int64) int64 {
	return min(ChunkSize, b.size-i*ChunkSize)
}

func (b *cachedBlob) chunkPath(i int64) string {
	return filepath.Join(b.dir, fmt.Sprintf("%016x", i*ChunkSize))
}

// ReadAt implements io.ReaderAt.
func (b *cachedBlob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: negative offset", off)
	}
	if off >= b.size {
		return 0, io.EOF
	}
	want := p
	if rest := b.size - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	if len(want) == 0 {
		return 0, nil
	}
	end := off + int64(len(want))
	first, last := off/ChunkSize, (end-1)/ChunkSize
	ahead := b.readahead(off, end)

	chunks := make([][]byte, last-first+1)
	for i := first; i <= last; i++ {
		if chunks[i-first] != nil {
			continue
		}
		if data := b.load(i); data != nil {
			chunks[i-first] = data
			continue
		}
		// Fetch the run of missing chunks from i in one read, and
		// ahead of the read if it is sequential.
		j := i
		for j < last && !b.exists(j+1) {
			j++
		}
		if j == last {
			for k := last + 1; k <= last+ahead && k*ChunkSize < b.size && !b.exists(k); k++ {
				j = k
			}
		}
		got, err := b.fetch(i, j)
		if err != nil {
			return 0, err
		}
		for k := i; k <= min(j, last); k++ {
			chunks[k-first] = got[k]
		}
	}
	n := 0
	for idx, c := range chunks {
		at := off + int64(n) - (first+int64(idx))*ChunkSize
		n += copy(want[n:], c[at:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readahead returns how many chunks past a read of [off, end) to fetch
// when they are missing: none for a random read, and for a reader that
// goes on where its last read ended a window that doubles up to
// MaxReadahead.
func (b *cachedBlob) readahead(off, end int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if off == b.lastEnd && off > 0 {
		b.window = min(max(2*b.window, ChunkSize), MaxReadahead)
	} else {
		b.window = 0
	}
	b.lastEnd = end
	return b.window / ChunkSize
}

func (b *cachedBlob) exists(i int64) bool {
	_, err := os.Lstat(b.chunkPath(i))
	return err == nil
}

// load returns chunk i from disk, checked, or nil. A bad chunk file is
// removed so that the fetch that follows replaces it.
func (b *cachedBlob) load(i int64) []byte {
	path := b.chunkPath(i)
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	n := b.chunkLen(i)
	buf := make([]byte, headerSize+n+1) // one more to notice a longer file
	got, err := io.ReadFull(f, buf)
	if err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
		err = checkChunk(buf[:got], i*ChunkSize, n)
	}
	if err != nil {
		b.c.log().Warn("drop bad cache chunk", "file", path, "err", err)
		os.Remove(path)
		return nil
	}
	if fi, err := f.Stat(); err == nil && time.Since(fi.ModTime()) > touchEvery {
		now := time.Now()
		os.Chtimes(path, now, now) // recently used, for eviction
	}
	return buf[headerSize : headerSize+n]
}

// checkChunk checks a chunk file's bytes: header, length, CRC.
func checkChunk(b []byte, off, n int64) error {
	switch {
	case int64(len(b)) != headerSize+n:
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadChunk, len(b), headerSize+n)
	case string(b[:8]) != magic:
		return fmt.Errorf("%w: bad magic", ErrBadChunk)
	case int64(binary.LittleEndian.Uint64(b[8:])) != off:
		return fmt.Errorf("%w: holds offset %d, want %d", ErrBadChunk, binary.LittleEndian.Uint64(b[8:]), off)
	case int64(binary.LittleEndian.Uint32(b[16:])) != n:
		return fmt.Errorf("%w: holds %d bytes, want %d", ErrBadChunk, binary.LittleEndian.Uint32(b[16:]), n)
	case binary.LittleEndian.Uint32(b[20:]) != crc32.Checksum(b[headerSize:], castagnoli):
		return fmt.Errorf("%w: checksum mismatch", ErrBadChunk)
	}
	return nil
}

// fetch reads chunks i to j from the blob, those another read is not
// fetching already in contiguous runs, stores them and returns them all.
func (b *cachedBlob) fetch(i, j int64) (map[int64][]byte, error) {
	mine := make([]*flight, j-i+1)
	theirs := map[int64]*flight{}
	b.mu.Lock()
	for k := i; k <= j; k++ {
		if f := b.inflight[k]; f != nil {
			theirs[k] = f
			continue
		}
		f := &flight{done: make(chan struct{})}
		b.inflight[k] = f
		mine[k-i] = f
	}
	b.mu.Unlock()
	// A fetch that ended between the caller's look at the disk and
	// the registration above has stored its chunks already (fetchRun
	// stores before it ends a flight).
	for k, f := range mine {
		if f == nil {
			continue
		}
		if data := b.load(i + int64(k)); data != nil {
			b.finish(i+int64(k), f, data, nil)
			mine[k] = nil
			theirs[i+int64(k)] = f
		}
	}

	out := make(map[int64][]byte, j-i+1)
	var firstErr error
	for k := i; k <= j; {
		if mine[k-i] == nil {
			k++
			continue
		}
		e := k
		for e < j && mine[e+1-i] != nil {
			e++
		}
		err := b.fetchRun(k, e, mine[k-i:e-i+1])
		for m := k; m <= e; m++ {
			out[m] = mine[m-i].data
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		k = e + 1
	}
	for k, f := range theirs {
		<-f.done
		if f.err != nil && firstErr == nil {
			firstErr = f.err
		}
		out[k] = f.data
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// fetchRun reads chunks i to e in one read, completes their flights
// and stores them.
func (b *cachedBlob) fetchRun(i, e int64, fl []*flight) error {
	off := i * ChunkSize
	n := min((e+1)*ChunkSize, b.size) - off
	buf := make([]byte, n)
	got, err := b.src.ReadAt(buf, off)
	if int64(got) == n {
		err = nil // io.ReaderAt may add io.EOF to a read that ends the blob
	} else if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		err = fmt.Errorf("read blob at %d (%d bytes): %w", off, n, err)
	}
	for k, f := range fl {
		var data []byte
		if err == nil {
			data = buf[int64(k)*ChunkSize : min(int64(k+1)*ChunkSize, n)]
			b.store(i+int64(k), data)
		}
		b.finish(i+int64(k), f, data, err)
	}
	return err
}

// finish ends the flight of chunk k.
func (b *cachedBlob) finish(k int64, f *flight, data []byte, err error) {
	f.data, f.err = data, err
	b.mu.Lock()
	delete(b.inflight, k)
	b.mu.Unlock()
	close(f.done)
}

// store writes chunk i; a failure only costs a later fetch.
func (b *cachedBlob) store(i int64, data []byte) {
	file := make([]byte, headerSize+len(data))
	copy(file, magic)
	binary.LittleEndian.PutUint64(file[8:], uint64(i*ChunkSize))
	binary.LittleEndian.PutUint32(file[16:], uint32(len(data)))
	binary.LittleEndian.PutUint32(file[20:], crc32.Checksum(data, castagnoli))
	copy(file[headerSize:], data)
	path := b.chunkPath(i)
	err := os.MkdirAll(b.dir, 0o755)
	if err == nil {
		err = cachefile.WriteAtomic(path, file)
	}
	if err != nil {
		b.c.log().Warn("store cache chunk", "file", path, "err", err)
		return
	}
	b.c.added(int64(len(file)))
}

// added counts n new bytes of chunk files and evicts when the cache
// is over its bound.
func (c *Cache) added(n int64) {
	c.mu.Lock()
	if !c.scanned {
		c.scanned = true
		c.mu.Unlock()
		u, _ := c.Du()
		c.mu.Lock()
		c.used += u.Bytes - n // the scan saw the new file already
	}
	c.used += n
	over := c.used > c.maxBytes() && !c.evicting
	if over {
		c.evicting = true
	}
	c.mu.Unlock()
	if over {
		c.evict(c.maxBytes() / 10 * 9)
	}
}

// evict removes the least recently used chunk files until at most
// keep bytes of them are left.
func (c *Cache) evict(keep int64) {
	defer func() {
		c.mu.Lock()
		c.evicting = false
		c.mu.Unlock()
	}()
	type file struct {
		path  string
		size  int64
		mtime time.Time
	}
	var files []file
	var total int64
	filepath.WalkDir(c.root(), func(p string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			files = append(files, file{p, fi.Size(), fi.ModTime()})
			total += fi.Size()
		}
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i].mtime.Before(files[j].mtime) })
	removed := 0
	for _, f := range files {
		if total <= keep {
			break
		}
		if os.Remove(f.path) == nil {
			total -= f.size
			removed++
		}
	}
	c.mu.Lock()
	c.used = total
	c.mu.Unlock()
	c.log().Info("evicted cache chunks", "files", removed, "kept_bytes", total, "max_bytes", c.maxBytes())
}

// Usage is what Du reports.
type Usage struct {
	Blobs, Files int
	Bytes        int64
}

// Du reports the chunk files the cache holds.
func (c *Cache) Du() (Usage, error) {
	var u Usage
	blobs := map[string]bool{}
	err := filepath.WalkDir(c.root(), func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		u.Files++
		u.Bytes += fi.Size()
		blobs[filepath.Dir(p)] = true
		return nil
	})
	u.Blobs = len(blobs)
	if err != nil {
		return u, fmt.Errorf("du %q: %w", c.root(), err)
	}
	return u, nil
}

// Prune removes every chunk file. Mounts that use the cache go on: what
// they read next is fetched again.
func (c *Cache) Prune() error {
	if err := os.RemoveAll(c.root()); err != nil {
		return fmt.Errorf("prune %q: %w", c.root(), err)
	}
	c.mu.Lock()
	c.used, c.scanned = 0, true
	c.mu.Unlock()
	return nil
}
