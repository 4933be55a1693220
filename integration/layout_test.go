package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ocifsInspect is the part of `ocifs inspect --json` checked here.
type ocifsInspect struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	Platform  string        `json:"platform"`
	Config    struct {
		Digest     digest.Digest     `json:"digest"`
		Entrypoint []string          `json:"entrypoint"`
		Cmd        []string          `json:"cmd"`
		Env        []string          `json:"env"`
		WorkingDir string            `json:"workingDir"`
		User       string            `json:"user"`
		Labels     map[string]string `json:"labels"`
	} `json:"config"`
	Layers []struct {
		MediaType string        `json:"mediaType"`
		Size      int64         `json:"size"`
		Digest    digest.Digest `json:"digest"`
		DiffID    digest.Digest `json:"diffID"`
	} `json:"layers"`
}

// skopeoInspect is the part of `skopeo inspect` checked here.
type skopeoInspect struct {
	Digest       digest.Digest
	Labels       map[string]string
	Architecture string
	Os           string
	Layers       []digest.Digest
	Env          []string
}

// umociStat is the part of `umoci stat --json` checked here.
type umociStat struct {
	History []struct {
		Layer  *ocispec.Descriptor `json:"layer"`
		DiffID digest.Digest       `json:"diff_id"`
	} `json:"history"`
}

