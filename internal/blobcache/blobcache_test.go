package blobcache

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ocifs/ocifs/internal/tartest"
)

// source is a blob in memory that counts what is read of it and can
// be made to fail.
type source struct {
	data  []byte
	reads atomic.Int64
	bytes atomic.Int64
	fail  atomic.Bool
}

func (s *source) ReadAt(p []byte, off int64) (int, error) {
	if s.fail.Load() {
		return 0, errors.New("registry unreachable")
	}
	s.reads.Add(1)
	if off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	n := copy(p, s.data[off:])
	s.bytes.Add(int64(n))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (s *source) Size() int64  { return int64(len(s.data)) }
func (s *source) Close() error { return nil }

func newBlob(t *testing.T, size int) (*source, digest.Digest) {
	t.Helper()
	data := tartest.RandomData(t, t.Name(), size)
	return &source{data: data}, digest.FromBytes(data)
}

func readAt(t *testing.T, b Blob, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	got, err := b.ReadAt(p, off)
	if err != nil && !(err == io.EOF && off+int64(got) == b.Size()) {
		t.Fatalf("ReadAt(%d, %d) = %d, %v", off, n, got, err)
	}
	return p[:got]
}

func TestReadsRightBytesOnceFetched(t *testing.T) {
	src, d := newBlob(t, 5*ChunkSize+12345)
	c := &Cache{Dir: t.TempDir()}
	b := c.Wrap(d, src)
	r := rand.New(rand.NewPCG(1, 2))
	type span struct {
		off int64
		n   int
	}
	var spans []span
	for range 200 {
		off := r.Int64N(src.Size())
		spans = append(spans, span{off, 1 + r.IntN(3*ChunkSize)})
	}
	spans = append(spans, span{0, 1}, span{src.Size() - 1, 10}, span{ChunkSize - 1, 2})
	for _, s := range spans {
		want := src.data[s.off:min(s.off+int64(s.n), src.Size())]
		if got := readAt(t, b, s.off, s.n); !bytes.Equal(got, want) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", s.off, s.n)
		}
	}
	if got := src.bytes.Load(); got > src.Size() {
		t.Errorf("fetched %d bytes of a %d-byte blob: some twice", got, src.Size())
	}
	// A second Cache over the same directory, as another mount would
	// be, fetches nothing.
	before := src.reads.Load()
	b2 := (&Cache{Dir: c.Dir}).Wrap(d, src)
	for _, s := range spans {
		want := src.data[s.off:min(s.off+int64(s.n), src.Size())]
		if got := readAt(t, b2, s.off, s.n); !bytes.Equal(got, want) {
			t.Fatalf("second cache: ReadAt(%d, %d): wrong bytes", s.off, s.n)
		}
	}
	if src.reads.Load() != before {
		t.Errorf("a second cache over the same directory read the source %d times", src.reads.Load()-before)
	}
}

func TestSequentialReadFetchesAhead(t *testing.T) {
	src, d := newBlob(t, 40*ChunkSize)
	b := (&Cache{Dir: t.TempDir()}).Wrap(d, src)
	got, err := io.ReadAll(io.NewSectionReader(b, 0, src.Size()))
	if err != nil || !bytes.Equal(got, src.data) {
		t.Fatalf("sequential read: %v, equal %v", err, bytes.Equal(got, src.data))
	}
	// 40 chunks in windows of 1, 2, 4, 8, 8, ... chunks.
	if n := src.reads.Load(); n > 10 {
		t.Errorf("a sequential read of 40 chunks sent %d reads to the source, want at most 10", n)
	}
	if got := src.bytes.Load(); got != src.Size() {
		t.Errorf("fetched %d bytes, want %d", got, src.Size())
	}
}

func TestConcurrentReadersFetchOnce(t *testing.T) {
	src, d := newBlob(t, 4*ChunkSize)
	b := (&Cache{Dir: t.TempDir()}).Wrap(d, src)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			off := int64(i%4) * ChunkSize / 2
			p := make([]byte, 2*ChunkSize)
			if _, err := b.ReadAt(p, off); err != nil {
				t.Errorf("ReadAt: %v", err)
			}
			if !bytes.Equal(p, src.data[off:off+int64(len(p))]) {
				t.Errorf("ReadAt(%d): wrong bytes", off)
			}
		})
	}
	wg.Wait()
	if got := src.bytes.Load(); got > src.Size() {
		t.Errorf("16 concurrent readers fetched %d bytes of a %d-byte blob", got, src.Size())
	}
}

