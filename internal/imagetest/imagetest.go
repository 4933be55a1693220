// Package imagetest writes OCI image layouts from code, for tests.
//
// A layout is described with Image and Index values and written into a
// directory (normally t.TempDir()) by WriteLayout or Write. Everything
// a real tool would write is there: the oci-layout file, index.json and
// content-addressed blobs (image-layout.md). Layers come from
// internal/tartest, compressed plain, gzip or zstd, and the config's
// rootfs.diff_ids are computed from them (config.md).
//
// Tests that need broken layouts write what they need on top: raw
// blobs with WriteBlob, a hand-made index.json with WriteIndexJSON, or
// plain os calls on BlobPath. Nothing here validates its input; that
// is the job of the package under test.
package imagetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker media types, as skopeo and docker save write them into
// layouts. They are repeated here (not imported from image/) so that
// image's own tests can use this package without an import cycle.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// Entry is what index.json or an image index can list: an Image or an
// Index.
type Entry interface {
	write(w *writer) ocispec.Descriptor
}

// Image is one image manifest with its config and layers. The zero
// value is an image with no layers and a default config.
type Image struct {
	Layers []LayerSpec

	// Config is written as the image config. Left empty, os and
	// architecture come from Platform (or the host), rootfs.type is
	// "layers" and rootfs.diff_ids are the sha256 digests of the
	// uncompressed layers. A non-nil Config.RootFS.DiffIDs is kept as
	// given, so tests can write a wrong count.
	Config ocispec.Image

	// RawConfig, if non-nil, is written as the config blob verbatim
	// instead of Config (for malformed-config tests).
	RawConfig []byte

	// Platform goes into the descriptor that lists this manifest
	// (image-index.md, "platform"); nil writes none.
	Platform *ocispec.Platform

	// Tag becomes the org.opencontainers.image.ref.name annotation of
	// the descriptor that lists this manifest (image-layout.md,
	// index.json). Two Images with the same content and different
	// tags give one manifest listed twice.
	Tag string

	// Annotations are the manifest's own annotations.
	Annotations map[string]string

	// Docker writes Docker media types: manifest v2, container image
	// v1 config and rootfs.diff.tar.gzip layers (which must then be
	// gzip compressed, unless LayerSpec.MediaType overrides).
	Docker bool
}

// LayerSpec is one layer of an Image.
type LayerSpec struct {
	Layer       *tartest.Layer // nil is an empty tar stream
	Compression tartest.Compression

	// MediaType overrides the media type derived from Compression,
	// e.g. for non-distributable or unknown types.
	MediaType string

	// URLs go into the layer descriptor (descriptor.md, "urls").
	URLs []string
}

// Index is an image index (image-index.md), e.g. the platforms of one
// multi-platform image, or a nested index.
type Index struct {
	Manifests []Entry

	// Platform, Tag: as for Image, on the descriptor that lists this
	// index.
	Platform *ocispec.Platform
	Tag      string

	// Annotations are the index's own annotations.
	Annotations map[string]string

	// Docker writes the Docker manifest list media type.
	Docker bool
}

// WriteLayout writes an image layout into dir whose index.json lists
// one manifest per image, and returns the descriptors it lists.
func WriteLayout(t testing.TB, dir string, imgs ...Image) []ocispec.Descriptor {
	t.Helper()
	entries := make([]Entry, len(imgs))
	for i, img := range imgs {
		entries[i] = img
	}
	return Write(t, dir, entries...)
}

