package image

import (
	"errors"
	"os"
	"strings"
	"testing"

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