// writeUmociImage makes layout:tag with umoci: a config with every
// field inspect shows, and two layers inserted from directories.
func writeUmociImage(t *testing.T, umoci, layout, tag string) {
	t.Helper()
	image := layout + ":" + tag
	run(t, umoci, "init", "--layout", layout)
	run(t, umoci, "new", "--image", image)
	run(t, umoci, "config", "--image", image,
		"--config.entrypoint", "/bin/sh", "--config.cmd", "-c", "--config.cmd", "echo hello world",
		"--config.env", "PATH=/usr/bin:/bin", "--config.env", "GREETING=hello",
		"--config.workingdir", "/srv", "--config.user", "1000:1000",
		"--config.label", "org.example.name=ocifs-test", "--config.label", "stage=integration",
		"--os", "linux", "--architecture", "arm64")

	var rootless []string
	if os.Geteuid() != 0 {
		rootless = []string{"--rootless"}
	}
	for i, files := range []map[string]string{
		{"etc/os-release": "ID=ocifs\n", "srv/index.html": "hello\n"},
		{"srv/index.html": "hello again\n"},
	} {
		src := t.TempDir()
		for name, data := range files {
			p := filepath.Join(src, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		args := append([]string{"insert", "--image", image, "--history.comment", "layer " + string(rune('0'+i))}, rootless...)
		run(t, umoci, append(args, src, "/")...)
	}
}

// TestInspectMatchesTools checks `ocifs inspect --json` against what
// skopeo and umoci report for the same images: one written by umoci,
// and copies skopeo made of it with Docker media types and with zstd
// layers.
func TestInspectMatchesTools(t *testing.T) {
	umoci := requireTool(t, "umoci")
	skopeo := requireTool(t, "skopeo")
	ocifs := buildOcifs(t)

	dir := t.TempDir()
	umociLayout := filepath.Join(dir, "umoci")
	dockerLayout := filepath.Join(dir, "docker")
	zstdLayout := filepath.Join(dir, "zstd")
	writeUmociImage(t, umoci, umociLayout, "t")
	run(t, skopeo, "copy", "--format", "v2s2", "oci:"+umociLayout+":t", "oci:"+dockerLayout+":d")
	run(t, skopeo, "copy", "--dest-compress-format", "zstd", "oci:"+umociLayout+":t", "oci:"+zstdLayout+":z")

	vectors := []struct {
		name      string
		ref       string // for ocifs
		skopeoRef string // the same image for skopeo
		mediaType string
		layerType string
	}{
		{"umoci", umociLayout + ":t", "oci:" + umociLayout + ":t", ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageLayerGzip},
		// skopeo 1.9 (Debian 12) finds tags only on OCI manifests, so
		// it reads the Docker-typed layout as its only image.
		{"skopeo docker", dockerLayout + ":d", "oci:" + dockerLayout, "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.image.rootfs.diff.tar.gzip"},
		{"skopeo zstd", zstdLayout + ":z", "oci:" + zstdLayout + ":z", ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageLayerZstd},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			var got ocifsInspect
			decode(t, run(t, ocifs, "inspect", "--json", "oci:"+tc.ref), &got)
			var info skopeoInspect
			decode(t, run(t, skopeo, "inspect", tc.skopeoRef), &info)
			var config ocispec.Image
			decode(t, run(t, skopeo, "inspect", "--config", tc.skopeoRef), &config)
			var manifest ocispec.Manifest
			decode(t, run(t, skopeo, "inspect", "--raw", tc.skopeoRef), &manifest)

			if got.Digest != info.Digest {
				t.Errorf("digest = %s, skopeo says %s", got.Digest, info.Digest)
			}
			// umoci leaves the optional mediaType out of its manifests.
			if got.MediaType != tc.mediaType || (manifest.MediaType != "" && manifest.MediaType != tc.mediaType) {
				t.Errorf("media type = %q, skopeo's manifest says %q, want %q", got.MediaType, manifest.MediaType, tc.mediaType)
			}
			if want := info.Os + "/" + info.Architecture; got.Platform != want {
				t.Errorf("platform = %q, skopeo says %q", got.Platform, want)
			}
			if got.Config.Digest != manifest.Config.Digest {
				t.Errorf("config digest = %s, skopeo's manifest says %s", got.Config.Digest, manifest.Config.Digest)
			}
			c := config.Config
			checkStrings(t, "entrypoint", got.Config.Entrypoint, c.Entrypoint)
			checkStrings(t, "cmd", got.Config.Cmd, c.Cmd)
			checkStrings(t, "env", got.Config.Env, info.Env)
			if got.Config.WorkingDir != c.WorkingDir || got.Config.User != c.User {
				t.Errorf("workingDir, user = %q, %q; skopeo says %q, %q", got.Config.WorkingDir, got.Config.User, c.WorkingDir, c.User)
			}
			if len(got.Config.Labels) != len(info.Labels) || got.Config.Labels["org.example.name"] != info.Labels["org.example.name"] {
				t.Errorf("labels = %v, skopeo says %v", got.Config.Labels, info.Labels)
			}

			if len(got.Layers) != 2 || len(info.Layers) != 2 || len(manifest.Layers) != 2 {
				t.Fatalf("ocifs lists %d layers, skopeo %d and its manifest %d; want 2", len(got.Layers), len(info.Layers), len(manifest.Layers))
			}
			for i, l := range got.Layers {
				m := manifest.Layers[i]
				if l.Digest != info.Layers[i] || l.Digest != m.Digest || l.Size != m.Size || l.MediaType != m.MediaType || l.MediaType != tc.layerType {
					t.Errorf("layer %d = %s %d %q; skopeo says %s %d %q, want media type %q",
						i, l.Digest, l.Size, l.MediaType, m.Digest, m.Size, m.MediaType, tc.layerType)
				}
				if l.DiffID != config.RootFS.DiffIDs[i] {
					t.Errorf("layer %d diff_id = %s, skopeo's config says %s", i, l.DiffID, config.RootFS.DiffIDs[i])
				}
			}
		})
	}

	t.Run("umoci stat", func(t *testing.T) {
		var got ocifsInspect
		decode(t, run(t, ocifs, "inspect", "--json", umociLayout+":t"), &got)
		var stat umociStat
		decode(t, run(t, umoci, "stat", "--json", "--image", umociLayout+":t"), &stat)
		var layers []digest.Digest
		for _, h := range stat.History {
			if h.Layer == nil {
				continue // umoci config leaves an empty_layer entry
			}
			layers = append(layers, h.Layer.Digest, h.DiffID)
		}
		var want []digest.Digest
		for _, l := range got.Layers {
			want = append(want, l.Digest, l.DiffID)
		}
		if !slices.Equal(layers, want) {
			t.Errorf("layer digests and diff_ids = %v, umoci stat says %v", want, layers)
		}
	})

	t.Run("images", func(t *testing.T) {
		var images []struct {
			Tag       string        `json:"tag"`
			Digest    digest.Digest `json:"digest"`
			Platforms []string      `json:"platforms"`
		}
		decode(t, run(t, ocifs, "images", "--json", dockerLayout), &images)
		var info skopeoInspect
		decode(t, run(t, skopeo, "inspect", "oci:"+dockerLayout), &info)
		if len(images) != 1 || images[0].Tag != "d" || images[0].Digest != info.Digest || !slices.Equal(images[0].Platforms, []string{"linux/arm64"}) {
			t.Errorf("ocifs images = %+v, want tag d, digest %s, platform linux/arm64", images, info.Digest)
		}
	})

	t.Run("unknown tag", func(t *testing.T) {
		_, stderr, err := runErr(ocifs, "inspect", umociLayout+":nope")
		if err == nil {
			t.Fatalf("ocifs inspect %s:nope succeeded, want an error", umociLayout)
		}
		msg := strings.TrimSuffix(string(stderr), "\n")
		if strings.Contains(msg, "\n") || !strings.Contains(msg, `no tag "nope"`) || !strings.Contains(msg, `"t"`) {
			t.Errorf("ocifs inspect %s:nope printed %q, want one line naming the tag and the known ones", umociLayout, stderr)
		}
	})
}

func decode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, data)
	}
}

func checkStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, skopeo says %q", what, got, want)
	}
}
