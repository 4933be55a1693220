package rootfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/tarindex"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// twoLayers writes a layout whose lower gzip layer is partly deleted
// and replaced by an upper zstd layer, and returns its reference.
func twoLayers(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	lower := new(tartest.Layer).
		Dir("etc").
		File("etc/os-release", []byte("ID=test\n")).
		File("etc/gone", []byte("deleted above\n")).
		File("etc/motd", []byte("lower\n"))
	upper := new(tartest.Layer).
		Whiteout("etc", "gone").
		File("etc/motd", bytes.Repeat([]byte("upper\n"), 100000))
	imagetest.WriteLayout(t, dir, imagetest.Image{
		Tag: "t",
		Layers: []imagetest.LayerSpec{
			{Layer: lower, Compression: tartest.Gzip},
			{Layer: upper, Compression: tartest.Zstd},
		},
	})
	return dir + ":t"
}

func readAll(t *testing.T, r *RootFS, name string) []byte {
	t.Helper()
	n, err := r.Tree.Resolve(name)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", name, err)
	}
	var out []byte
	buf := make([]byte, 7777) // odd size: reads straddle chunk boundaries
	for off := int64(0); ; {
		k, err := r.ReadAt(n, buf, off)
		out = append(out, buf[:k]...)
		off += int64(k)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("ReadAt(%q, %d): %v", name, off, err)
		}
	}
}

func TestOpenMergesAndReads(t *testing.T) {
	ref := twoLayers(t)
	cache := t.TempDir()
	for _, pass := range []string{"cold", "warm"} {
		t.Run(pass, func(t *testing.T) {
			r, err := Open(context.Background(), ref, Options{CacheDir: cache})
			if err != nil {
				t.Fatalf("Open(%q): %v", ref, err)
			}
			defer r.Close()
			if got, want := string(readAll(t, r, "etc/os-release")), "ID=test\n"; got != want {
				t.Errorf("etc/os-release = %q, want %q", got, want)
			}
			if got, want := readAll(t, r, "etc/motd"), bytes.Repeat([]byte("upper\n"), 100000); !bytes.Equal(got, want) {
				t.Errorf("etc/motd: got %d bytes, want %d of the upper layer", len(got), len(want))
			}
			if _, err := r.Tree.Resolve("etc/gone"); err == nil {
				t.Errorf("Resolve(%q) succeeded, want the whiteout to hide it", "etc/gone")
			}
			if len(r.Indexes) != 2 {
				t.Fatalf("len(Indexes) = %d, want 2", len(r.Indexes))
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join(cache, "index", "*", "sha256", "*[0-9a-f]"))
	if len(files) != 2 {
		t.Errorf("cache holds %d index files (%v), want 2", len(files), files)
	}
}

func TestReadNonRegular(t *testing.T) {
	r, err := Open(context.Background(), twoLayers(t), Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ReadAt(r.Tree.Root(), make([]byte, 1), 0); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadAt(root) = %v, want ErrNotRegular", err)
	}
}

func TestOpenDiffIDMismatch(t *testing.T) {
	dir := t.TempDir()
	imagetest.WriteLayout(t, dir, imagetest.Image{
		Tag:    "t",
		Layers: []imagetest.LayerSpec{{Layer: new(tartest.Layer).File("a", []byte("a")), Compression: tartest.Gzip}},
		Config: ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("not the layer")}}},
	})
	_, err := Open(context.Background(), dir+":t", Options{CacheDir: t.TempDir()})
	if !errors.Is(err, tarindex.ErrDiffIDMismatch) {
		t.Fatalf("Open = %v, want ErrDiffIDMismatch", err)
	}
}

func TestOpenMissingLayerBlob(t *testing.T) {
	dir := t.TempDir()
	descs := imagetest.WriteLayout(t, dir, imagetest.Image{
		Tag:    "t",
		Layers: []imagetest.LayerSpec{{Layer: new(tartest.Layer).File("a", []byte("a")), Compression: tartest.Gzip}},
	})
	m := imagetest.ReadManifest(t, dir, descs[0])
	if err := os.Remove(imagetest.BlobPath(dir, m.Layers[0].Digest)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir+":t", Options{CacheDir: t.TempDir()})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(m.Layers[0].Digest.Encoded())) {
		t.Fatalf("Open = %v, want an error naming the missing blob", err)
	}
}
