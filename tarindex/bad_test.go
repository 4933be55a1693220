package tarindex

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func smallLayer(t *testing.T) []byte {
	r := rngFor(t)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for i := range 8 {
		data := content(r, 100<<10)
		tw.WriteHeader(&tar.Header{Name: "f" + string(rune('a'+i)), Size: int64(len(data)), Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	return b.Bytes()
}

// TestBadInput checks that each kind of damage fails Build with a clear
// error and no index.
func TestBadInput(t *testing.T) {
	raw := smallLayer(t)
	gz := compress(rngFor(t), raw, Gzip, 1)
	zs := compress(rngFor(t), raw, Zstd, 1)
	mod := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	// absurd: a header whose base-256 size is 2^60.
	absurd := mod(raw, func(b []byte) []byte {
		b[124] = 0x80
		for i := 125; i < 136; i++ {
			b[i] = 0
		}
		b[128] = 0x10
		finishHeader(b[:512])
		return b
	})
	negative := mod(raw, func(b []byte) []byte {
		for i := 124; i < 136; i++ {
			b[i] = 0xff
		}
		finishHeader(b[:512])
		return b
	})
	vectors := []struct {
		name   string
		blob   []byte
		comp   Compression
		desc   func(*ocispec.Descriptor)
		opts   BuildOptions
		want   error
		substr string
	}{
		{"blob digest mismatch", gz, Gzip, func(d *ocispec.Descriptor) { d.Digest = digest.FromString("x") }, BuildOptions{}, ErrDigestMismatch, "check blob digest"},
		{"blob size mismatch", gz, Gzip, func(d *ocispec.Descriptor) { d.Size-- }, BuildOptions{}, ErrDigestMismatch, "longer than the descriptor"},
		{"diffID mismatch", gz, Gzip, nil, BuildOptions{DiffID: digest.FromString("y")}, ErrDiffIDMismatch, "check diffID"},
		{"truncated gzip", gz[:len(gz)/2], Gzip, nil, BuildOptions{}, ErrMalformed, "truncated"},
		{"truncated gzip trailer", gz[:len(gz)-3], Gzip, nil, BuildOptions{}, ErrMalformed, "trailer"},
		{"corrupt deflate", mod(gz, func(b []byte) []byte { b[15] |= 0x06; return b }), Gzip, nil, BuildOptions{}, ErrMalformed, "corrupt deflate"},
		{"bad CRC", mod(gz, func(b []byte) []byte { b[len(b)-8] ^= 1; return b }), Gzip, nil, BuildOptions{}, ErrMalformed, "CRC-32"},
		{"bad ISIZE", mod(gz, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), Gzip, nil, BuildOptions{}, ErrMalformed, "size mod 2^32"},
		{"not gzip", raw, Gzip, nil, BuildOptions{}, ErrMalformed, "not gzip data"},
		{"trailing garbage after gzip", append(append([]byte(nil), gz...), "junk"...), Gzip, nil, BuildOptions{}, ErrMalformed, "trailing data"},
		{"gzip under plain media type", gz, Uncompressed, nil, BuildOptions{}, ErrMalformed, "gzip magic"},
		{"zstd under plain media type", zs, Uncompressed, nil, BuildOptions{}, ErrMalformed, "zstd magic"},
		{"truncated zstd", zs[:len(zs)/2], Zstd, nil, BuildOptions{}, ErrMalformed, "zstd"},
		{"corrupt zstd", mod(zs, func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b }), Zstd, nil, BuildOptions{}, ErrMalformed, "zstd"},
		{"bad tar header checksum", mod(raw, func(b []byte) []byte { b[0] ^= 1; return b }), Uncompressed, nil, BuildOptions{}, ErrMalformed, "read tar header"},
		{"absurd size", absurd, Uncompressed, nil, BuildOptions{}, ErrMalformed, "truncated archive"},
		{"negative size", negative, Uncompressed, nil, BuildOptions{}, ErrMalformed, "read tar header"},
		{"entry runs past end of blob", raw[:300<<10], Uncompressed, nil, BuildOptions{}, ErrMalformed, "truncated archive"},
		{"entry runs past end of gzip blob", compress(rngFor(t), raw[:300<<10], Gzip, 1), Gzip, nil, BuildOptions{}, ErrMalformed, "truncated archive"},
		{"unknown media type", gz, Gzip, func(d *ocispec.Descriptor) { d.MediaType = "application/octet-stream" }, BuildOptions{}, ErrMediaType, "media type"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			desc := descFor(tc.blob, tc.comp)
			if tc.desc != nil {
				tc.desc(&desc)
			}
			ix, err := Build(context.Background(), bytes.NewReader(tc.blob), desc, tc.opts)
			if err == nil || ix != nil {
				t.Fatalf("Build = %v, %v, want error %v", ix != nil, err, tc.want)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.substr) {
				t.Errorf("Build error = %q, want %v containing %q", err, tc.want, tc.substr)
			}
		})
	}
}

// TestCorruptBlobAtRead damages the blob after indexing: reads must fail
// or return the right bytes, never wrong ones.
func TestCorruptBlobAtRead(t *testing.T) {
	raw := smallLayer(t)
	want := readTar(t, raw)
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			blob := compress(rngFor(t), raw, c, 1)
			ix := mustBuild(t, blob, c, BuildOptions{Span: 64 << 10})
			bad := append([]byte(nil), blob...)
			for i := len(bad) / 3; i < len(bad)/3+64; i++ {
				bad[i] ^= 0x5a
			}
			rd := NewReader(ix, bytes.NewReader(bad), ReaderOptions{})
			failed := 0
			for i := range ix.Entries {
				e := &ix.Entries[i]
				buf := make([]byte, e.Size)
				n, err := rd.ReadAt(e, buf, 0)
				if err != nil && err != io.EOF {
					failed++
					if !errors.Is(err, ErrMalformed) {
						t.Errorf("ReadAt(%q) error %v does not wrap ErrMalformed", e.Name, err)
					}
					continue
				}
				if !bytes.Equal(buf[:n], want[i].data) {
					t.Fatalf("ReadAt(%q) returned wrong bytes from a damaged blob", e.Name)
				}
			}
			if failed == 0 {
				t.Errorf("no read failed on a damaged blob")
			}
		})
	}
}

