package integration

import (
	"bytes"
	"errors"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/internal/testenv"
)

// requireRoot skips the test unless it runs as root; with CI=true it
// fails instead. Extracting owners, devices and security xattrs, as GNU
// tar and umoci do here, needs root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	testenv.Unavailable(t, "not root: GNU tar and umoci raw unpack need root to keep owners, devices and xattrs")
}

// umociLayout builds a layout with umoci itself: init, new, then
// insert a directory tree (every file type, hardlinks, xattrs) as one
// layer and a whiteout and an opaque directory as two more.
func umociLayout(t *testing.T, umoci, dir string) {
	t.Helper()
	src := t.TempDir()
	mk := func(p string, data []byte, mode os.FileMode) {
		p = filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	mk("bin/busybox", tartest.RandomData(t, "busybox", 2<<20), 0o755)
	mk("bin/su", []byte("su"), 0o4755|os.ModeSetuid)
	mk("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	mk("etc/shadow", []byte("root:*:19000::::::\n"), 0)
	mk("opt/old/file", []byte("hidden by an opaque insert"), 0o644)
	mk("gone", []byte("whited out"), 0o644)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(filepath.Join(src, "bin/su"), 0o4755))
	must(os.Link(filepath.Join(src, "bin/busybox"), filepath.Join(src, "bin/ls")))
	must(os.Symlink("busybox", filepath.Join(src, "bin/sh")))
	must(os.Symlink("/etc/shadow", filepath.Join(src, "shadow-link")))
	must(os.MkdirAll(filepath.Join(src, "dev"), 0o755))
	must(unix.Mknod(filepath.Join(src, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(filepath.Join(src, "dev/fifo"), 0o600))
	must(unix.Setxattr(filepath.Join(src, "etc/passwd"), "user.comment", []byte("hello"), 0))
	must(unix.Setxattr(filepath.Join(src, "bin/busybox"), "security.capability", []byte(capNetBindService), 0))
	must(os.MkdirAll(filepath.Join(src, "home/user"), 0o700))
	must(os.Chown(filepath.Join(src, "home/user"), 1000, 1000))
	must(os.Chmod(filepath.Join(src, "home/user"), 0o700))

	opt := t.TempDir()
	mk2 := filepath.Join(opt, "new")
	must(os.WriteFile(mk2, []byte("after the opaque insert"), 0o644))

	image := dir + ":test"
	run(t, umoci, "init", "--layout", dir)
	run(t, umoci, "new", "--image", image)
	run(t, umoci, "insert", "--image", image, src, "/")
	run(t, umoci, "insert", "--image", image, "--whiteout", "/gone")
	run(t, umoci, "insert", "--image", image, "--opaque", opt, "/opt")
}

// TestExportMatchesUmoci exports generated layouts and one built by
// umoci with `ocifs export`, extracts the archive with GNU tar and
// compares the tree with what umoci raw unpack makes of the same
// layout, with the exceptions TestMountMatchesUmoci lists (directory
// sizes, atime and ctime, the mtime of directories no layer lists, inode
// numbers only as hardlink groups).
func TestExportMatchesUmoci(t *testing.T) {
	requireRoot(t)
	umoci := requireTool(t, "umoci")
	gnutar := requireTool(t, "tar")
	bin := buildOcifs(t)
	t.Setenv("OCIFS_CACHE_DIR", filepath.Join(t.TempDir(), "cache"))

	image := func(c tartest.Compression, layers func(t *testing.T) []*tartest.Layer) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			imagetest.WriteLayout(t, dir, imagetest.Image{Tag: "test", Layers: layerSpecs(c, layers(t)...)})
		}
	}
	everything := func(t *testing.T) []*tartest.Layer { return []*tartest.Layer{everythingLayer(t)} }
	whiteouts := func(*testing.T) []*tartest.Layer { return whiteoutLayers() }
	vectors := []struct {
		name     string
		write    func(t *testing.T, dir string)
		implicit []string // directories no layer lists
	}{
		{"everything-gzip", image(tartest.Gzip, everything), []string{".", "implicit", "implicit/parent"}},
		{"everything-plain", image(tartest.Plain, everything), []string{".", "implicit", "implicit/parent"}},
		{"whiteouts-gzip", image(tartest.Gzip, whiteouts), []string{".", "h"}},
		{"gnu-sparse-longnames-gzip", func(t *testing.T, dir string) {
			writeRawLayout(t, dir, "test", tartest.Gzip, gnuTarLayers(t)...)
		}, nil},
		{"made-by-umoci", func(t *testing.T, dir string) { umociLayout(t, umoci, dir) }, []string{"."}},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			layout := filepath.Join(t.TempDir(), "layout")
			tc.write(t, layout)
			unpacked := filepath.Join(t.TempDir(), "rootfs")
			run(t, umoci, "raw", "unpack", "--image", layout+":test", unpacked)

			archive := filepath.Join(t.TempDir(), "rootfs.tar")
			run(t, bin, "export", "-o", archive, layout+":test")
			extracted := t.TempDir()
			run(t, gnutar, "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", archive, "-C", extracted)

			compareTrees(t, snapshot(t, extracted), snapshot(t, unpacked), tc.implicit)
		})
	}
}

