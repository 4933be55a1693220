package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
)

// hostileTimeout bounds every command of these tests: a hostile image
// must never make ocifs hang.
const hostileTimeout = 60 * time.Second

// tryMount runs `ocifs mount` with args on a new directory, within
// hostileTimeout, and unmounts it when the test ends if it mounted.
func tryMount(t *testing.T, bin, ref string, args ...string) (mnt string, out []byte, err error) {
	t.Helper()
	mnt = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"mount"}, args...), ref, mnt)...)
	cmd.Env = append(os.Environ(), "OCIFS_CACHE_DIR="+filepath.Join(t.TempDir(), "cache"))
	out, err = cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("ocifs mount %s: no answer after %v (hang)", ref, hostileTimeout)
	}
	t.Cleanup(func() { unmountForCleanup(t, bin, mnt) })
	return mnt, out, err
}

// treeOf lists every path under root (relative, sorted) with its type,
// walking with file descriptors so that paths longer than PATH_MAX work.
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	var walk func(dirfd int, rel string, depth int)
	walk = func(dirfd int, rel string, depth int) {
		f := os.NewFile(uintptr(dirfd), rel)
		names, err := f.Readdirnames(-1)
		if err != nil {
			t.Fatalf("readdir %q: %v", rel, err)
		}
		sort.Strings(names)
		for _, n := range names {
			p := n
			if rel != "" {
				p = rel + "/" + n
			}
			var st unix.Stat_t
			if err := unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				t.Fatalf("lstat %q: %v", p, err)
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				out = append(out, p+"/")
				fd, err := unix.Openat(dirfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
				if err != nil {
					t.Fatalf("open %q: %v", p, err)
				}
				walk(fd, p, depth+1)
			case unix.S_IFLNK:
				buf := make([]byte, 4096)
				k, _ := unix.Readlinkat(dirfd, n, buf)
				out = append(out, p+" -> "+string(buf[:k]))
			default:
				data := make([]byte, 64)
				fd, err := unix.Openat(dirfd, n, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
				if err != nil {
					t.Fatalf("open %q: %v", p, err)
				}
				k, _ := unix.Read(fd, data)
				unix.Close(fd)
				out = append(out, p+" = "+string(data[:max(k, 0)]))
			}
		}
		f.Close()
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", root, err)
	}
	walk(fd, "", 0)
	return out
}

// hdr is a tar header for Raw entries: names are written exactly as
// given, "../" and all.
func hdr(typ byte, name, link string) tar.Header {
	return tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: 0o755, ModTime: tartest.Epoch, Format: tar.FormatPAX}
}

func rawFile(l *tartest.Layer, name, data string) *tartest.Layer {
	h := hdr(tar.TypeReg, name, "")
	h.Size = int64(len(data))
	return l.Raw(h, []byte(data))
}

