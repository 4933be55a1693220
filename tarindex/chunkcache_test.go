package tarindex

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
)

// TestSharedChunkCache: eight Readers of layers with the same layout
// (so the same segments and chunk numbers) but different bytes share a
// small ChunkCache and read concurrently. Each gets its own layer's
// bytes, and the cache never holds more than its bound.
func TestSharedChunkCache(t *testing.T) {
	const readers, fileBytes = 8, 3 << 20
	cache := NewChunkCache(6 * chunkSize)
	var rds []*Reader
	var entries []*Entry
	var contents [][]byte
	for i := range readers {
		data := bytes.Repeat([]byte(fmt.Sprintf("reader %d\n", i)), fileBytes/9)
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tw.WriteHeader(&tar.Header{Name: "f", Size: int64(len(data)), Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write(data)
		tw.Close()
		blob := compress(rngFor(t), b.Bytes(), Gzip, 1)
		ix := mustBuild(t, blob, Gzip, BuildOptions{Span: 1 << 20})
		rd := NewReader(ix, bytes.NewReader(blob), ReaderOptions{Cache: cache})
		defer rd.Close()
		rds, entries, contents = append(rds, rd), append(entries, &ix.Entries[0]), append(contents, data)
	}
	var wg sync.WaitGroup
	errs := make(chan error, readers*2)
	for g := range readers * 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := g % readers
			buf := make([]byte, 100<<10)
			for pass := range 3 {
				for off := int64(pass * 7000); off < entries[i].Size; off += int64(len(buf)) {
					n, err := rds[i].ReadAt(entries[i], buf, off)
					if err != nil && err != io.EOF {
						errs <- fmt.Errorf("ReadAt(reader %d, %d) = %v", i, off, err)
						return
					}
					if !bytes.Equal(buf[:n], contents[i][off:off+int64(n)]) {
						errs <- fmt.Errorf("ReadAt(reader %d, %d): another layer's bytes", i, off)
						return
					}
					if held := cache.Bytes(); held > cache.Limit() {
						errs <- fmt.Errorf("%d bytes cached, bound %d", held, cache.Limit())
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := cache.heldBytes(); got != cache.Bytes() {
		t.Errorf("the cache's chunks hold %d bytes, it counts %d", got, cache.Bytes())
	}
	for _, rd := range rds {
		rd.Close()
	}
	if got := cache.Bytes(); got != 0 {
		t.Errorf("%d bytes cached after every Reader closed", got)
	}
}

// TestChunkCacheReserve: while one Reader fills a shared cache, another
// Reader's last chunk stays in it.
func TestChunkCacheReserve(t *testing.T) {
	cache := NewChunkCache(8 * chunkSize)
	var rds []*Reader
	var es []*Entry
	for i := range 2 {
		data := bytes.Repeat([]byte(fmt.Sprintf("layer %d\n", i)), (4<<20)/8)
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tw.WriteHeader(&tar.Header{Name: "f", Size: int64(len(data)), Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write(data)
		tw.Close()
		blob := compress(rngFor(t), b.Bytes(), Gzip, 1)
		ix := mustBuild(t, blob, Gzip, BuildOptions{})
		rd := NewReader(ix, bytes.NewReader(blob), ReaderOptions{Cache: cache})
		defer rd.Close()
		rds, es = append(rds, rd), append(es, &ix.Entries[0])
	}
	buf := make([]byte, 4096)
	rds[0].ReadAt(es[0], buf, 0) // layer 0's first chunk
	for off := int64(0); off < es[1].Size; off += chunkSize {
		rds[1].ReadAt(es[1], buf, off) // layer 1 goes through 16 chunks
	}
	if cache.lookupFor(rds[0], 0, 0) == nil {
		t.Errorf("layer 0's chunk was evicted while layer 1 held more than ReaderReserve")
	}
	if held := cache.Bytes(); held > cache.Limit() {
		t.Errorf("%d bytes cached, bound %d", held, cache.Limit())
	}
}
