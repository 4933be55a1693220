package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/tarindex"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// tarMember is one member of a tar built by writeTar.
type tarMember struct {
	hdr  tar.Header
	data []byte
}

func regular(name string, data []byte) tarMember {
	return tarMember{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}, data: data}
}

func symlink(name, target string) tarMember {
	return tarMember{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}

// writeTar writes members, in order, as an uncompressed tar file.
func writeTar(t testing.TB, path string, members ...tarMember) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		if err := tw.WriteHeader(&m.hdr); err != nil {
			t.Fatalf("write header %q: %v", m.hdr.Name, err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatalf("write %q: %v", m.hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// layoutMembers returns the files of the layout dir as tar members,
// directories first, each name given prefix ("", "./" or "/"), as tar
// and skopeo write an oci-archive.
func layoutMembers(t testing.TB, dir, prefix string) []tarMember {
	t.Helper()
	var ms []tarMember
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := prefix + filepath.ToSlash(rel)
		if d.IsDir() {
			ms = append(ms, tarMember{hdr: tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755}})
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		ms = append(ms, regular(name, data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// writeOCIArchive writes imgs as a layout, then tars it into an
// oci-archive; it returns the archive's path and the layout's.
func writeOCIArchive(t testing.TB, imgs ...imagetest.Image) (string, string) {
	t.Helper()
	dir, out := t.TempDir(), filepath.Join(t.TempDir(), "image.tar")
	imagetest.WriteLayout(t, dir, imgs...)
	writeTar(t, out, layoutMembers(t, dir, "")...)
	return out, dir
}

// dockerImage is one image of a docker-archive built by
// writeDockerArchive.
type dockerImage struct {
	name   string // the config's "name" label
	tags   []string
	layers []*tartest.Layer
	// compression of the layer members; docker save writes Plain.
	compression tartest.Compression
	// ociNames names members as the newer docker save does
	// (blobs/sha256/HEX) rather than HEX/layer.tar and HEX.json.
	ociNames bool
}

// dockerArchiveMembers returns the members of a docker-archive holding
// imgs, and the diff_ids of each image's layers.
func dockerArchiveMembers(t testing.TB, imgs ...dockerImage) ([]tarMember, [][]digest.Digest) {
	t.Helper()
	var ms []tarMember
	var manifest []dockerEntry
	var diffIDs [][]digest.Digest
	written := map[string]bool{}
	for _, img := range imgs {
		cfg := ocispec.Image{
			Platform: HostPlatform(),
			Config:   ocispec.ImageConfig{Labels: map[string]string{"name": img.name}},
			RootFS:   ocispec.RootFS{Type: "layers"},
		}
		e := dockerEntry{RepoTags: img.tags}
		for _, l := range img.layers {
			raw := l.Tar()
			diffID := digest.FromBytes(raw)
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
			data := tartest.Compress(raw, img.compression)
			name := diffID.Encoded() + "/layer.tar"
			if img.ociNames {
				name = "blobs/sha256/" + digest.FromBytes(data).Encoded()
			}
			e.Layers = append(e.Layers, name)
			if !written[name] {
				written[name] = true
				ms = append(ms, regular(name, data))
			}
		}
		cfgData, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e.Config = digest.FromBytes(cfgData).Encoded() + ".json"
		if img.ociNames {
			e.Config = "blobs/sha256/" + digest.FromBytes(cfgData).Encoded()
		}
		ms = append(ms, regular(e.Config, cfgData))
		manifest = append(manifest, e)
		diffIDs = append(diffIDs, cfg.RootFS.DiffIDs)
	}
	data, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	return append(ms, regular("manifest.json", data)), diffIDs
}

func writeDockerArchive(t testing.TB, imgs ...dockerImage) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "saved.tar")
	ms, _ := dockerArchiveMembers(t, imgs...)
	writeTar(t, out, ms...)
	return out
}

// readAll reads blob b whole.
func readAll(t *testing.T, b Blob) []byte {
	t.Helper()
	data, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestOCIArchive(t *testing.T) {
	a := tagged("v1", named("a", nil))
	b := tagged("v2", named("b", nil))
	for _, prefix := range []string{"", "./", "/"} {
		t.Run("prefix "+prefix, func(t *testing.T) {
			dir, out := t.TempDir(), filepath.Join(t.TempDir(), "image.tar")
			imagetest.WriteLayout(t, dir, a, b)
			writeTar(t, out, layoutMembers(t, dir, prefix)...)

			for _, tc := range []struct{ ref, want string }{
				{"oci-archive:" + out + ":v1", "a"},
				{"oci-archive:" + out + ":v2", "b"},
				{out + ":v2", "b"}, // a plain path to an archive
			} {
				img, err := Open(t.Context(), tc.ref, Options{})
				if err != nil {
					t.Fatalf("Open(%q): %v", tc.ref, err)
				}
				if got := img.Config.Config.Labels["name"]; got != tc.want {
					t.Errorf("Open(%q) = image %q, want %q", tc.ref, got, tc.want)
				}
				if img.Ref.Transport != TransportOCIArchive {
					t.Errorf("Open(%q).Ref.Transport = %q, want %q", tc.ref, img.Ref.Transport, TransportOCIArchive)
				}
				// Every layer reads as the layout's blob file.
				for _, l := range img.Manifest.Layers {
					blob, err := img.Source.OpenBlob(t.Context(), l)
					if err != nil {
						t.Fatalf("OpenBlob(%s): %v", l.Digest, err)
					}
					want, err := os.ReadFile(imagetest.BlobPath(dir, l.Digest))
					if err != nil {
						t.Fatal(err)
					}
					if got := readAll(t, blob); !bytes.Equal(got, want) {
						t.Errorf("layer %s of %q reads %d bytes, differing from the layout's %d", l.Digest, tc.ref, len(got), len(want))
					}
					blob.Close()
				}
				if err := img.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}

			l, err := OpenOCIArchive(out)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			infos, err := Images(t.Context(), l, out)
			if err != nil {
				t.Fatalf("Images: %v", err)
			}
			if len(infos) != 2 || infos[0].Tag != "v1" || infos[1].Tag != "v2" {
				t.Errorf("Images = %+v, want v1 and v2", infos)
			}
			if _, err := Open(t.Context(), "oci-archive:"+out, Options{}); !errors.Is(err, ErrAmbiguous) {
				t.Errorf("Open(oci-archive:%s) = %v, want %v", out, err, ErrAmbiguous)
			}
		})
	}
}

func TestDockerArchive(t *testing.T) {
	l1 := new(tartest.Layer).Dir("etc").File("etc/os-release", []byte("ID=one\n"))
	l2 := new(tartest.Layer).File("etc/hostname", []byte("two\n"))
	l3 := new(tartest.Layer).File("bin/sh", []byte("#!"))
	out := writeDockerArchive(t,
		dockerImage{name: "a", tags: []string{"busybox:latest", "busybox:1"}, layers: []*tartest.Layer{l1, l2}},
		dockerImage{name: "b", tags: []string{"example.com:5000/team/app:v2"}, layers: []*tartest.Layer{l1, l3}},
		dockerImage{name: "c", layers: []*tartest.Layer{l3}},
	)
	vectors := []struct{ ref, want string }{
		{"docker-archive:" + out + ":busybox:latest", "a"},
		{"docker-archive:" + out + ":docker.io/library/busybox:1", "a"},
		{"docker-archive:" + out + ":example.com:5000/team/app:v2", "b"},
		{"docker-archive:" + out + ":@1", "b"},
		{"docker-archive:" + out + ":2", "c"},
		{out + ":@0", "a"},
		{out + ":busybox:1", "a"},
	}
	for _, tc := range vectors {
		t.Run(tc.ref, func(t *testing.T) {
			img, err := Open(t.Context(), tc.ref, Options{})
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.ref, err)
			}
			defer img.Close()
			if got := img.Config.Config.Labels["name"]; got != tc.want {
				t.Errorf("Open(%q) = image %q, want %q", tc.ref, got, tc.want)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatalf("Layers: %v", err)
			}
			for i, l := range layers {
				if l.Descriptor.MediaType != MediaTypeDockerLayer || l.Compression != Uncompressed {
					t.Errorf("layer %d = %q (%v), want %q", i, l.Descriptor.MediaType, l.Compression, MediaTypeDockerLayer)
				}
				if l.Descriptor.Digest != l.DiffID {
					t.Errorf("layer %d digest %s, want its diff_id %s", i, l.Descriptor.Digest, l.DiffID)
				}
				b, err := img.Source.OpenBlob(t.Context(), l.Descriptor)
				if err != nil {
					t.Fatalf("OpenBlob: %v", err)
				}
				// tarindex verifies the digest (the diff_id) and the
				// diff_id of what it indexes.
				if _, err := tarindex.Build(t.Context(), b, l.Descriptor, tarindex.BuildOptions{DiffID: l.DiffID}); err != nil {
					t.Errorf("index layer %d: %v", i, err)
				}
				b.Close()
			}
		})
	}

	d, err := OpenDockerArchive(out)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	infos, err := Images(t.Context(), d, out)
	if err != nil {
		t.Fatalf("Images: %v", err)
	}
	var tags []string
	for _, info := range infos {
		tags = append(tags, info.Tag)
	}
	if got, want := strings.Join(tags, ","), "busybox:latest,example.com:5000/team/app:v2,"; got != want {
		t.Errorf("Images tags = %q, want %q", got, want)
	}
	// A made-up manifest's digest names it, as a layout's would.
	ref := "docker-archive:" + out + "@" + infos[2].Descriptor.Digest.String()
	img, err := Open(t.Context(), ref, Options{})
	if err != nil {
		t.Fatalf("Open(%q): %v", ref, err)
	}
	if got := img.Config.Config.Labels["name"]; got != "c" {
		t.Errorf("Open(%q) = image %q, want c", ref, got)
	}
	img.Close()

	for _, tc := range []struct {
		ref      string
		is       error
		contains string
	}{
		{"docker-archive:" + out, ErrAmbiguous, "3 images"},
		{"docker-archive:" + out + ":@3", ErrNotFound, "lists 3"},
		{"docker-archive:" + out + ":nginx:latest", ErrNotFound, `"busybox:latest"`},
	} {
		if _, err := Open(t.Context(), tc.ref, Options{}); !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("Open(%q) = %v, want %v mentioning %q", tc.ref, err, tc.is, tc.contains)
		}
	}
}

// TestDockerArchiveCompressed covers archives whose layers are
// compressed: by their magic bytes they get a compressed media type,
// and a digest of their bytes (from a blobs/sha256/HEX name or hashed).
func TestDockerArchiveCompressed(t *testing.T) {
	layer := new(tartest.Layer).File("a", []byte("compressed"))
	for _, tc := range []struct {
		c         tartest.Compression
		ociNames  bool
		mediaType string
	}{
		{tartest.Gzip, false, MediaTypeDockerLayerGzip},
		{tartest.Gzip, true, MediaTypeDockerLayerGzip},
		{tartest.Zstd, false, ocispec.MediaTypeImageLayerZstd},
		{tartest.Plain, true, MediaTypeDockerLayer},
	} {
		t.Run(tc.c.String(), func(t *testing.T) {
			out := writeDockerArchive(t, dockerImage{name: "z", layers: []*tartest.Layer{layer}, compression: tc.c, ociNames: tc.ociNames})
			img, err := Open(t.Context(), "docker-archive:"+out, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			l := layers[0]
			data := tartest.Compress(layer.Tar(), tc.c)
			if l.Descriptor.MediaType != tc.mediaType || l.Descriptor.Digest != digest.FromBytes(data) || l.Descriptor.Size != int64(len(data)) {
				t.Errorf("layer = %+v, want %q of digest %s", l.Descriptor, tc.mediaType, digest.FromBytes(data))
			}
			b, err := img.Source.OpenBlob(t.Context(), l.Descriptor)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if _, err := tarindex.Build(t.Context(), b, l.Descriptor, tarindex.BuildOptions{DiffID: l.DiffID}); err != nil {
				t.Errorf("index layer: %v", err)
			}
		})
	}
}

// TestDockerArchiveLinks covers docker save's habit of writing a layer
// it has already written as a symlink to the first copy.
func TestDockerArchiveLinks(t *testing.T) {
	layer := new(tartest.Layer).File("a", []byte("shared"))
	ms, diffIDs := dockerArchiveMembers(t, dockerImage{name: "a", layers: []*tartest.Layer{layer}})
	// Point manifest.json at "other/layer.tar", a symlink to the real
	// member, as docker save writes it.
	var manifest []dockerEntry
	last := &ms[len(ms)-1]
	if err := json.Unmarshal(last.data, &manifest); err != nil {
		t.Fatal(err)
	}
	real := manifest[0].Layers[0]
	manifest[0].Layers[0] = "other/layer.tar"
	data, _ := json.Marshal(manifest)
	*last = regular("manifest.json", data)
	ms = append(ms, symlink("other/layer.tar", "../"+real))
	out := filepath.Join(t.TempDir(), "saved.tar")
	writeTar(t, out, ms...)

	img, err := Open(t.Context(), "docker-archive:"+out, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer img.Close()
	if got := img.Manifest.Layers[0].Digest; got != diffIDs[0][0] {
		t.Errorf("layer digest = %s, want %s", got, diffIDs[0][0])
	}
	b, err := img.Source.OpenBlob(t.Context(), img.Manifest.Layers[0])
	if err != nil {
		t.Fatalf("OpenBlob through a symlink: %v", err)
	}
	defer b.Close()
	if got := readAll(t, b); !bytes.Equal(got, layer.Tar()) {
		t.Errorf("layer through a symlink reads %d bytes, want the layer's %d", len(got), len(layer.Tar()))
	}
}

// TestArchiveHostile feeds archives a careful reader must refuse, or
// read without leaving the archive.
func TestArchiveHostile(t *testing.T) {
	layout := t.TempDir()
	imagetest.WriteLayout(t, layout, tagged("v1", named("a", nil)))
	good := layoutMembers(t, layout, "")
	descs := imagetest.WriteLayout(t, t.TempDir(), tagged("v1", named("a", nil)))
	m := imagetest.ReadManifest(t, layout, descs[0])
	layerName := "blobs/sha256/" + m.Layers[0].Digest.Encoded()
	// without returns good without the member name.
	without := func(name string) []tarMember {
		var out []tarMember
		for _, mb := range good {
			if mb.hdr.Name != name {
				out = append(out, mb)
			}
		}
		return out
	}

	vectors := []struct {
		name     string
		members  []tarMember
		raw      func(t *testing.T, path string) // writes the file instead
		is       error
		contains string
	}{
		{
			name:     "member outside the archive",
			members:  append(append([]tarMember{}, good...), regular("../x", []byte("x"))),
			is:       ErrBadArchive,
			contains: `"../x" leads outside the archive`,
		},
		{
			name:     "member outside the archive, deeper",
			members:  append(append([]tarMember{}, good...), regular("blobs/../../x", []byte("x"))),
			is:       ErrBadArchive,
			contains: "leads outside",
		},
		{
			name:     "duplicate members",
			members:  append(append([]tarMember{}, good...), regular("./index.json", []byte("{}"))),
			is:       ErrBadArchive,
			contains: `"index.json" appears twice`,
		},
		{
			name:     "huge index.json",
			members:  append(without("index.json"), regular("index.json", bytes.Repeat([]byte(" "), maxJSONBlob+1))),
			is:       ErrInvalid,
			contains: "more than the",
		},
		{
			name:     "layer is a symlink out of the archive",
			members:  append(without(layerName), symlink(layerName, "../../../../etc/passwd")),
			is:       ErrBadArchive,
			contains: "symlink leading out of the archive",
		},
		{
			name:     "layer is an absolute symlink",
			members:  append(without(layerName), symlink(layerName, "/etc/passwd")),
			is:       ErrBlobNotFound,
			contains: m.Layers[0].Digest.String(),
		},
		{
			name:     "symlink loop",
			members:  append(without(layerName), symlink(layerName, path2(layerName))),
			is:       ErrBadArchive,
			contains: "more than 8 links",
		},
		{
			name: "truncated",
			raw: func(t *testing.T, path string) {
				writeTar(t, path, append(append([]tarMember{}, good...), regular("zz", make([]byte, 4096)))...)
				fi, _ := os.Stat(path)
				// Cut into the last member's data.
				if err := os.Truncate(path, fi.Size()-1024-2048); err != nil {
					t.Fatal(err)
				}
			},
			is:       ErrBadArchive,
			contains: `"zz" runs past the end`,
		},
		{
			name:     "not a tar",
			raw:      func(t *testing.T, path string) { os.WriteFile(path, bytes.Repeat([]byte("not a tar "), 100), 0o644) },
			is:       ErrBadArchive,
			contains: "read tar header",
		},
		{
			name: "sparse member",
			raw: func(t *testing.T, path string) {
				writeTar(t, path, append(append([]tarMember{}, good...), regular("s", make([]byte, 512)))...)
				sparsify(t, path, "s")
			},
			is:       ErrBadArchive,
			contains: "sparse",
		},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "image.tar")
			if tc.raw != nil {
				tc.raw(t, out)
			} else {
				writeTar(t, out, tc.members...)
			}
			img, err := Open(t.Context(), "oci-archive:"+out, Options{})
			if err == nil {
				// Resolution reads no layer: the layer must fail to open.
				var b Blob
				b, err = img.Source.OpenBlob(t.Context(), img.Manifest.Layers[0])
				if err == nil {
					b.Close()
				}
				img.Close()
			}
			if err == nil {
				t.Fatalf("Open(%q) and OpenBlob succeeded, want an error", out)
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("Open = %v, want %v mentioning %q", err, tc.is, tc.contains)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Open = %q, want one line", err)
			}
		})
	}
}

// sparsify turns the header of member name of the tar at path into an
// old GNU sparse header (typeflag 'S') with one 512-byte extent, as GNU
// tar --sparse writes it; Go's tar writer cannot.
func sparsify(t *testing.T, path, name string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+512 <= len(data); off += 512 {
		blk := data[off : off+512]
		if string(bytes.TrimRight(blk[:100], "\x00")) != name {
			continue
		}
		blk[156] = 'S'
		copy(blk[257:265], "ustar  \x00")
		copy(blk[386+12:386+24], "00000001000\x00") // extent 0: offset 0, 512 bytes
		copy(blk[483:495], "00000001000\x00")       // real size
		copy(blk[148:156], "        ")
		var sum int64
		for _, c := range blk {
			sum += int64(c)
		}
		copy(blk[148:156], []byte(fmt.Sprintf("%06o\x00 ", sum)))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no member %q in %s", name, path)
}

// path2 returns the base name of p: a symlink from p to itself.
func path2(p string) string { return filepath.Base(p) }

func TestDockerArchiveHostile(t *testing.T) {
	layer := new(tartest.Layer).File("a", []byte("x"))
	ms, _ := dockerArchiveMembers(t, dockerImage{name: "a", layers: []*tartest.Layer{layer}})
	manifest := func(t *testing.T) []dockerEntry {
		var e []dockerEntry
		if err := json.Unmarshal(ms[len(ms)-1].data, &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	replace := func(t *testing.T, e []dockerEntry, extra ...tarMember) []tarMember {
		data, _ := json.Marshal(e)
		out := append(append([]tarMember{}, ms[:len(ms)-1]...), extra...)
		return append(out, regular("manifest.json", data))
	}
	vectors := []struct {
		name     string
		members  func(t *testing.T) []tarMember
		is       error
		contains string
	}{
		{
			name: "huge manifest.json",
			members: func(t *testing.T) []tarMember {
				return append(append([]tarMember{}, ms[:len(ms)-1]...), regular("manifest.json", bytes.Repeat([]byte(" "), maxJSONBlob+1)))
			},
			is:       ErrInvalid,
			contains: "manifest.json",
		},
		{
			name: "config outside the archive",
			members: func(t *testing.T) []tarMember {
				e := manifest(t)
				e[0].Config = "../../etc/passwd"
				return replace(t, e)
			},
			is:       ErrBadArchive,
			contains: "leads outside",
		},
		{
			name: "config not what its name says",
			members: func(t *testing.T) []tarMember {
				e := manifest(t)
				fake := strings.Repeat("ab", 32) + ".json"
				cfg := ms[len(ms)-2].data
				e[0].Config = fake
				return replace(t, e, regular(fake, cfg))
			},
			is:       ErrDigestMismatch,
			contains: "hashes to",
		},
		{
			name: "layer missing",
			members: func(t *testing.T) []tarMember {
				e := manifest(t)
				e[0].Layers[0] = "gone/layer.tar"
				return replace(t, e)
			},
			is:       iofs.ErrNotExist,
			contains: `"gone/layer.tar"`,
		},
		{
			name: "more layers than diff_ids",
			members: func(t *testing.T) []tarMember {
				e := manifest(t)
				e[0].Layers = append(e[0].Layers, e[0].Layers[0])
				return replace(t, e)
			},
			is:       ErrInvalid,
			contains: "2 layers in manifest.json, 1 diff_ids",
		},
		{
			name:     "empty manifest.json",
			members:  func(t *testing.T) []tarMember { return replace(t, []dockerEntry{}) },
			is:       ErrNotFound,
			contains: "lists no image",
		},
		{
			name: "manifest.json not JSON",
			members: func(t *testing.T) []tarMember {
				return append(append([]tarMember{}, ms[:len(ms)-1]...), regular("manifest.json", []byte("[{")))
			},
			is:       ErrBadArchive,
			contains: "decode",
		},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "saved.tar")
			writeTar(t, out, tc.members(t)...)
			d, err := OpenDockerArchive(out)
			if err == nil {
				d.Close()
				t.Fatalf("OpenDockerArchive succeeded, want an error")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("OpenDockerArchive = %v, want %v mentioning %q", err, tc.is, tc.contains)
			}
		})
	}
}

// TestArchiveBlobLifetime checks that blobs outlive their source's
// Close, that the file is closed once the last of them is, and that
// concurrent reads of one member agree.
func TestArchiveBlobLifetime(t *testing.T) {
	out, _ := writeOCIArchive(t, named("a", nil))
	img, err := Open(t.Context(), "oci-archive:"+out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	desc := img.Manifest.Layers[0]
	b1, err := img.Source.OpenBlob(t.Context(), desc)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := img.Source.OpenBlob(t.Context(), desc)
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(t, b1)
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	img.Close() // a second Close must not drop the blobs' hold
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := readAll(t, b2); !bytes.Equal(got, want) {
				t.Errorf("concurrent read after Close differs")
			}
		}()
	}
	wg.Wait()
	b1.Close()
	b1.Close()
	if got := readAll(t, b2); !bytes.Equal(got, want) {
		t.Errorf("read after the other blob's Close differs")
	}
	b2.Close()
	if _, err := b2.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ReadAt after every Close = %v, want %v: the file must be closed", err, os.ErrClosed)
	}
	if _, err := img.Source.OpenBlob(t.Context(), desc); err == nil {
		t.Errorf("OpenBlob after Close succeeded, want an error")
	}
}