// TestHostileLayers mounts layouts whose layers a stranger crafted and
// checks each gives the documented result (docs/security.md): the tree
// a careful unpacker would leave, or a mount that fails with a clear
// error; never a panic, a hang or a path outside the mount.
func TestHostileLayers(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	deep := strings.Repeat("d/", 2000) // 4000 bytes: under PATH_MAX
	vectors := []struct {
		name   string
		layers []*tartest.Layer
		want   []string // the whole tree, from treeOf; nil: see err
		has    []string // entries the tree must hold (big trees)
		err    string   // mount must fail with this in its output
	}{
		{
			name: "dot-dot and absolute names stay inside",
			layers: []*tartest.Layer{rawFile(rawFile(rawFile(&tartest.Layer{},
				"../../escape", "a"), "/abs/file", "b"), "x/../../../y", "c")},
			want: []string{"abs/", "abs/file = b", "escape = a", "y = c"},
		},
		{
			name: "whiteouts with dot-dot are cleaned first",
			layers: []*tartest.Layer{
				rawFile(rawFile(&tartest.Layer{}, "x", "lower"), "d/y", "lower"),
				rawFile(&tartest.Layer{}, "d/../../.wh.x", ""),
			},
			want: []string{"d/", "d/y = lower"},
		},
		{
			name: "whiteout of dot-dot is refused",
			layers: []*tartest.Layer{
				rawFile(&tartest.Layer{}, "d/y", "lower"),
				rawFile(&tartest.Layer{}, "d/.wh..", ""),
			},
			err: "invalid whiteout",
		},
		{
			name:   "hardlink outside the root names a path inside",
			layers: []*tartest.Layer{rawFile(&tartest.Layer{}, "etc/passwd", "image's").Raw(hdr(tar.TypeLink, "pw", "../../../../etc/passwd"), nil)},
			want:   []string{"etc/", "etc/passwd = image's", "pw = image's"},
		},
		{
			name:   "hardlink to nothing fails",
			layers: []*tartest.Layer{(&tartest.Layer{}).Raw(hdr(tar.TypeLink, "pw", "/etc/shadow"), nil)},
			err:    "hardlink",
		},
		{
			name: "symlink chain is followed inside the root",
			layers: []*tartest.Layer{func() *tartest.Layer {
				l := &tartest.Layer{}
				l.Dir("real")
				l.Symlink("l0", "/../l1").Symlink("l1", "../../l2").Symlink("l2", "real")
				return rawFile(l, "l0/f", "through")
			}()},
			want: []string{"l0 -> /../l1", "l1 -> ../../l2", "l2 -> real", "real/", "real/f = through"},
		},
		{
			name: "symlink loop under a parent path fails",
			layers: []*tartest.Layer{rawFile((&tartest.Layer{}).Symlink("a", "b").Symlink("b", "a"),
				"a/x", "loop")},
			err: "symlink",
		},
		{
			name:   "symlink loop alone is just two symlinks",
			layers: []*tartest.Layer{(&tartest.Layer{}).Symlink("a", "b").Symlink("b", "/a")},
			want:   []string{"a -> b", "b -> /a"},
		},
		{
			name: "directory replaced by a symlink, then written through",
			layers: []*tartest.Layer{
				rawFile((&tartest.Layer{}).Dir("d"), "d/old", "1"),
				(&tartest.Layer{}).Symlink("d", "/../target"),
				rawFile(&tartest.Layer{}, "d/new", "2"),
			},
			want: []string{"d -> /../target", "target/", "target/new = 2"},
		},
		{
			name:   "duplicate entries: the last wins",
			layers: []*tartest.Layer{rawFile(rawFile(rawFile(&tartest.Layer{}, "f", "first"), "f", "second"), "./f", "third")},
			want:   []string{"f = third"},
		},
		{
			name: "names with binary bytes and invalid UTF-8",
			layers: []*tartest.Layer{rawFile(rawFile(&tartest.Layer{},
				"\xff\xfe/\x01\x02\x7f", "bin"), "caf\xe9", "latin1")},
			want: []string{"caf\xe9 = latin1", "\xff\xfe/", "\xff\xfe/\x01\x02\x7f = bin"},
		},
		{
			name: "names longer than NAME_MAX are not listed",
			layers: []*tartest.Layer{rawFile(rawFile(&tartest.Layer{},
				strings.Repeat("n", 300), "hidden"), "ok", "shown")},
			want: []string{"ok = shown"},
		},
		{
			name:   "thousands of levels",
			layers: []*tartest.Layer{rawFile(&tartest.Layer{}, deep+"f", "deep")},
			has:    []string{"d/", strings.TrimSuffix(deep, "/") + "/", deep + "f = deep"},
		},
		{
			name:   "names longer than PATH_MAX fail",
			layers: []*tartest.Layer{rawFile(&tartest.Layer{}, strings.Repeat("d/", 3000)+"f", "deep")},
			err:    "limit",
		},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			layout := filepath.Join(dir, "layout")
			tars := make([][]byte, len(tc.layers))
			for i, l := range tc.layers {
				tars[i] = l.Tar()
			}
			writeRawLayout(t, layout, "v1", tartest.Gzip, tars...)
			before := listDir(t, dir)
			mnt, out, err := tryMount(t, bin, layout+":v1")
			if tc.err != "" {
				if err == nil || !strings.Contains(string(out), tc.err) {
					t.Fatalf("ocifs mount = %v, %q; want an error containing %q", err, out, tc.err)
				}
				if isMountPoint(t, mnt) {
					t.Errorf("a failed mount left %s mounted", mnt)
				}
			} else {
				if err != nil {
					t.Fatalf("ocifs mount: %v\n%s", err, out)
				}
				got := treeOf(t, mnt)
				if tc.want != nil && strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
					t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
				}
				for _, h := range tc.has {
					if !contains(got, h) {
						t.Errorf("tree has no %.80q", h)
					}
				}
			}
			// Nothing written next to the layout: the layout itself is
			// only read, and the cache and mount point are elsewhere.
			if after := listDir(t, dir); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("the layout's directory changed:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// listDir lists every path under dir with its size and mode.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, p+" "+fi.Mode().String()+" "+string(rune('0'+fi.Size()%10)))
		return nil
	})
	return out
}

