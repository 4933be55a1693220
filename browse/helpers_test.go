package browse

import (
	"context"
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