// Write writes an image layout into dir whose index.json lists the
// entries, images or indexes, and returns the descriptors it lists.
// An existing index.json is replaced; blobs accumulate.
func Write(t testing.TB, dir string, entries ...Entry) []ocispec.Descriptor {
	t.Helper()
	w := &writer{t: t, dir: dir}
	writeFile(t, filepath.Join(dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"`+ocispec.ImageLayoutVersion+`"}`))
	if err := os.MkdirAll(filepath.Join(dir, ocispec.ImageBlobsDir), 0o755); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	descs := make([]ocispec.Descriptor, 0, len(entries))
	for _, e := range entries {
		descs = append(descs, e.write(w))
	}
	WriteIndexJSON(t, dir, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: descs,
	})
	return descs
}

// WriteIndexJSON replaces dir/index.json with idx.
func WriteIndexJSON(t testing.TB, dir string, idx ocispec.Index) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "index.json"), mustJSON(t, idx))
}

// WriteBlob stores data as a blob of dir and returns its descriptor.
func WriteBlob(t testing.TB, dir, mediaType string, data []byte) ocispec.Descriptor {
	t.Helper()
	d := digest.FromBytes(data)
	p := BlobPath(dir, d)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	writeFile(t, p, data)
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// WriteJSONBlob stores v, JSON encoded, as a blob of dir.
func WriteJSONBlob(t testing.TB, dir, mediaType string, v any) ocispec.Descriptor {
	t.Helper()
	return WriteBlob(t, dir, mediaType, mustJSON(t, v))
}

// BlobPath is where the blob d lives in the layout dir
// (image-layout.md, "Blobs").
func BlobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// ReadManifest reads the manifest desc names from dir, so tests can
// get at its config and layer descriptors.
func ReadManifest(t testing.TB, dir string, desc ocispec.Descriptor) ocispec.Manifest {
	t.Helper()
	var m ocispec.Manifest
	readJSON(t, BlobPath(dir, desc.Digest), &m)
	return m
}

// ReadIndex reads the image index desc names from dir.
func ReadIndex(t testing.TB, dir string, desc ocispec.Descriptor) ocispec.Index {
	t.Helper()
	var idx ocispec.Index
	readJSON(t, BlobPath(dir, desc.Digest), &idx)
	return idx
}

// HostPlatform is the platform of the running program, as the config
// default uses it.
func HostPlatform() ocispec.Platform {
	return ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
}

type writer struct {
	t   testing.TB
	dir string
}

func (img Image) write(w *writer) ocispec.Descriptor {
	w.t.Helper()
	manifestType, configType := ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig
	if img.Docker {
		manifestType, configType = MediaTypeDockerManifest, MediaTypeDockerConfig
	}

	layers := make([]ocispec.Descriptor, len(img.Layers))
	diffIDs := make([]digest.Digest, len(img.Layers))
	for i, ls := range img.Layers {
		l := ls.Layer
		if l == nil {
			l = &tartest.Layer{}
		}
		raw := l.Tar()
		diffIDs[i] = digest.FromBytes(raw)
		layers[i] = WriteBlob(w.t, w.dir, ls.mediaType(w.t, img.Docker), tartest.Compress(raw, ls.Compression))
		layers[i].URLs = ls.URLs
	}

	config := img.RawConfig
	if config == nil {
		c := img.Config
		if c.OS == "" && c.Architecture == "" {
			p := HostPlatform()
			if img.Platform != nil {
				p = *img.Platform
			}
			c.OS, c.Architecture, c.Variant = p.OS, p.Architecture, p.Variant
		}
		if c.RootFS.Type == "" {
			c.RootFS.Type = "layers"
		}
		if c.RootFS.DiffIDs == nil {
			c.RootFS.DiffIDs = diffIDs
		}
		config = mustJSON(w.t, c)
	}

	m := ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   manifestType,
		Config:      WriteBlob(w.t, w.dir, configType, config),
		Layers:      layers,
		Annotations: img.Annotations,
	}
	desc := WriteJSONBlob(w.t, w.dir, manifestType, m)
	return listed(desc, img.Platform, img.Tag)
}

func (idx Index) write(w *writer) ocispec.Descriptor {
	w.t.Helper()
	mediaType := ocispec.MediaTypeImageIndex
	if idx.Docker {
		mediaType = MediaTypeDockerManifestList
	}
	descs := make([]ocispec.Descriptor, 0, len(idx.Manifests))
	for _, e := range idx.Manifests {
		descs = append(descs, e.write(w))
	}
	desc := WriteJSONBlob(w.t, w.dir, mediaType, ocispec.Index{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   mediaType,
		Manifests:   descs,
		Annotations: idx.Annotations,
	})
	return listed(desc, idx.Platform, idx.Tag)
}

// listed adds what a parent index says about a child.
func listed(desc ocispec.Descriptor, p *ocispec.Platform, tag string) ocispec.Descriptor {
	desc.Platform = p
	if tag != "" {
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	}
	return desc
}

func (ls LayerSpec) mediaType(t testing.TB, docker bool) string {
	t.Helper()
	if ls.MediaType != "" {
		return ls.MediaType
	}
	if docker {
		if ls.Compression != tartest.Gzip {
			t.Fatalf("imagetest: docker layers are gzip, got %v (set LayerSpec.MediaType to override)", ls.Compression)
		}
		return MediaTypeDockerLayerGzip
	}
	switch ls.Compression {
	case tartest.Gzip:
		return ocispec.MediaTypeImageLayerGzip
	case tartest.Zstd:
		return ocispec.MediaTypeImageLayerZstd
	default:
		return ocispec.MediaTypeImageLayer
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("imagetest: encode %T: %v", v, err)
	}
	return b
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("imagetest: decode %q: %v", path, err)
	}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
}