// TestHostileLayouts mounts layouts whose blobs or index.json lie: each
// mount fails with a clear error, at once, and leaves nothing mounted.
func TestHostileLayouts(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	layer := rawFile(&tartest.Layer{}, "f", "data")
	vectors := []struct {
		name   string
		damage func(t *testing.T, layout string, m ocispec.Manifest)
		err    string
	}{
		{"layer blob does not match its digest", func(t *testing.T, layout string, m ocispec.Manifest) {
			flipByte(t, imagetest.BlobPath(layout, m.Layers[0].Digest), 20)
		}, "digest mismatch"},
		{"truncated layer", func(t *testing.T, layout string, m ocispec.Manifest) {
			if err := os.Truncate(imagetest.BlobPath(layout, m.Layers[0].Digest), m.Layers[0].Size/2); err != nil {
				t.Fatal(err)
			}
		}, "size mismatch"},
		{"index.json names a missing blob", func(t *testing.T, layout string, m ocispec.Manifest) {
			idx := ocispec.Index{}
			decode(t, mustRead(t, filepath.Join(layout, "index.json")), &idx)
			os.Remove(imagetest.BlobPath(layout, idx.Manifests[0].Digest))
		}, "blob not in layout"},
		{"layer blob is a FIFO", func(t *testing.T, layout string, m ocispec.Manifest) {
			p := imagetest.BlobPath(layout, m.Layers[0].Digest)
			os.Remove(p)
			if err := unix.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"index.json is a FIFO", func(t *testing.T, layout string, m ocispec.Manifest) {
			p := filepath.Join(layout, "index.json")
			os.Remove(p)
			if err := unix.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			layout := filepath.Join(t.TempDir(), "layout")
			descs := imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Gzip, layer)})
			tc.damage(t, layout, imagetest.ReadManifest(t, layout, descs[0]))
			mnt, out, err := tryMount(t, bin, layout+":v1")
			if err == nil || !strings.Contains(string(out), tc.err) {
				t.Fatalf("ocifs mount = %v, %q; want an error containing %q", err, out, tc.err)
			}
			if isMountPoint(t, mnt) {
				t.Errorf("a failed mount left %s mounted", mnt)
			}
		})
	}

	t.Run("manifest lists a layer twice", func(t *testing.T) {
		// Applying a layer twice is what an unpacker does: the second
		// pass replaces every path with itself.
		layout := filepath.Join(t.TempDir(), "layout")
		l1 := rawFile((&tartest.Layer{}).Dir("d"), "d/f", "one")
		l2 := (&tartest.Layer{}).Whiteout("d", "f")
		writeRawLayout(t, layout, "v1", tartest.Gzip, l1.Tar(), l2.Tar(), l1.Tar())
		mnt, out, err := tryMount(t, bin, layout+":v1")
		if err != nil {
			t.Fatalf("ocifs mount: %v\n%s", err, out)
		}
		if got, want := strings.Join(treeOf(t, mnt), "\n"), "d/\nd/f = one"; got != want {
			t.Errorf("tree %q, want %q", got, want)
		}
	})
}