// TestCatMatchesMount reads every regular file of a mounted image with
// one `ocifs cat` of all of them and compares each with the mount.
func TestCatMatchesMount(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	t.Setenv("OCIFS_CACHE_DIR", filepath.Join(t.TempDir(), "cache"))
	for _, tc := range []struct {
		name   string
		layers []*tartest.Layer
	}{
		{"everything", []*tartest.Layer{everythingLayer(t)}},
		{"whiteouts", whiteoutLayers()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			layout := filepath.Join(t.TempDir(), "layout")
			imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "test", Layers: layerSpecs(tartest.Zstd, tc.layers...)})
			ref := layout + ":test"
			mnt := ocifsMount(t, bin, ref)

			var paths []string
			var want [][]byte
			err := filepath.WalkDir(mnt, func(p string, d iofs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(mnt, p)
				paths, want = append(paths, "/"+rel), append(want, data)
				return nil
			})
			if err != nil {
				t.Fatalf("walk the mount: %v", err)
			}
			if len(paths) < 5 {
				t.Fatalf("only %d files in the mount", len(paths))
			}
			got := run(t, bin, append([]string{"cat", ref}, paths...)...)
			for i, p := range paths {
				n := min(len(want[i]), len(got))
				if !bytes.Equal(got[:n], want[i]) || n < len(want[i]) {
					t.Errorf("ocifs cat %s differs from the mounted file (%d bytes)", p, len(want[i]))
				}
				got = got[n:]
			}
			if len(got) != 0 {
				t.Errorf("ocifs cat wrote %d bytes more than the mounted files hold", len(got))
			}
		})
	}
}

// TestCatSymlinkEscape: symlinks to host paths resolve inside the image
// (their bytes are the image's, never the host's), loops fail like
// ELOOP, and the CLI says so. No FUSE and no root needed.
func TestCatSymlinkEscape(t *testing.T) {
	bin := buildOcifs(t)
	t.Setenv("OCIFS_CACHE_DIR", filepath.Join(t.TempDir(), "cache"))
	layout := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "test", Layers: layerSpecs(tartest.Gzip, (&tartest.Layer{}).
		Dir("etc").
		File("etc/shadow", []byte("image shadow\n"), tartest.Mode(0)).
		File("etc/hostname", []byte("image hostname\n")).
		Symlink("abs", "/etc/shadow").
		Dir("a").Dir("a/b").
		Symlink("a/b/up", "../../../../../../../../etc/hostname").
		Symlink("a/b/root", "../../..").
		Symlink("proc-self", "/proc/self/root/etc/hostname").
		Symlink("loop", "loop"))})
	ref := layout + ":test"

	for _, tc := range []struct{ path, want string }{
		{"/abs", "image shadow\n"},
		{"/a/b/up", "image hostname\n"},
		{"/a/b/root/etc/hostname", "image hostname\n"},
		{"/../../etc/shadow", "image shadow\n"},
	} {
		if got := run(t, bin, "cat", ref, tc.path); string(got) != tc.want {
			t.Errorf("ocifs cat %s = %q, want %q", tc.path, got, tc.want)
		}
	}
	for _, tc := range []struct{ path, wantErr string }{
		{"/proc-self", "does not exist"}, // the image has no /proc: never the host's
		{"/loop", "too many levels of symbolic links"},
	} {
		stdout, stderr, err := runErr(bin, "cat", ref, tc.path)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || len(stdout) != 0 || !strings.Contains(string(stderr), tc.wantErr) {
			t.Errorf("ocifs cat %s = %v, %q, %q; want exit 1 and %q", tc.path, err, stdout, stderr, tc.wantErr)
		}
	}
}

// TestBrowseCLI runs ls, stat and diff end to end, without FUSE or root.
func TestBrowseCLI(t *testing.T) {
	bin := buildOcifs(t)
	t.Setenv("OCIFS_CACHE_DIR", filepath.Join(t.TempDir(), "cache"))
	layout := filepath.Join(t.TempDir(), "layout")
	ls := whiteoutLayers()
	imagetest.WriteLayout(t, layout,
		imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Gzip, ls[0])},
		imagetest.Image{Tag: "v3", Layers: layerSpecs(tartest.Gzip, ls...)})
	v1, v3 := layout+":v1", layout+":v3"

	if got := string(run(t, bin, "ls", v3, "/a")); got != "keep\nsub2\n" {
		t.Errorf("ocifs ls %s /a = %q", v3, got)
	}
	out := string(run(t, bin, "stat", v3, "/a/keep"))
	for _, want := range []string{"Mode:", "0600 (-rw-------)", "Owner:", "7:8", "Layer:", "2 sha256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("ocifs stat /a/keep lacks %q:\n%s", want, out)
		}
	}
	if out := run(t, bin, "diff", v3, v3); len(out) != 0 {
		t.Errorf("ocifs diff of an image and itself = %q, want nothing", out)
	}
	got := strings.Split(strings.TrimSpace(string(run(t, bin, "diff", v1, v3))), "\n")
	want := []string{
		"D /a/gone",
		"C /a/keep (mode, owner)",
		"A /a/sub2", "A /a/sub2/f",
		"D /a/sub", "D /a/sub/deep",
		"A /b/new", "D /b/old1", "D /b/olddir", "D /b/olddir/x",
		"C /c (type)", "A /c/x",
		"C /d (type)", "D /d/inner",
		"D /h/link",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ocifs diff v1 v3 =\n%s\nwant (in any order)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, stderr, err := runErr(bin, "stat", v3, "/a/gone"); err == nil || !strings.Contains(string(stderr), "does not exist") {
		t.Errorf("ocifs stat of a whited-out file = %v, %q", err, stderr)
	}
}