// TestOpenRegistry: Open hands docker:// references to the registry
// source (port 1 on loopback refuses at once).
func TestOpenRegistry(t *testing.T) {
	_, err := Open(t.Context(), "docker://127.0.0.1:1/x/y:t", Options{})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Open(docker://127.0.0.1:1/x/y:t) = %v, want %v naming the host", err, ErrUnreachable)
	}
}

// sha256Hex is the hex sha256 of data.
func sha256Hex(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func TestNameDigest(t *testing.T) {
	hexa := sha256Hex([]byte("x"))
	for _, tc := range []struct {
		name string
		want digest.Digest
	}{
		{"blobs/sha256/" + hexa, digest.Digest("sha256:" + hexa)},
		{hexa + ".json", digest.Digest("sha256:" + hexa)},
		{hexa + "/layer.tar", ""},
		{"blobs/sha256/" + strings.ToUpper(hexa), ""},
		{"blobs/sha256/short", ""},
	} {
		if got := nameDigest(tc.name); got != tc.want {
			t.Errorf("nameDigest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// FuzzOpenArchive feeds tar files to both archive readers and to
// resolution over them, which must fail cleanly or read an image, and
// never panic. The seeds are an oci-archive and a docker-archive made
// here; the fuzzer mutates their headers and JSON members.
func FuzzOpenArchive(f *testing.F) {
	for _, path := range []string{
		func() string { p, _ := writeOCIArchive(f, tagged("v1", named("a", nil))); return p }(),
		writeDockerArchive(f, dockerImage{name: "a", tags: []string{"a:1"}, layers: []*tartest.Layer{new(tartest.Layer).File("f", []byte("x"))}}),
	} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "a.tar")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if l, err := OpenOCIArchive(path); err == nil {
			if img, err := Resolve(t.Context(), l, Reference{}, Options{}); err == nil {
				img.Layers()
			}
			Images(t.Context(), l, path)
			l.Close()
		}
		if d, err := OpenDockerArchive(path); err == nil {
			if img, err := Resolve(t.Context(), d, Reference{Tag: "@0"}, Options{}); err == nil {
				if layers, err := img.Layers(); err == nil && len(layers) > 0 {
					if b, err := d.OpenBlob(t.Context(), layers[0].Descriptor); err == nil {
						b.ReadAt(make([]byte, 16), 0)
						b.Close()
					}
				}
			}
			d.Close()
		}
	})
}