func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMountFaults damages what a running mount depends on. Reads of a
// blob modified or truncated under the mount fail with EIO and a log
// line, for every compression (plain tar included: its reads are
// checked against per-chunk CRC-32Cs too), and never return wrong bytes.
func TestMountFaults(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	files := map[string][]byte{}
	l := &tartest.Layer{}
	for _, n := range []string{"a", "b", "c"} {
		files[n] = tartest.RandomData(t, n, 1<<20)
		l.File(n, files[n])
	}
	for _, c := range []tartest.Compression{tartest.Plain, tartest.Gzip, tartest.Zstd} {
		for _, damage := range []string{"modified", "truncated"} {
			t.Run(c.String()+"/"+damage, func(t *testing.T) {
				layout := filepath.Join(t.TempDir(), "layout")
				descs := imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(c, l)})
				blob := imagetest.BlobPath(layout, imagetest.ReadManifest(t, layout, descs[0]).Layers[0].Digest)
				logFile := filepath.Join(t.TempDir(), "log")
				mnt, out, err := tryMount(t, bin, layout+":v1", "--log-file", logFile)
				if err != nil {
					t.Fatalf("ocifs mount: %v\n%s", err, out)
				}
				if got := mustRead(t, filepath.Join(mnt, "a")); !bytes.Equal(got, files["a"]) {
					t.Fatalf("a: wrong bytes before any damage")
				}
				size := int64(len(mustRead(t, blob)))
				switch damage {
				case "modified":
					// Rewrite the last third of the blob (c, for plain
					// tar) in place, keeping its size.
					for off := size * 2 / 3; off < size-1024; off += 4096 {
						flipByte(t, blob, off)
					}
				case "truncated":
					if err := os.Truncate(blob, size/2); err != nil {
						t.Fatal(err)
					}
				}
				got, err := os.ReadFile(filepath.Join(mnt, "c"))
				if !errors.Is(err, unix.EIO) {
					t.Errorf("read c from a %s blob = %d bytes, %v; want EIO", damage, len(got), err)
				}
				if err == nil && !bytes.Equal(got, files["c"]) {
					t.Errorf("read c from a %s blob returned wrong bytes", damage)
				}
				if !waitFor(5*time.Second, func() bool {
					b, _ := os.ReadFile(logFile)
					return bytes.Contains(b, []byte("answering EIO"))
				}) {
					t.Errorf("no log line about the EIO in %s", logFile)
				}
				// What was read before the damage is still right (the
				// kernel keeps it), and the mount still answers.
				if got := mustRead(t, filepath.Join(mnt, "a")); !bytes.Equal(got, files["a"]) {
					t.Errorf("a: wrong bytes after the damage")
				}
			})
		}
	}
}

// TestCacheFaults: a cache directory that cannot be written, or is
// full, still mounts (with a warning); a cache file corrupted between
// mounts is rebuilt.
func TestCacheFaults(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	data := tartest.RandomData(t, "f", 300<<10)
	layout := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Gzip, (&tartest.Layer{}).File("f", data))})
	check := func(t *testing.T, cacheDir, wantLog string) {
		t.Helper()
		logFile := filepath.Join(t.TempDir(), "log")
		mnt, out, err := tryMount(t, bin, layout+":v1", "--cache-dir", cacheDir, "--log-file", logFile)
		if err != nil {
			t.Fatalf("ocifs mount: %v\n%s", err, out)
		}
		if got := mustRead(t, filepath.Join(mnt, "f")); !bytes.Equal(got, data) {
			t.Errorf("f: wrong bytes")
		}
		// Until the mount is ready the daemon logs to the terminal of
		// ocifs mount, afterwards to --log-file.
		if b := append(out, mustRead(t, logFile)...); wantLog != "" && !bytes.Contains(b, []byte(wantLog)) {
			t.Errorf("log has no %q:\n%s", wantLog, b)
		}
		unmountForCleanup(t, bin, mnt)
	}
	t.Run("not writable", func(t *testing.T) {
		// Root ignores permission bits: a cache "directory" below a
		// regular file cannot be created by anyone.
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, nil, 0o644)
		check(t, filepath.Join(file, "cache"), "store index")
	})
	t.Run("full", func(t *testing.T) {
		dir := t.TempDir()
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4k"); err != nil {
			t.Skipf("mount a tiny tmpfs: %v", err)
		}
		defer unix.Unmount(dir, unix.MNT_DETACH)
		// Fill it: the index is smaller than a page.
		os.MkdirAll(filepath.Join(dir, "index"), 0o755)
		f, err := os.Create(filepath.Join(dir, "filler"))
		if err != nil {
			t.Fatal(err)
		}
		for err == nil {
			_, err = f.Write(make([]byte, 512))
		}
		f.Close()
		check(t, dir, "store index")
	})
	// The cache holds the layer's index and the merged tree; a
	// damaged one of either is noticed and rebuilt.
	for _, tc := range []struct{ kind, log string }{
		{"index", "rebuild cached index"},
		{"tree", "rebuild cached tree"},
	} {
		t.Run(tc.kind+" corrupted between mounts", func(t *testing.T) {
			dir := t.TempDir()
			check(t, dir, "")
			var files []string
			filepath.WalkDir(filepath.Join(dir, tc.kind), func(p string, d iofs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() && !strings.HasSuffix(p, ".lock") {
					files = append(files, p)
				}
				return nil
			})
			if len(files) != 1 {
				t.Fatalf("%s cache files %q, want one", tc.kind, files)
			}
			flipByte(t, files[0], 100)
			check(t, dir, tc.log)
		})
	}
}

