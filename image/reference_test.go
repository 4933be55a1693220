package image

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/opencontainers/go-digest"
)

var testDigest = digest.FromString("ocifs")

func TestParseReference(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, d := range []string{"lay", "a:b", "x", "x:y", "oci", "u@h"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// vectors cover each rule of ParseReference; the directories above
	// are what "exists" means.
	vectors := []struct {
		name string
		in   string
		want Reference
	}{
		{"path", "lay", Reference{Path: "lay"}},
		{"path and tag", "lay:v1", Reference{Path: "lay", Tag: "v1"}},
		{"path and digest", "lay@" + testDigest.String(), Reference{Path: "lay", Digest: testDigest}},
		{"oci path", "oci:lay", Reference{Path: "lay"}},
		{"oci path and tag", "oci:lay:v1", Reference{Path: "lay", Tag: "v1"}},
		{"existing directory with colon", "a:b", Reference{Path: "a:b"}},
		{"directory with colon and tag", "a:b:v1", Reference{Path: "a:b", Tag: "v1"}},
		{"oci directory with colon and tag", "oci:a:b:v1", Reference{Path: "a:b", Tag: "v1"}},
		{"longest existing prefix wins", "x:y:z", Reference{Path: "x:y", Tag: "z"}},
		{"tag that is a full name", "lay:docker.io/library/alpine:3.20", Reference{Path: "lay", Tag: "docker.io/library/alpine:3.20"}},
		{"directory with at sign", "u@h", Reference{Path: "u@h"}},
		{"directory with at sign and tag", "u@h:v1", Reference{Path: "u@h", Tag: "v1"}},
		{"directory named oci", "oci", Reference{Path: "oci"}},
		{"directory named oci with tag", "./oci:v1", Reference{Path: "./oci", Tag: "v1"}},
		{"oci prefix is dropped before looking", "oci:nothing", Reference{Path: "nothing"}},
		{"missing path with tag", "nothing:v1", Reference{Path: "nothing", Tag: "v1"}},
		{"missing path with digest", "nothing@" + testDigest.String(), Reference{Path: "nothing", Digest: testDigest}},
		{"missing path, colon before slash", "no:thing/deeper", Reference{Path: "no:thing/deeper"}},
		{"missing path, at sign before slash", "me@host/lay", Reference{Path: "me@host/lay"}},
		{"missing path, at sign before slash, then tag", "me@host/lay:v1", Reference{Path: "me@host/lay", Tag: "v1"}},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReference(tc.in)
			if err != nil {
				t.Fatalf("ParseReference(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseReference(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseReferenceErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("lay", 0o755); err != nil {
		t.Fatal(err)
	}
	vectors := []struct {
		name, in string
		is       error  // sentinel the error must wrap, if any
		contains string // part of the message
	}{
		{"empty", "", nil, "empty reference"},
		{"only oci prefix", "oci:", nil, "empty path"},
		{"empty tag", "lay:", nil, "empty tag"},
		{"empty path", ":v1", nil, "empty path"},
		{"unsupported algorithm", "lay@blake3:" + strings.Repeat("a", 64), ErrUnsupportedDigest, `"blake3"`},
		{"short digest", "lay@sha256:abcd", nil, "invalid digest"},
		{"digest not hex", "lay@sha256:" + strings.Repeat("z", 64), nil, "invalid digest"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReference(tc.in)
			if err == nil {
				t.Fatalf("ParseReference(%q) = %+v, want error", tc.in, got)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("ParseReference(%q) = %v, want %v", tc.in, err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("ParseReference(%q) = %q, want it to mention %q", tc.in, err, tc.contains)
			}
		})
	}
}

func TestReferenceString(t *testing.T) {
	for _, tc := range []struct {
		ref  Reference
		want string
	}{
		{Reference{Path: "p"}, "p"},
		{Reference{Path: "p", Tag: "t"}, "p:t"},
		{Reference{Path: "p", Digest: testDigest}, "p@" + testDigest.String()},
		{Reference{Transport: TransportOCIArchive, Path: "x.tar", Tag: "t"}, "oci-archive:x.tar:t"},
		{Reference{Transport: TransportDockerArchive, Path: "x.tar", Tag: "@0"}, "docker-archive:x.tar:@0"},
		{Reference{Transport: TransportDockerArchive, Path: "x.tar", Tag: "a/b:c"}, "docker-archive:x.tar:a/b:c"},
		{Reference{Transport: TransportRegistry, Path: "docker.io/library/busybox", Tag: "latest"}, "docker://docker.io/library/busybox:latest"},
		{Reference{Transport: TransportRegistry, Path: "h:5000/r", Digest: testDigest}, "docker://h:5000/r@" + testDigest.String()},
	} {
		if got := tc.ref.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.ref, got, tc.want)
		}
	}
}

// FuzzParseReference checks that parsing never panics, that what it
// returns is well formed, and that String round-trips where the text
// is unambiguous without looking at the file system.
func FuzzParseReference(f *testing.F) {
	seeds, err := os.ReadFile("testdata/references.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range strings.Split(string(seeds), "\n") {
		if s != "" && !strings.HasPrefix(s, "#") {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseReference(s)
		if err != nil {
			return
		}
		if ref.Path == "" {
			t.Fatalf("ParseReference(%q) = %+v with an empty path", s, ref)
		}
		if ref.Tag != "" && ref.Digest != "" {
			t.Fatalf("ParseReference(%q) = %+v with both tag and digest", s, ref)
		}
		if ref.Digest != "" {
			if err := ref.Digest.Validate(); err != nil {
				t.Fatalf("ParseReference(%q) digest %q: %v", s, ref.Digest, err)
			}
		}
		if strings.ContainsAny(ref.Path, ":@") || strings.ContainsAny(ref.Tag, ":@/") || strings.HasPrefix(ref.String(), ociPrefix) || isDir(ref.String()) {
			return
		}
		again, err := ParseReference(ref.String())
		if err != nil || again != ref {
			t.Fatalf("ParseReference(%q) = %+v, %v; want %+v", ref.String(), again, err, ref)
		}
	})
}

// TestParseReferenceTransports covers the archive and registry forms.
// In the test's directory, img.tar is an oci-archive, saved.tar a
// docker-archive, a:b.tar an oci-archive with a colon in its name and
// lay a layout directory.
func TestParseReferenceTransports(t *testing.T) {
	t.Chdir(t.TempDir())
	oci, _ := writeOCIArchive(t, named("a", nil))
	for _, name := range []string{"img.tar", "a:b.tar"} {
		if err := os.Link(oci, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(writeDockerArchive(t, dockerImage{name: "a", tags: []string{"busybox:latest"}}), "saved.tar"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("lay", 0o755); err != nil {
		t.Fatal(err)
	}
	// The newer docker save writes a layout beside manifest.json: an
	// oci-archive.
	both := t.TempDir()
	imagetest.WriteLayout(t, both, named("a", nil))
	writeTar(t, "new.tar", append(layoutMembers(t, both, ""), regular("manifest.json", []byte("[]")))...)
	const (
		oa = TransportOCIArchive
		da = TransportDockerArchive
		rg = TransportRegistry
	)
	vectors := []struct {
		name string
		in   string
		want Reference
	}{
		{"oci-archive", "oci-archive:img.tar", Reference{Transport: oa, Path: "img.tar"}},
		{"oci-archive and tag", "oci-archive:img.tar:v1", Reference{Transport: oa, Path: "img.tar", Tag: "v1"}},
		{"oci-archive and digest", "oci-archive:img.tar@" + testDigest.String(), Reference{Transport: oa, Path: "img.tar", Digest: testDigest}},
		{"oci-archive with colon", "oci-archive:a:b.tar:v1", Reference{Transport: oa, Path: "a:b.tar", Tag: "v1"}},
		{"oci-archive missing", "oci-archive:gone.tar:v1", Reference{Transport: oa, Path: "gone.tar", Tag: "v1"}},
		{"oci-archive tag with colons", "oci-archive:img.tar:docker.io/library/a:1", Reference{Transport: oa, Path: "img.tar", Tag: "docker.io/library/a:1"}},
		{"docker-archive", "docker-archive:saved.tar", Reference{Transport: da, Path: "saved.tar"}},
		{"docker-archive name", "docker-archive:saved.tar:busybox:latest", Reference{Transport: da, Path: "saved.tar", Tag: "busybox:latest"}},
		{"docker-archive host name", "docker-archive:saved.tar:localhost:5000/a/b:v1", Reference{Transport: da, Path: "saved.tar", Tag: "localhost:5000/a/b:v1"}},
		{"docker-archive @N", "docker-archive:saved.tar:@1", Reference{Transport: da, Path: "saved.tar", Tag: "@1"}},
		{"docker-archive N", "docker-archive:saved.tar:2", Reference{Transport: da, Path: "saved.tar", Tag: "@2"}},
		{"docker-archive missing, name", "docker-archive:gone.tar:repo:tag", Reference{Transport: da, Path: "gone.tar", Tag: "repo:tag"}},
		{"plain oci-archive", "img.tar", Reference{Transport: oa, Path: "img.tar"}},
		{"plain oci-archive and tag", "img.tar:v1", Reference{Transport: oa, Path: "img.tar", Tag: "v1"}},
		{"plain oci-archive with colon", "a:b.tar", Reference{Transport: oa, Path: "a:b.tar"}},
		{"plain docker-archive", "saved.tar", Reference{Transport: da, Path: "saved.tar"}},
		{"plain newer docker save", "new.tar:latest", Reference{Transport: oa, Path: "new.tar", Tag: "latest"}},
		{"plain docker-archive name", "saved.tar:busybox:latest", Reference{Transport: da, Path: "saved.tar", Tag: "busybox:latest"}},
		{"plain docker-archive N", "saved.tar:0", Reference{Transport: da, Path: "saved.tar", Tag: "@0"}},
		{"oci: is a layout, even for a file", "oci:img.tar", Reference{Path: "img.tar"}},
		{"layout still a layout", "lay:v1", Reference{Path: "lay", Tag: "v1"}},
		{"registry short name", "docker://busybox", Reference{Transport: rg, Path: "docker.io/library/busybox", Tag: "latest"}},
		{"registry short name and tag", "docker://busybox:1.36", Reference{Transport: rg, Path: "docker.io/library/busybox", Tag: "1.36"}},
		{"registry docker.io user repo", "docker://docker.io/user/app", Reference{Transport: rg, Path: "docker.io/user/app", Tag: "latest"}},
		{"registry index.docker.io", "docker://index.docker.io/library/alpine:3", Reference{Transport: rg, Path: "docker.io/library/alpine", Tag: "3"}},
		{"registry host and port", "docker://localhost:5000/a/b:t", Reference{Transport: rg, Path: "localhost:5000/a/b", Tag: "t"}},
		{"registry address", "docker://127.0.0.1:5000/x", Reference{Transport: rg, Path: "127.0.0.1:5000/x", Tag: "latest"}},
		{"registry digest", "docker://ghcr.io/o/r@" + testDigest.String(), Reference{Transport: rg, Path: "ghcr.io/o/r", Digest: testDigest}},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReference(tc.in)
			if err != nil {
				t.Fatalf("ParseReference(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseReference(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			// String prints a reference that parses back to the same
			// (except a layout whose path is a file: that is no
			// layout, and PATH alone is then read as an archive).
			if got.Transport == TransportLayout && isFile(got.Path) {
				return
			}
			again, err := ParseReference(got.String())
			if err != nil || again != got {
				t.Errorf("ParseReference(%q) = %+v, %v; want %+v", got.String(), again, err, got)
			}
		})
	}

	errs := []struct {
		name, in string
		is       error
		contains string
	}{
		{"empty oci-archive", "oci-archive:", nil, "empty path"},
		{"empty docker-archive", "docker-archive:", nil, "empty path"},
		{"empty registry", "docker://", nil, "empty repository"},
		{"registry upper case", "docker://Busybox", nil, "must be lowercase"},
		{"registry tag and digest", "docker://busybox:1@" + testDigest.String(), nil, "both a tag and a digest"},
		{"registry bad digest", "docker://busybox@sha256:abc", nil, "docker://busybox@sha256:abc"},
		{"docker-archive name without tag", "docker-archive:saved.tar:busybox", nil, "has no tag"},
		{"docker-archive bad index", "docker-archive:saved.tar:@x", nil, `image index "@x"`},
		{"docker-archive negative index", "docker-archive:saved.tar:@-1", nil, `image index "@-1"`},
		{"plain file not an archive", "notes.txt", ErrBadArchive, "read tar header"},
	}
	if err := os.WriteFile("notes.txt", []byte(strings.Repeat("not a tar\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReference(tc.in)
			if err == nil {
				t.Fatalf("ParseReference(%q) = %+v, want error", tc.in, got)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("ParseReference(%q) = %v, want %v", tc.in, err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("ParseReference(%q) = %q, want it to mention %q", tc.in, err, tc.contains)
			}
		})
	}
}
