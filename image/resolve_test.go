package image

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// named is an image whose config carries a "name" label, so a test can
// tell which one a reference resolved to.
func named(name string, p *ocispec.Platform) imagetest.Image {
	return imagetest.Image{
		Config:   ocispec.Image{Config: ocispec.ImageConfig{Labels: map[string]string{"name": name}}},
		Platform: p,
		Layers:   []imagetest.LayerSpec{{Layer: new(tartest.Layer).File("name", []byte(name)), Compression: tartest.Gzip}},
	}
}

func tagged(tag string, img imagetest.Image) imagetest.Image {
	img.Tag = tag
	return img
}

func platform(s string) *ocispec.Platform {
	parts := strings.Split(s, "/")
	p := &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p
}

// host and other are platforms that do and do not match the test host.
var (
	host  = func() *ocispec.Platform { p := HostPlatform(); return &p }()
	other = platform("testos/testarch")
)

func TestResolve(t *testing.T) {
	// Each vector writes a layout and returns what follows the layout's
	// path in the reference: "", ":TAG" or "@DIGEST".
	vectors := []struct {
		name     string
		write    func(t *testing.T, dir string) string
		platform string
		want     string // name label of the image the reference must resolve to
	}{
		{
			name: "only image, untagged",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, named("a", nil))
				return ""
			},
			want: "a",
		},
		{
			name: "only image, tagged, no tag given",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, tagged("v1", named("a", nil)))
				return ""
			},
			want: "a",
		},
		{
			name: "tag selects",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, tagged("v1", named("a", nil)), tagged("v2", named("b", nil)))
				return ":v2"
			},
			want: "b",
		},
		{
			name: "tag that is a full name",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, tagged("v1", named("a", nil)), tagged("docker.io/library/b:1", named("b", nil)))
				return ":docker.io/library/b:1"
			},
			want: "b",
		},
		{
			name: "one manifest under two tags, no tag given",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, tagged("v1", named("a", nil)), tagged("latest", named("a", nil)))
				return ""
			},
			want: "a",
		},
		{
			name: "digest of a top-level manifest",
			write: func(t *testing.T, dir string) string {
				descs := imagetest.WriteLayout(t, dir, tagged("v1", named("a", nil)), tagged("v2", named("b", nil)))
				return "@" + descs[1].Digest.String()
			},
			want: "b",
		},
		{
			name: "digest of a manifest inside a nested index",
			write: func(t *testing.T, dir string) string {
				descs := imagetest.Write(t, dir, imagetest.Index{Tag: "v1", Manifests: []imagetest.Entry{
					imagetest.Index{Manifests: []imagetest.Entry{named("a", host), named("b", other)}},
				}})
				inner := imagetest.ReadIndex(t, dir, imagetest.ReadIndex(t, dir, descs[0]).Manifests[0])
				return "@" + inner.Manifests[1].Digest.String()
			},
			want: "b",
		},
		{
			name: "digest of an index selects the host platform",
			write: func(t *testing.T, dir string) string {
				descs := imagetest.Write(t, dir,
					tagged("v1", named("c", nil)),
					imagetest.Index{Tag: "v2", Manifests: []imagetest.Entry{named("a", other), named("b", host)}})
				return "@" + descs[1].Digest.String()
			},
			want: "b",
		},
		{
			name: "index selects the host platform",
			write: func(t *testing.T, dir string) string {
				imagetest.Write(t, dir, imagetest.Index{Manifests: []imagetest.Entry{named("a", other), named("b", host)}})
				return ""
			},
			want: "b",
		},
		{
			name: "Docker manifest list and manifests",
			write: func(t *testing.T, dir string) string {
				a, b := named("a", other), named("b", host)
				a.Docker, b.Docker = true, true
				imagetest.Write(t, dir, imagetest.Index{Docker: true, Manifests: []imagetest.Entry{a, b}})
				return ""
			},
			want: "b",
		},
		{
			name: "index selects the requested platform",
			write: func(t *testing.T, dir string) string {
				imagetest.Write(t, dir, imagetest.Index{Manifests: []imagetest.Entry{named("a", host), named("b", other)}})
				return ""
			},
			platform: "testos/testarch",
			want:     "b",
		},
		{
			name: "platforms are normalized",
			write: func(t *testing.T, dir string) string {
				imagetest.Write(t, dir, imagetest.Index{Manifests: []imagetest.Entry{
					named("a", platform("linux/amd64")), named("b", platform("linux/aarch64/8")),
				}})
				return ""
			},
			platform: "linux/arm64/v8",
			want:     "b",
		},
		{
			name: "arm without variant is v7",
			write: func(t *testing.T, dir string) string {
				imagetest.Write(t, dir, imagetest.Index{Manifests: []imagetest.Entry{
					named("a", platform("linux/arm/v6")), named("b", platform("linux/arm")),
				}})
				return ""
			},
			platform: "linux/arm/v7",
			want:     "b",
		},
		{
			name: "older variant when the exact one is missing",
			write: func(t *testing.T, dir string) string {
				imagetest.Write(t, dir, imagetest.Index{Manifests: []imagetest.Entry{
					named("a", platform("linux/arm/v5")), named("b", platform("linux/arm/v6")), named("c", platform("linux/arm/v8")),
				}})
				return ""
			},
			platform: "linux/arm/v7",
			want:     "b",
		},
		{
			name: "exact variant beats an earlier older one",
			write: func(t *testing.T, dir string) string {
				imagetest.Write(t, dir, imagetest.Index{Manifests: []imagetest.Entry{
					named("a", platform("linux/arm/v6")), named("b", platform("linux/arm/v7")),
				}})
				return ""
			},
			platform: "linux/arm/v7",
			want:     "b",
		},
		{
			name: "first of equal matches",
			write: func(t *testing.T, dir string) string {
				imagetest.Write(t, dir, imagetest.Index{Manifests: []imagetest.Entry{
					named("a", other), named("b", host), named("c", host),
				}})
				return ""
			},
			want: "b",
		},
		{
			name: "nested indexes",
			write: func(t *testing.T, dir string) string {
				imagetest.Write(t, dir, imagetest.Index{Tag: "v1", Manifests: []imagetest.Entry{
					imagetest.Index{Manifests: []imagetest.Entry{named("a", other)}},
					imagetest.Index{Manifests: []imagetest.Entry{imagetest.Index{Manifests: []imagetest.Entry{named("b", host)}}}},
				}})
				return ":v1"
			},
			want: "b",
		},
		{
			name: "platform from the config when the index has none",
			write: func(t *testing.T, dir string) string {
				a, b := named("a", nil), named("b", nil)
				a.Config.OS, a.Config.Architecture = "linux", "amd64"
				b.Config.OS, b.Config.Architecture = "testos", "testarch"
				imagetest.Write(t, dir, imagetest.Index{Manifests: []imagetest.Entry{a, b}})
				return ""
			},
			platform: "testos/testarch",
			want:     "b",
		},
		{
			name: "one tag on each platform's manifest",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, tagged("v1", named("a", other)), tagged("v1", named("b", host)))
				return ""
			},
			want: "b",
		},
		{
			name: "single manifest of another platform, none requested",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, named("a", other))
				return ""
			},
			want: "a",
		},
		{
			name: "single manifest of the requested platform",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, named("a", other))
				return ""
			},
			platform: "testos/testarch",
			want:     "a",
		},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ref := dir + tc.write(t, dir)
			img, err := Open(t.Context(), ref, Options{Platform: tc.platform})
			if err != nil {
				t.Fatalf("Open(%q, %q): %v", ref, tc.platform, err)
			}
			if got := img.Config.Config.Labels["name"]; got != tc.want {
				t.Errorf("Open(%q, %q) resolved to image %q, want %q", ref, tc.platform, got, tc.want)
			}
			if !isManifest(img.Descriptor.MediaType) || img.ConfigDescriptor.Digest != img.Manifest.Config.Digest {
				t.Errorf("Open(%q, %q): descriptor %+v, config %+v", ref, tc.platform, img.Descriptor, img.ConfigDescriptor)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	simple := func(t *testing.T, dir string) ocispec.Descriptor {
		return imagetest.WriteLayout(t, dir, tagged("v1", named("a", nil)))[0]
	}
	writeFile := func(t *testing.T, path, data string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Each vector breaks a layout and returns what follows its path in
	// the reference; the error must wrap is (if set) and mention each
	// of contains, where "$DIR" is the layout directory.
	vectors := []struct {
		name     string
		write    func(t *testing.T, dir string) string
		platform string
		is       error
		contains []string
	}{
		{
			name:     "no oci-layout",
			write:    func(t *testing.T, dir string) string { return "" },
			is:       ErrNotLayout,
			contains: []string{`open layout "$DIR"`, "no oci-layout file"},
		},
		{
			name: "wrong layout version",
			write: func(t *testing.T, dir string) string {
				simple(t, dir)
				writeFile(t, filepath.Join(dir, "oci-layout"), `{"imageLayoutVersion":"2.0.0"}`)
				return ""
			},
			is:       ErrLayoutVersion,
			contains: []string{`"2.0.0"`, `want "1.0.0"`, "oci-layout"},
		},
		{
			name: "malformed oci-layout",
			write: func(t *testing.T, dir string) string {
				simple(t, dir)
				writeFile(t, filepath.Join(dir, "oci-layout"), `{"imageLayoutVersion":`)
				return ""
			},
			contains: []string{`decode "$DIR/oci-layout"`},
		},
		{
			name: "malformed index.json",
			write: func(t *testing.T, dir string) string {
				simple(t, dir)
				writeFile(t, filepath.Join(dir, "index.json"), `{"schemaVersion": 2, "manifests": [}`)
				return ""
			},
			contains: []string{`decode "$DIR/index.json"`, "invalid character"},
		},
		{
			name: "index.json schemaVersion",
			write: func(t *testing.T, dir string) string {
				simple(t, dir)
				writeFile(t, filepath.Join(dir, "index.json"), `{"schemaVersion": 1, "manifests": []}`)
				return ""
			},
			is:       ErrInvalid,
			contains: []string{"index.json", "schemaVersion 1"},
		},
		{
			name: "malformed manifest",
			write: func(t *testing.T, dir string) string {
				desc := imagetest.WriteBlob(t, dir, ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2,`))
				simple(t, dir)
				imagetest.WriteIndexJSON(t, dir, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{desc}})
				return ""
			},
			contains: []string{"read manifest", `decode "$DIR/blobs/sha256/`, "unexpected end of JSON input"},
		},
		{
			name: "malformed config",
			write: func(t *testing.T, dir string) string {
				img := named("a", nil)
				img.RawConfig = []byte(`{"rootfs": 12}`)
				imagetest.WriteLayout(t, dir, img)
				return ""
			},
			contains: []string{"read config", `decode "$DIR/blobs/sha256/`},
		},
		{
			name: "manifest does not match its digest",
			write: func(t *testing.T, dir string) string {
				desc := simple(t, dir)
				data, err := os.ReadFile(imagetest.BlobPath(dir, desc.Digest))
				if err != nil {
					t.Fatal(err)
				}
				data[len(data)-1] = ' ' // same size, other content
				writeFile(t, imagetest.BlobPath(dir, desc.Digest), string(data))
				return ""
			},
			is:       ErrDigestMismatch,
			contains: []string{"read manifest"},
		},
		{
			name: "unknown tag",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, tagged("v1", named("a", nil)), tagged("v2", named("b", nil)), named("c", nil))
				return ":v3"
			},
			is:       ErrNotFound,
			contains: []string{`no tag "v3"`, `"v1", "v2", @sha256:`},
		},
		{
			name: "unknown digest",
			write: func(t *testing.T, dir string) string {
				simple(t, dir)
				return "@" + testDigest.String()
			},
			is:       ErrNotFound,
			contains: []string{testDigest.String()},
		},
		{
			name: "several images and no tag",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, tagged("v1", named("a", nil)), tagged("v2", named("b", nil)))
				return ""
			},
			is:       ErrAmbiguous,
			contains: []string{`"v1", "v2"`},
		},
		{
			name: "empty index.json",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir)
				return ""
			},
			is:       ErrNotFound,
			contains: []string{"lists no image"},
		},
		{
			name: "unsupported digest algorithm in index.json",
			write: func(t *testing.T, dir string) string {
				simple(t, dir)
				imagetest.WriteIndexJSON(t, dir, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{{
					MediaType: ocispec.MediaTypeImageManifest, Digest: "blake3:" + digest.Digest(strings.Repeat("a", 64)), Size: 2,
				}}})
				return ""
			},
			is:       ErrUnsupportedDigest,
			contains: []string{`"blake3"`},
		},
		{
			name: "manifest blob missing",
			write: func(t *testing.T, dir string) string {
				desc := simple(t, dir)
				if err := os.Remove(imagetest.BlobPath(dir, desc.Digest)); err != nil {
					t.Fatal(err)
				}
				return ""
			},
			is:       ErrBlobNotFound,
			contains: []string{"read manifest", "sha256:"},
		},
		{
			name: "config blob size mismatch",
			write: func(t *testing.T, dir string) string {
				desc := simple(t, dir)
				m := imagetest.ReadManifest(t, dir, desc)
				writeFile(t, imagetest.BlobPath(dir, m.Config.Digest), "{}")
				return ""
			},
			is:       ErrBlobSize,
			contains: []string{"read config", "has 2 bytes"},
		},
		{
			name: "platform not found",
			write: func(t *testing.T, dir string) string {
				imagetest.Write(t, dir, imagetest.Index{Manifests: []imagetest.Entry{
					named("a", platform("linux/amd64")), named("b", platform("linux/arm64/v8")),
				}})
				return ""
			},
			platform: "linux/s390x",
			is:       ErrPlatformNotFound,
			contains: []string{"want linux/s390x", "have linux/amd64, linux/arm64"},
		},
		{
			name: "single manifest of another platform than requested",
			write: func(t *testing.T, dir string) string {
				imagetest.WriteLayout(t, dir, named("a", other))
				return ""
			},
			platform: "linux/s390x",
			is:       ErrPlatformNotFound,
			contains: []string{"have testos/testarch"},
		},
		{
			name: "bad platform option",
			write: func(t *testing.T, dir string) string {
				simple(t, dir)
				return ""
			},
			platform: "linux",
			contains: []string{`parse platform "linux"`},
		},
		{
			name: "artifact, not an image",
			write: func(t *testing.T, dir string) string {
				img := named("a", nil)
				img.RawConfig = []byte("{}")
				desc := imagetest.WriteLayout(t, dir, img)[0]
				m := imagetest.ReadManifest(t, dir, desc)
				m.Config.MediaType = "application/vnd.example.sbom"
				imagetest.WriteIndexJSON(t, dir, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{
					imagetest.WriteJSONBlob(t, dir, ocispec.MediaTypeImageManifest, m),
				}})
				return ""
			},
			is:       ErrUnsupportedMediaType,
			contains: []string{`"application/vnd.example.sbom"`},
		},
		{
			name: "Docker schema 1",
			write: func(t *testing.T, dir string) string {
				desc := imagetest.WriteBlob(t, dir, "application/vnd.docker.distribution.manifest.v1+prettyjws", []byte("{}"))
				simple(t, dir)
				imagetest.WriteIndexJSON(t, dir, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{desc}})
				return ""
			},
			is:       ErrUnsupportedMediaType,
			contains: []string{"manifest.v1+prettyjws"},
		},
		{
			name: "manifest media type differs from its descriptor",
			write: func(t *testing.T, dir string) string {
				desc := simple(t, dir)
				desc.MediaType = imagetest.MediaTypeDockerManifest
				imagetest.WriteIndexJSON(t, dir, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{desc}})
				return ""
			},
			is:       ErrInvalid,
			contains: []string{"descriptor says"},
		},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ref := dir + tc.write(t, dir)
			img, err := Open(t.Context(), ref, Options{Platform: tc.platform})
			if err == nil {
				t.Fatalf("Open(%q, %q) = %+v, want error", ref, tc.platform, img.Descriptor)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Open(%q, %q) = %v, want %v", ref, tc.platform, err, tc.is)
			}
			msg := err.Error()
			for _, c := range tc.contains {
				if c = strings.ReplaceAll(c, "$DIR", dir); !strings.Contains(msg, c) {
					t.Errorf("Open(%q, %q) = %q, want it to mention %q", ref, tc.platform, msg, c)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("Open(%q, %q) = %q, want one line", ref, tc.platform, msg)
			}
		})
	}
}
