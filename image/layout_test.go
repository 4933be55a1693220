package image

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestLayers(t *testing.T) {
	dir := t.TempDir()
	l1 := new(tartest.Layer).Dir("etc").File("etc/os-release", []byte("ID=test\n"))
	l2 := new(tartest.Layer).Whiteout("etc", "os-release")
	l3 := new(tartest.Layer).File("bin", []byte("x"))
	imagetest.WriteLayout(t, dir, imagetest.Image{Layers: []imagetest.LayerSpec{
		{Layer: l1, Compression: tartest.Gzip},
		{Layer: l2, Compression: tartest.Zstd},
		{Layer: l3, Compression: tartest.Plain},
		{Layer: l1, Compression: tartest.Gzip, MediaType: MediaTypeDockerLayerGzip},
		{Layer: l2, Compression: tartest.Zstd, MediaType: ocispec.MediaTypeImageLayerNonDistributableZstd}, //nolint:staticcheck
	}})
	img, err := Open(t.Context(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatalf("Layers: %v", err)
	}
	want := []Compression{Gzip, Zstd, Uncompressed, Gzip, Zstd}
	if len(layers) != len(want) {
		t.Fatalf("Layers returned %d layers, want %d", len(layers), len(want))
	}
	for i, l := range layers {
		if l.Compression != want[i] {
			t.Errorf("layer %d compression = %v, want %v", i, l.Compression, want[i])
		}
		if l.DiffID != img.Config.RootFS.DiffIDs[i] || l.Descriptor.Digest != img.Manifest.Layers[i].Digest {
			t.Errorf("layer %d = %+v, want the manifest's and config's", i, l)
		}
	}
}

func TestLayerCompression(t *testing.T) {
	vectors := []struct {
		mediaType string
		want      Compression
	}{
		{ocispec.MediaTypeImageLayer, Uncompressed},
		{ocispec.MediaTypeImageLayerGzip, Gzip},
		{ocispec.MediaTypeImageLayerZstd, Zstd},
		{ocispec.MediaTypeImageLayerNonDistributable, Uncompressed}, //nolint:staticcheck
		{ocispec.MediaTypeImageLayerNonDistributableGzip, Gzip},     //nolint:staticcheck
		{ocispec.MediaTypeImageLayerNonDistributableZstd, Zstd},     //nolint:staticcheck
		{MediaTypeDockerLayerGzip, Gzip},
		{MediaTypeDockerForeignLayerGzip, Gzip},
	}
	for _, tc := range vectors {
		if got, err := LayerCompression(tc.mediaType); err != nil || got != tc.want {
			t.Errorf("LayerCompression(%q) = %v, %v; want %v", tc.mediaType, got, err, tc.want)
		}
	}
	for _, mt := range []string{"", "application/vnd.oci.image.layer.v1.tar+bzip2", "application/octet-stream"} {
		if got, err := LayerCompression(mt); !errors.Is(err, ErrUnsupportedMediaType) {
			t.Errorf("LayerCompression(%q) = %v, %v; want %v", mt, got, err, ErrUnsupportedMediaType)
		}
	}
}

func TestLayersErrors(t *testing.T) {
	layer := new(tartest.Layer).File("a", nil)
	vectors := []struct {
		name     string
		img      imagetest.Image
		is       error
		contains string
	}{
		{
			name: "more layers than diff_ids",
			img: imagetest.Image{
				Layers: []imagetest.LayerSpec{{Layer: layer}, {Layer: layer}},
				Config: ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{testDigest}}},
			},
			is:       ErrInvalid,
			contains: "2 layers in the manifest, 1 diff_ids",
		},
		{
			name:     "unknown layer media type",
			img:      imagetest.Image{Layers: []imagetest.LayerSpec{{Layer: layer}, {Layer: layer, MediaType: "application/x-bzip2-tar"}}},
			is:       ErrUnsupportedMediaType,
			contains: `layer 1: image: unsupported media type "application/x-bzip2-tar"`,
		},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			imagetest.WriteLayout(t, dir, tc.img)
			img, err := Open(t.Context(), dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			layers, err := img.Layers()
			if !errors.Is(err, tc.is) || !strings.Contains(fmt.Sprint(err), tc.contains) {
				t.Errorf("Layers() = %v, %v; want %v mentioning %q", layers, err, tc.is, tc.contains)
			}
		})
	}
}

func TestOpenBlob(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	imagetest.WriteLayout(t, dir)
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	desc := imagetest.WriteBlob(t, dir, ocispec.MediaTypeImageLayer, data)

	b, err := l.OpenBlob(t.Context(), desc)
	if err != nil {
		t.Fatalf("OpenBlob: %v", err)
	}
	defer b.Close()
	if b.Size() != int64(len(data)) {
		t.Errorf("Size() = %d, want %d", b.Size(), len(data))
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			off := int64(i * 997)
			p := make([]byte, 100)
			if n, err := b.ReadAt(p, off); err != nil || !bytes.Equal(p[:n], data[off:off+100]) {
				t.Errorf("ReadAt(%d) = %d, %v; want the blob's bytes", off, n, err)
			}
		})
	}
	wg.Wait()

	t.Run("symlink to a regular file", func(t *testing.T) {
		real := filepath.Join(t.TempDir(), "real")
		link := imagetest.BlobPath(dir, desc.Digest)
		if err := os.Rename(link, real); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		b, err := l.OpenBlob(t.Context(), desc)
		if err != nil {
			t.Fatalf("OpenBlob via symlink: %v", err)
		}
		b.Close()
	})
}

