package browse

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"testing"

	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/rootfs"
)

// symlinkLayer has a secret and symlinks that try to leave the root.
func symlinkLayer() *tartest.Layer {
	l := (&tartest.Layer{}).
		Dir("etc").
		File("etc/shadow", []byte("image shadow\n"), tartest.Mode(0)).
		Symlink("etc/rel", "shadow").
		Symlink("abs", "/etc/shadow").
		Dir("a").Dir("a/b").
		Symlink("a/b/up", "../../../../../../etc/shadow").
		Symlink("a/b/root", "../../.."). // the root, not the host's /
		Symlink("viadir", "a/b/root/etc").
		Symlink("loop1", "loop2").Symlink("loop2", "loop1").
		Symlink("self", "self").
		Symlink("dangling", "/nonexistent").
		Symlink("todir", "/etc").
		CharDev("null", 1, 3).
		File("hostfile", []byte("not /etc/hostname"))
	// A chain of 40 links is allowed, 41 is ELOOP (path_resolution(7)).
	l.Symlink("chain0", "etc/shadow")
	for i := 1; i <= 40; i++ {
		l.Symlink(fmt.Sprintf("chain%d", i), fmt.Sprintf("chain%d", i-1))
	}
	return l
}

func TestCat(t *testing.T) {
	r := openLayers(t, tartest.Gzip, symlinkLayer())
	vectors := []struct {
		name, path string
		want       string
		wantErr    error
	}{
		{"plain", "/etc/shadow", "image shadow\n", nil},
		{"no leading slash", "etc/shadow", "image shadow\n", nil},
		{"relative link", "/etc/rel", "image shadow\n", nil},
		{"absolute link stays inside", "/abs", "image shadow\n", nil},
		{"dotdot beyond the root", "/a/b/up", "image shadow\n", nil},
		{"dotdot link as a parent", "/a/b/root/etc/shadow", "image shadow\n", nil},
		{"link through link", "/viadir/shadow", "image shadow\n", nil},
		{"path dotdot beyond the root", "/../../../etc/shadow", "image shadow\n", nil},
		{"40 links", "/chain39", "image shadow\n", nil},
		{"41 links", "/chain40", "", ErrLoop},
		{"loop", "/loop1", "", ErrLoop},
		{"self loop", "/self", "", ErrLoop},
		{"dangling", "/dangling", "", iofs.ErrNotExist},
		{"missing", "/etc/passwd", "", iofs.ErrNotExist},
		{"host file name", "/etc/hostname", "", iofs.ErrNotExist},
		{"directory", "/etc", "", ErrIsDir},
		{"link to directory", "/todir", "", ErrIsDir},
		{"device", "/null", "", rootfs.ErrNotRegular},
		{"through a file", "/hostfile/x", "", overlay.ErrNotDir},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Cat(&buf, r, tc.path)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Cat(%q) = %v, want %v", tc.path, err, tc.wantErr)
				}
				return
			}
			if err != nil || buf.String() != tc.want {
				t.Errorf("Cat(%q) = %q, %v, want %q", tc.path, buf.String(), err, tc.want)
			}
		})
	}
}

// TestCatMatchesTar reads every regular file of a one-layer image with
// Cat and compares it with what archive/tar reads sequentially from the
// uncompressed layer.
func TestCatMatchesTar(t *testing.T) {
	l := (&tartest.Layer{}).
		Dir("d").
		File("d/empty", nil).
		File("d/small", []byte("small\n")).
		File("d/big", tartest.RandomData(t, "big", 3<<20+12345)). // crosses buffers and chunks
		File("d/exact", tartest.RandomData(t, "exact", copyBufferSize)).
		Hardlink("d/link", "d/big").
		File("zeros", make([]byte, 700<<10)).
		File("z/deep/file", tartest.RandomData(t, "deep", 70000))
	for i := range 50 {
		l.File(fmt.Sprintf("many/%02d", i), tartest.RandomData(t, fmt.Sprint(i), i*997))
	}
	raw := l.Tar()
	for _, c := range []tartest.Compression{tartest.Plain, tartest.Gzip, tartest.Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			r := openLayers(t, c, l)
			tr := tar.NewReader(bytes.NewReader(raw))
			contents := map[string][]byte{}
			files := 0
			for {
				hdr, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("read tar: %v", err)
				}
				var want []byte
				switch hdr.Typeflag {
				case tar.TypeReg:
					if want, err = io.ReadAll(tr); err != nil {
						t.Fatalf("read %q: %v", hdr.Name, err)
					}
					contents[hdr.Name] = want
				case tar.TypeLink:
					want = contents[hdr.Linkname]
				default:
					continue
				}
				files++
				var got bytes.Buffer
				if err := Cat(&got, r, hdr.Name); err != nil {
					t.Errorf("Cat(%q) = %v", hdr.Name, err)
					continue
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Errorf("Cat(%q): %d bytes differ from the tar's %d", hdr.Name, got.Len(), len(want))
				}
			}
			if files != 57 {
				t.Errorf("compared %d files, want 57", files)
			}
		})
	}
}