// TestDamagedChunkIsFetchedAgain: every way a chunk file can be wrong
// costs a fetch, never a wrong byte, and the file is good afterwards.
func TestDamagedChunkIsFetchedAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path, other string)
	}{
		{"flipped data byte", func(t *testing.T, path, _ string) { flip(t, path, headerSize+1000) }},
		{"flipped header byte", func(t *testing.T, path, _ string) { flip(t, path, 9) }},
		{"truncated", func(t *testing.T, path, _ string) { truncate(t, path, headerSize+100) }},
		{"empty", func(t *testing.T, path, _ string) { truncate(t, path, 0) }},
		{"longer", func(t *testing.T, path, _ string) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("junk"))
			f.Close()
		}},
		{"another chunk's file", func(t *testing.T, path, other string) {
			data, err := os.ReadFile(other)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, d := newBlob(t, 3*ChunkSize)
			c := &Cache{Dir: t.TempDir()}
			b := c.Wrap(d, src).(*cachedBlob)
			readAt(t, b, 0, int(src.Size()))
			path, other := b.chunkPath(1), b.chunkPath(2)
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("chunk 1 was not stored: %v", err)
			}
			tc.damage(t, path, other)
			before := src.bytes.Load()
			b2 := (&Cache{Dir: c.Dir}).Wrap(d, src)
			if got := readAt(t, b2, ChunkSize+10, 100); !bytes.Equal(got, src.data[ChunkSize+10:ChunkSize+110]) {
				t.Fatalf("read over the damaged chunk: wrong bytes")
			}
			if src.bytes.Load() == before {
				t.Errorf("the damaged chunk was used, not fetched again")
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, good) {
				t.Errorf("the chunk file was not repaired")
			}
		})
	}
}

func TestSourceErrorStoresNothing(t *testing.T) {
	src, d := newBlob(t, 2*ChunkSize)
	c := &Cache{Dir: t.TempDir()}
	b := c.Wrap(d, src)
	src.fail.Store(true)
	if _, err := b.ReadAt(make([]byte, 10), 5); err == nil {
		t.Fatalf("ReadAt with the source down succeeded")
	}
	if u, _ := c.Du(); u.Files != 0 {
		t.Errorf("a failed fetch left %d chunk files", u.Files)
	}
	src.fail.Store(false)
	if got := readAt(t, b, 5, 10); !bytes.Equal(got, src.data[5:15]) {
		t.Errorf("read after the source came back: wrong bytes")
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	src, d := newBlob(t, 10*ChunkSize)
	max := int64(4 * (ChunkSize + headerSize))
	c := &Cache{Dir: t.TempDir(), MaxBytes: max}
	b := c.Wrap(d, src).(*cachedBlob)
	for i := range int64(10) {
		readAt(t, b, i*ChunkSize+1, 1) // random reads: one chunk each
		u, err := c.Du()
		if err != nil {
			t.Fatal(err)
		}
		if u.Bytes > max {
			t.Fatalf("after chunk %d the cache holds %d bytes, over its bound %d", i, u.Bytes, max)
		}
	}
	if !b.exists(9) {
		t.Errorf("the chunk read last was evicted")
	}
	if b.exists(0) {
		t.Errorf("the chunk read first is still there")
	}
	if err := c.Prune(); err != nil {
		t.Fatal(err)
	}
	if u, _ := c.Du(); u.Files != 0 || u.Bytes != 0 {
		t.Errorf("after Prune, Du = %+v", u)
	}
	if got := readAt(t, b, 3*ChunkSize, 10); !bytes.Equal(got, src.data[3*ChunkSize:3*ChunkSize+10]) {
		t.Errorf("read after Prune: wrong bytes")
	}
}

func flip(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, at)
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, n int64) {
	t.Helper()
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}