func TestOpenBlobErrors(t *testing.T) {
	dir := t.TempDir()
	imagetest.WriteLayout(t, dir)
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	good := imagetest.WriteBlob(t, dir, ocispec.MediaTypeImageLayer, []byte("data"))
	dirBlob := imagetest.WriteBlob(t, dir, ocispec.MediaTypeImageLayer, []byte("will be a directory"))
	if err := os.Remove(imagetest.BlobPath(dir, dirBlob.Digest)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(imagetest.BlobPath(dir, dirBlob.Digest), 0o755); err != nil {
		t.Fatal(err)
	}
	urls := []string{"https://example.com/layer.tar", "https://mirror.example.com/layer.tar"}

	vectors := []struct {
		name     string
		desc     ocispec.Descriptor
		is       error
		contains []string
	}{
		{"size mismatch", ocispec.Descriptor{Digest: good.Digest, Size: 5}, ErrBlobSize, []string{"has 4 bytes, descriptor says 5"}},
		{"missing", ocispec.Descriptor{Digest: testDigest, Size: 1}, ErrBlobNotFound, []string{testDigest.String()}},
		{
			"missing non-distributable layer",
			ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerNonDistributableGzip, Digest: testDigest, Size: 1, URLs: urls}, //nolint:staticcheck
			ErrBlobNotFound,
			[]string{testDigest.String(), "urls: " + urls[0] + ", " + urls[1]},
		},
		{"not a regular file", dirBlob, nil, []string{"not a regular file"}},
		{"unsupported algorithm", ocispec.Descriptor{Digest: "md5:d41d8cd98f00b204e9800998ecf8427e", Size: 1}, ErrUnsupportedDigest, []string{`"md5"`}},
		{"malformed digest", ocispec.Descriptor{Digest: "sha256:../../../etc/passwd", Size: 1}, nil, []string{"invalid digest"}},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			b, err := l.OpenBlob(t.Context(), tc.desc)
			if err == nil {
				b.Close()
				t.Fatalf("OpenBlob(%s) succeeded, want error", tc.desc.Digest)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("OpenBlob(%s) = %v, want %v", tc.desc.Digest, err, tc.is)
			}
			for _, c := range tc.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("OpenBlob(%s) = %q, want it to mention %q", tc.desc.Digest, err, c)
				}
			}
		})
	}
}

func TestImages(t *testing.T) {
	dir := t.TempDir()
	amd, arm := platform("linux/amd64"), platform("linux/arm64/v8")
	descs := imagetest.Write(t, dir,
		tagged("v1", named("a", nil)),
		imagetest.Index{Tag: "multi", Manifests: []imagetest.Entry{named("b", amd), named("c", arm)}},
		named("d", other),
	)
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := Images(t.Context(), l, dir)
	if err != nil {
		t.Fatalf("Images: %v", err)
	}
	if len(infos) != 3 {
		t.Fatalf("Images returned %d entries, want 3", len(infos))
	}
	want := []struct {
		tag       string
		platforms string
	}{
		{"v1", FormatPlatform(*host)},
		{"multi", "linux/amd64 linux/arm64/v8"},
		{"", "testos/testarch"},
	}
	for i, info := range infos {
		var ps []string
		for _, p := range info.Platforms {
			ps = append(ps, FormatPlatform(p))
		}
		if info.Tag != want[i].tag || strings.Join(ps, " ") != want[i].platforms || info.Descriptor.Digest != descs[i].Digest {
			t.Errorf("Images()[%d] = %q %v %s, want %q %s %s", i, info.Tag, ps, info.Descriptor.Digest, want[i].tag, want[i].platforms, descs[i].Digest)
		}
	}

	// The size of a single image is its manifest, config and layers.
	m := imagetest.ReadManifest(t, dir, descs[0])
	size := descs[0].Size + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	if infos[0].Size != size {
		t.Errorf("Images()[0].Size = %d, want %d", infos[0].Size, size)
	}
}

// FuzzOpenLayout feeds index.json contents to OpenLayout and Images,
// which must not panic; the seeds are real index.json files from
// testdata/index.
func FuzzOpenLayout(f *testing.F) {
	seeds, err := filepath.Glob("testdata/index/*.json")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/index: %v", err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, index []byte) {
		dir := t.TempDir()
		imagetest.WriteLayout(t, dir, tagged("v1", named("a", nil)))
		if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := OpenLayout(dir)
		if err != nil {
			return
		}
		Images(t.Context(), l, dir)
		Resolve(t.Context(), l, Reference{Path: dir}, Options{})
		Resolve(t.Context(), l, Reference{Path: dir, Tag: "v1"}, Options{Platform: "linux/arm/v7"})
	})
}
