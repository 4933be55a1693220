package imagetest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestWriteLayout(t *testing.T) {
	dir := t.TempDir()
	layer := new(tartest.Layer).File("hello", []byte("hi"))
	descs := WriteLayout(t, dir,
		Image{Tag: "a", Layers: []LayerSpec{{Layer: layer, Compression: tartest.Gzip}, {Layer: layer, Compression: tartest.Zstd}}},
		Image{Tag: "b", Docker: true, Layers: []LayerSpec{{Layer: layer, Compression: tartest.Gzip}}},
	)
	if len(descs) != 2 {
		t.Fatalf("WriteLayout returned %d descriptors, want 2", len(descs))
	}
	if got := descs[0].Annotations[ocispec.AnnotationRefName]; got != "a" {
		t.Errorf("tag of first descriptor = %q, want %q", got, "a")
	}

	var idx ocispec.Index
	readJSON(t, filepath.Join(dir, "index.json"), &idx)
	if len(idx.Manifests) != 2 || idx.Manifests[1].Digest != descs[1].Digest {
		t.Fatalf("index.json lists %v, want %v", idx.Manifests, descs)
	}

	m := ReadManifest(t, dir, descs[0])
	wantTypes := []string{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd}
	for i, l := range m.Layers {
		if l.MediaType != wantTypes[i] {
			t.Errorf("layer %d media type = %q, want %q", i, l.MediaType, wantTypes[i])
		}
		checkBlob(t, dir, l)
	}
	checkBlob(t, dir, m.Config)

	var config ocispec.Image
	readJSON(t, BlobPath(dir, m.Config.Digest), &config)
	want := digest.FromBytes(layer.Tar())
	if len(config.RootFS.DiffIDs) != 2 || config.RootFS.DiffIDs[0] != want || config.RootFS.DiffIDs[1] != want {
		t.Errorf("diff_ids = %v, want twice %v", config.RootFS.DiffIDs, want)
	}
	if p := HostPlatform(); config.OS != p.OS || config.Architecture != p.Architecture {
		t.Errorf("config platform = %s/%s, want %s/%s", config.OS, config.Architecture, p.OS, p.Architecture)
	}

	dm := ReadManifest(t, dir, descs[1])
	if dm.MediaType != MediaTypeDockerManifest || dm.Config.MediaType != MediaTypeDockerConfig || dm.Layers[0].MediaType != MediaTypeDockerLayerGzip {
		t.Errorf("docker manifest media types = %q, %q, %q", dm.MediaType, dm.Config.MediaType, dm.Layers[0].MediaType)
	}
}

func TestWriteNestedIndex(t *testing.T) {
	dir := t.TempDir()
	arm := &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	descs := Write(t, dir, Index{
		Tag: "multi",
		Manifests: []Entry{
			Image{Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
			Index{Manifests: []Entry{Image{Platform: arm}}},
		},
	})
	if len(descs) != 1 || descs[0].MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("Write returned %v, want one index", descs)
	}
	outer := ReadIndex(t, dir, descs[0])
	if len(outer.Manifests) != 2 || outer.Manifests[1].MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("outer index lists %v, want a manifest and an index", outer.Manifests)
	}
	inner := ReadIndex(t, dir, outer.Manifests[1])
	if got := inner.Manifests[0].Platform; got == nil || got.Architecture != arm.Architecture || got.Variant != arm.Variant {
		t.Errorf("inner platform = %v, want %v", got, arm)
	}
	var config ocispec.Image
	readJSON(t, BlobPath(dir, ReadManifest(t, dir, inner.Manifests[0]).Config.Digest), &config)
	if config.Architecture != "arm64" || config.Variant != "v8" {
		t.Errorf("config platform = %s/%s, want arm64/v8", config.Architecture, config.Variant)
	}
}

func checkBlob(t *testing.T, dir string, desc ocispec.Descriptor) {
	t.Helper()
	b, err := os.ReadFile(BlobPath(dir, desc.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != desc.Size || digest.FromBytes(b) != desc.Digest {
		t.Errorf("blob %s: size %d digest %s, want %d", desc.Digest, len(b), digest.FromBytes(b), desc.Size)
	}
}
