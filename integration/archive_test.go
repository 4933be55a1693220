package integration

import (
	"encoding/json"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
)

// TestArchivesMatchLayout mounts the archives skopeo writes of one
// image, as oci-archive and as docker-archive, and checks that each
// mounted tree is the tree of the image mounted from its layout, that
// nothing was unpacked into the cache (it stays a small fraction of
// the tarball) and that inspect and images read them.
func TestArchivesMatchLayout(t *testing.T) {
	requireMountable(t)
	skopeo := requireTool(t, "skopeo")
	bin := buildOcifs(t)

	layout := filepath.Join(t.TempDir(), "layout")
	ls := whiteoutLayers()
	big := new(tartest.Layer).Dir("data").File("data/big", tartest.RandomData(t, "big", 8<<20))
	imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "t", Layers: []imagetest.LayerSpec{
		{Layer: everythingLayer(t), Compression: tartest.Gzip},
		{Layer: ls[0], Compression: tartest.Gzip},
		{Layer: ls[1], Compression: tartest.Plain},
		// skopeo's docker-archive takes no zstd layer.
		{Layer: ls[2], Compression: tartest.Gzip},
		{Layer: big, Compression: tartest.Gzip},
	}})
	dir := t.TempDir()
	ociTar, dockerTar := filepath.Join(dir, "oci.tar"), filepath.Join(dir, "docker.tar")
	run(t, skopeo, "copy", "oci:"+layout+":t", "oci-archive:"+ociTar+":t")
	run(t, skopeo, "copy", "oci:"+layout+":t", "docker-archive:"+dockerTar+":example.com/repo:tag")

	want := snapshot(t, ocifsMount(t, bin, layout+":t"))
	if _, ok := want["data/big"]; !ok || len(want) < 30 {
		t.Fatalf("the layout's mount has %d paths and no data/big: nothing to compare", len(want))
	}
	for _, tc := range []struct{ name, ref, tarball string }{
		{"oci-archive", "oci-archive:" + ociTar + ":t", ociTar},
		{"oci-archive plain path", ociTar, ociTar},
		{"docker-archive", "docker-archive:" + dockerTar + ":example.com/repo:tag", dockerTar},
		{"docker-archive @0", "docker-archive:" + dockerTar + ":@0", dockerTar},
		{"docker-archive plain path", dockerTar, dockerTar},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := filepath.Join(t.TempDir(), "cache")
			mnt := ocifsMount(t, bin, tc.ref, "--cache-dir", cache)
			compareTrees(t, snapshot(t, mnt), want, nil)

			fi, err := os.Stat(tc.tarball)
			if err != nil {
				t.Fatal(err)
			}
			used := duBytes(t, cache)
			t.Logf("cache %d bytes for a %d-byte tarball", used, fi.Size())
			if used > fi.Size()/10 {
				t.Errorf("cache holds %d bytes, more than a tenth of the %d-byte tarball: was it unpacked?", used, fi.Size())
			}
		})
	}

	// inspect reads both archives and finds the layout's layers: the
	// same diff_ids (skopeo's docker-archive holds them uncompressed).
	inspect := func(ref string) (out struct {
		Config struct{ Labels map[string]string }
		Layers []struct {
			MediaType string
			DiffID    string
		}
	}) {
		decode(t, run(t, bin, "inspect", "--json", ref), &out)
		return out
	}
	base := inspect(layout + ":t")
	for _, ref := range []string{"oci-archive:" + ociTar + ":t", "docker-archive:" + dockerTar + ":example.com/repo:tag"} {
		got := inspect(ref)
		if len(got.Layers) != len(base.Layers) {
			t.Fatalf("inspect %s: %d layers, want %d", ref, len(got.Layers), len(base.Layers))
		}
		for i := range got.Layers {
			if got.Layers[i].DiffID != base.Layers[i].DiffID {
				t.Errorf("inspect %s: layer %d diff_id %s, want %s", ref, i, got.Layers[i].DiffID, base.Layers[i].DiffID)
			}
		}
	}

	var images []struct{ Tag string }
	if err := json.Unmarshal(run(t, bin, "images", "--json", dockerTar), &images); err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || !strings.HasSuffix(images[0].Tag, "example.com/repo:tag") {
		t.Errorf("ocifs images %s = %+v, want the one image example.com/repo:tag", dockerTar, images)
	}
}

// duBytes is the disk space used by the files under dir.
func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return n
}