func TestCache(t *testing.T) {
	raw := smallLayer(t)
	blob := compress(rngFor(t), raw, Gzip, 1)
	desc := descFor(blob, Gzip)
	ctx := context.Background()
	c := &Cache{Dir: t.TempDir()}
	p, err := c.Path(desc)
	if err != nil {
		t.Fatalf("Path: %v", err)
	}
	ix, err := c.Index(ctx, bytes.NewReader(blob), desc, BuildOptions{})
	if err != nil {
		t.Fatalf("Index: %v", err)
	}
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("cache file not written: %v", err)
	}
	if ix.Summary().EncodedSize != len(good) {
		t.Errorf("EncodedSize = %d, want %d", ix.Summary().EncodedSize, len(good))
	}

	vectors := []struct {
		name   string
		damage func()
		blob   []byte
		desc   ocispec.Descriptor
	}{
		{"hit", func() {}, blob, desc},
		{"truncated file", func() { os.WriteFile(p, good[:len(good)/2], 0o644) }, blob, desc},
		{"flipped byte", func() {
			b := append([]byte(nil), good...)
			b[len(b)/2] ^= 1
			os.WriteFile(p, b, 0o644)
		}, blob, desc},
		{"empty file", func() { os.WriteFile(p, nil, 0o644) }, blob, desc},
		{"blob changed size", func() {}, append(append([]byte(nil), blob...), 0), desc},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			tc.damage()
			ix, err := c.Index(ctx, bytes.NewReader(tc.blob), tc.desc, BuildOptions{})
			if tc.name == "blob changed size" {
				// The cached file is for a 'size' blob; the blob is now
				// longer: not trusted, rebuilt, and the rebuild sees the
				// mismatch.
				if !errors.Is(err, ErrDigestMismatch) {
					t.Fatalf("Index on a changed blob = %v, want ErrDigestMismatch", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Index: %v", err)
			}
			checkIndex(t, rngFor(t), ix, blob, raw)
			if b, _ := os.ReadFile(p); !bytes.Equal(b, good) {
				t.Errorf("cache file not rebuilt to the good encoding")
			}
		})
	}

	t.Run("descriptor size changed", func(t *testing.T) {
		d := desc
		d.Size++
		if _, err := c.Index(ctx, bytes.NewReader(blob), d, BuildOptions{}); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("Index with wrong size = %v, want ErrDigestMismatch", err)
		}
	})

	t.Run("unwritable dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ro")
		os.WriteFile(dir, nil, 0o644) // a file where the directory should be
		c := &Cache{Dir: dir}
		if _, err := c.Index(ctx, bytes.NewReader(blob), desc, BuildOptions{}); err != nil {
			t.Fatalf("Index with unwritable cache = %v, want the index anyway", err)
		}
	})
}

func TestDecodeErrors(t *testing.T) {
	raw := smallLayer(t)
	blob := compress(rngFor(t), raw, Gzip, 1)
	b, err := mustBuild(t, blob, Gzip, BuildOptions{Span: 64 << 10}).MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	future := append([]byte(nil), b...)
	future[len(indexMagic)] = FormatVersion + 1
	vectors := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"bad magic", append([]byte("XX"), b[2:]...), ErrCorrupt},
		{"future version", future, ErrVersion},
		{"truncated", b[:len(b)-1], ErrCorrupt},
		{"flipped bit", func() []byte { c := append([]byte(nil), b...); c[40] ^= 4; return c }(), ErrCorrupt},
	}
	for _, tc := range vectors {
		if _, err := Decode(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("Decode(%s) = %v, want %v", tc.name, err, tc.want)
		}
	}
}
