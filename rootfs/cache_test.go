package rootfs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
)

// TestChunkCacheBoundedForImage: reading every file of a 10-layer image,
// in full, keeps the decompressed chunks of all layers within the one
// image-wide bound docs/architecture.md gives, not a bound per layer.
func TestChunkCacheBoundedForImage(t *testing.T) {
	const layers, fileBytes = 10, 6 << 20
	dir := t.TempDir()
	var specs []imagetest.LayerSpec
	for i := range layers {
		// Compressible but distinct per layer, so that it builds fast.
		data := bytes.Repeat([]byte(fmt.Sprintf("layer %d line\n", i)), fileBytes/14)
		specs = append(specs, imagetest.LayerSpec{Layer: new(tartest.Layer).File(fmt.Sprintf("f%d", i), data), Compression: tartest.Gzip})
	}
	imagetest.WriteLayout(t, dir, imagetest.Image{Tag: "t", Layers: specs})
	r, err := Open(context.Background(), dir+":t", Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	var peak int64
	buf := make([]byte, 1<<20)
	for i := range layers {
		n := r.Tree.Lookup(r.Tree.Root(), fmt.Sprintf("f%d", i))
		if n == nil {
			t.Fatalf("Lookup(f%d) = nil", i)
		}
		want := fmt.Sprintf("layer %d line\n", i)
		for off := int64(0); off < n.Entry.Size; off += int64(len(buf)) {
			k, err := r.ReadAt(n, buf, off)
			if err != nil && err != io.EOF {
				t.Fatalf("ReadAt(f%d, %d) = %v", i, off, err)
			}
			if !bytes.HasPrefix(buf[:k], []byte(want)[off%int64(len(want)):]) {
				t.Fatalf("ReadAt(f%d, %d): wrong bytes %q", i, off, buf[:min(k, 20)])
			}
			held, limit := r.CachedChunkBytes()
			peak = max(peak, held)
			if held > limit {
				t.Fatalf("after reading f%d at %d: %d bytes of chunks cached, bound %d", i, off, held, limit)
			}
		}
	}
	if _, limit := r.CachedChunkBytes(); peak < limit/2 {
		t.Errorf("peak %d bytes of chunks cached: the reads did not fill the %d-byte cache, the test shows nothing", peak, limit)
	}
}
