package browse

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/rootfs"
)

// openLayers writes a one-image layout of the layers, each compressed
// with c, into a temporary directory and opens it.
func openLayers(t *testing.T, c tartest.Compression, layers ...*tartest.Layer) *rootfs.RootFS {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	specs := make([]imagetest.LayerSpec, len(layers))
	for i, l := range layers {
		specs[i] = imagetest.LayerSpec{Layer: l, Compression: c}
	}
	imagetest.WriteLayout(t, dir, imagetest.Image{Tag: "test", Layers: specs})
	r, err := rootfs.Open(context.Background(), dir+":test", rootfs.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("rootfs.Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// randomData returns n bytes seeded from the test name and label.
func randomData(t *testing.T, label string, n int) []byte {
	var seed uint64
	for _, c := range t.Name() + "/" + label {
		seed = seed*31 + uint64(c)
	}
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