// TestMountsTogether: the same image mounted twice and another image
// sharing its base layer, at once, with one cache directory; then a
// daemon killed with SIGKILL, its dead mount cleared with ocifs umount
// and the image mounted again there.
func TestMountsTogether(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	base := (&tartest.Layer{}).File("base", tartest.RandomData(t, "base", 700<<10))
	top1 := (&tartest.Layer{}).File("top", tartest.RandomData(t, "top1", 300<<10))
	top2 := (&tartest.Layer{}).File("top", tartest.RandomData(t, "top2", 300<<10))
	layout := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, layout,
		imagetest.Image{Tag: "one", Layers: layerSpecs(tartest.Gzip, base, top1)},
		imagetest.Image{Tag: "two", Layers: layerSpecs(tartest.Gzip, base, top2)})
	cache := filepath.Join(t.TempDir(), "cache")
	refs := []string{"one", "one", "two"}
	mnts := make([]string, len(refs))
	for i, r := range refs {
		mnt, out, err := tryMount(t, bin, layout+":"+r, "--cache-dir", cache)
		if err != nil {
			t.Fatalf("ocifs mount %s: %v\n%s", r, err, out)
		}
		mnts[i] = mnt
	}
	want := func(r string) map[string][]byte {
		return map[string][]byte{"base": tartest.RandomData(t, "base", 700<<10), "top": tartest.RandomData(t, map[string]string{"one": "top1", "two": "top2"}[r], 300<<10)}
	}
	for i, r := range refs {
		for name, data := range want(r) {
			if got := mustRead(t, filepath.Join(mnts[i], name)); !bytes.Equal(got, data) {
				t.Errorf("%s of %s (mount %d): wrong bytes", name, r, i)
			}
		}
	}

	pid := daemonPID(t, mnts[1])
	unix.Kill(pid, unix.SIGKILL)
	waitFor(5*time.Second, func() bool { return unix.Kill(pid, 0) != nil })
	if _, stderr, err := runErr(bin, "umount", mnts[1]); err != nil {
		t.Fatalf("ocifs umount of a dead mount: %v\n%s", err, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "mount", "--cache-dir", cache, layout+":two", mnts[1]).CombinedOutput(); err != nil {
		t.Fatalf("mount again after SIGKILL: %v\n%s", err, out)
	}
	if got := mustRead(t, filepath.Join(mnts[1], "top")); !bytes.Equal(got, want("two")["top"]) {
		t.Errorf("top after remounting: wrong bytes")
	}
	// The other mounts never noticed.
	if got := mustRead(t, filepath.Join(mnts[0], "base")); !bytes.Equal(got, want("one")["base"]) {
		t.Errorf("base of the first mount: wrong bytes")
	}
}
