package integration

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/ocifs/ocifs/internal/cachefile"
	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/internal/testenv"
	"github.com/ocifs/ocifs/tarindex"
)

// capNetBindService is a security.capability value as setcap writes it
// (VFS_CAP_REVISION_2, effective, cap_net_bind_service): the kernel
// checks the format when it is read or written.
const capNetBindService = "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// everythingLayer has one of each kind of entry ocifs must serve.
func everythingLayer(t *testing.T) *tartest.Layer {
	pax := tartest.Header(func(h *tar.Header) { h.Format = tar.FormatPAX })
	nsec := tartest.ModTime(time.Unix(1600000000, 123456789))
	long := strings.Repeat("long-directory-name-", 8)
	return (&tartest.Layer{}).
		Dir("bin").
		File("bin/busybox", tartest.RandomData(t, "busybox", 300<<10), tartest.Mode(0o755)).
		Symlink("bin/sh", "busybox").
		Symlink("bin/abs", "/bin/busybox").
		Symlink("dangling", "/nonexistent/target").
		Hardlink("bin/ls", "bin/busybox").
		File("bin/su", []byte("su"), tartest.Mode(0o4755)).
		File("bin/wall", []byte("wall"), tartest.Mode(0o2711), tartest.Owner(0, 5)).
		Dir("usr").Dir("usr/bin").
		Hardlink("usr/bin/busybox", "bin/busybox").
		Dir("tmp", tartest.Mode(0o1777)).
		Dir("etc").
		File("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n")).
		File("etc/shadow", []byte("root:*:19000::::::\n"), tartest.Mode(0)).
		File("etc/nsec", []byte("mtime with nanoseconds\n"), nsec, pax).
		Dir("home").
		Dir("home/user", tartest.Owner(1000, 1000), tartest.Mode(0o700)).
		File("home/user/.profile", []byte("export PS1='$ '\n"), tartest.Owner(1000, 1000), tartest.Mode(0o600)).
		Dir("dev").
		CharDev("dev/null", 1, 3).
		BlockDev("dev/sda", 8, 0).
		Fifo("dev/initctl", tartest.Mode(0o600)).
		Dir("xattr").
		File("xattr/user", []byte("user xattrs"), tartest.Xattr("user.mime_type", "text/plain"), tartest.Xattr("user.comment", "hello")).
		File("xattr/cap", []byte("capable"), tartest.Mode(0o755), tartest.Xattr("security.capability", capNetBindService)).
		File("empty", nil).
		File("zeros", make([]byte, 1<<20)).
		Dir(long).
		File(long+"/"+strings.Repeat("n", 255), []byte("a name of 255 bytes in a long path")).
		File("implicit/parent/file", []byte("no layer lists my parents"))
}

// whiteoutLayers are three layers that delete, hide and replace.
func whiteoutLayers() []*tartest.Layer {
	l1 := (&tartest.Layer{}).
		Dir("a").File("a/keep", []byte("lower keep")).File("a/gone", []byte("deleted above")).
		Dir("a/sub").File("a/sub/deep", []byte("deep")).
		Dir("b").File("b/old1", []byte("hidden by opaque")).Dir("b/olddir").File("b/olddir/x", []byte("x")).
		File("c", []byte("file, then a directory")).
		Dir("d").File("d/inner", []byte("directory, then a file")).
		File("h/target", []byte("hardlinked")).Hardlink("h/link", "h/target")
	l2 := (&tartest.Layer{}).
		Whiteout("a", "gone").
		Opaque("b").File("b/new", []byte("after the opaque marker")).
		Dir("c").File("c/x", []byte("now in a directory")).
		File("d", []byte("now a file")).
		File("a/keep", []byte("upper keep"), tartest.Mode(0o600), tartest.Owner(7, 8))
	l3 := (&tartest.Layer{}).
		Whiteout("a", "sub").
		Dir("a/sub2").File("a/sub2/f", []byte("new dir")).
		Whiteout("h", "link")
	return []*tartest.Layer{l1, l2, l3}
}

func layerSpecs(c tartest.Compression, layers ...*tartest.Layer) []imagetest.LayerSpec {
	specs := make([]imagetest.LayerSpec, len(layers))
	for i, l := range layers {
		specs[i] = imagetest.LayerSpec{Layer: l, Compression: c}
	}
	return specs
}

// TestMountMatchesUmoci mounts generated layouts and compares every
// path with what umoci raw unpack makes of the same layout.
//
// Exceptions to a strict comparison, each for a reason:
//   - Directory sizes are not compared: they are whatever the backing
//     filesystem says (ext4 4096, tmpfs a multiple of entries, ocifs 0).
//   - atime and ctime are not compared: unpacking sets them to now.
//   - Directories that no layer lists (each case names them in
//     implicit: the root, "implicit/parent", ...) are compared without
//     mtime: umoci creates them at unpack time, ocifs reports the epoch
//     (nothing in the image says otherwise).
//   - Inode numbers are compared only as hardlink groups (paths that
//     share an inode), since the numbers belong to each filesystem.
//   - zstd layers: umoci 0.4.7 reads gzip and plain layers only, so a
//     zstd layout is compared with umoci's unpack of the same layers
//     written as gzip (the tar streams are byte-identical).
func TestMountMatchesUmoci(t *testing.T) {
	requireMountable(t)
	umoci := requireTool(t, "umoci")
	bin := buildOcifs(t)

	type layoutCase struct {
		name     string
		write    func(t *testing.T, dir string) // what ocifs mounts
		umoci    func(t *testing.T, dir string) // what umoci unpacks; nil: the same
		implicit []string                       // directories no layer lists
	}
	image := func(c tartest.Compression, layers func() []*tartest.Layer) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			imagetest.WriteLayout(t, dir, imagetest.Image{Tag: "test", Layers: layerSpecs(c, layers()...)})
		}
	}
	var everything func() []*tartest.Layer // set per test: the random data depends on t
	vectors := []layoutCase{
		{name: "everything-gzip", write: image(tartest.Gzip, func() []*tartest.Layer { return everything() }), implicit: []string{".", "implicit", "implicit/parent"}},
		{name: "everything-plain", write: image(tartest.Plain, func() []*tartest.Layer { return everything() }), implicit: []string{".", "implicit", "implicit/parent"}},
		{
			name:     "everything-zstd",
			write:    image(tartest.Zstd, func() []*tartest.Layer { return everything() }),
			umoci:    image(tartest.Gzip, func() []*tartest.Layer { return everything() }),
			implicit: []string{".", "implicit", "implicit/parent"},
		},
		{name: "whiteouts-gzip", write: image(tartest.Gzip, whiteoutLayers), implicit: []string{".", "h"}},
		{name: "whiteouts-mixed", write: func(t *testing.T, dir string) {
			ls := whiteoutLayers()
			imagetest.WriteLayout(t, dir, imagetest.Image{Tag: "test", Layers: []imagetest.LayerSpec{
				{Layer: ls[0], Compression: tartest.Plain}, {Layer: ls[1], Compression: tartest.Gzip}, {Layer: ls[2], Compression: tartest.Plain},
			}})
		}, implicit: []string{".", "h"}},
		{
			name:     "whiteouts-zstd",
			write:    image(tartest.Zstd, whiteoutLayers),
			umoci:    image(tartest.Gzip, whiteoutLayers),
			implicit: []string{".", "h"},
		},
		{name: "gnu-sparse-longnames-gzip", write: func(t *testing.T, dir string) {
			writeRawLayout(t, dir, "test", tartest.Gzip, gnuTarLayers(t)...)
		}},
		{name: "gnu-sparse-longnames-plain", write: func(t *testing.T, dir string) {
			writeRawLayout(t, dir, "test", tartest.Plain, gnuTarLayers(t)...)
		}},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			everything = func() []*tartest.Layer { return []*tartest.Layer{everythingLayer(t)} }
			layout := filepath.Join(t.TempDir(), "layout")
			tc.write(t, layout)
			umociLayout := layout
			if tc.umoci != nil {
				umociLayout = filepath.Join(t.TempDir(), "layout-for-umoci")
				tc.umoci(t, umociLayout)
			}
			unpacked := filepath.Join(t.TempDir(), "rootfs")
			run(t, umoci, "raw", "unpack", "--image", umociLayout+":test", unpacked)
			mnt := ocifsMount(t, bin, layout+":test")

			want, got := snapshot(t, unpacked), snapshot(t, mnt)
			compareTrees(t, got, want, tc.implicit)
		})
	}
}

// compareTrees reports every difference between the mount (got) and the
// unpacked copy (want), except those TestMountMatchesUmoci lists.
func compareTrees(t *testing.T, got, want map[string]fileState, implicit []string) {
	t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: in the mount, not in umoci's unpack", p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		w := want[p]
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: in umoci's unpack, not in the mount", p)
			continue
		}
		diff := func(field string, gv, wv any) {
			t.Errorf("%s: %s = %v in the mount, %v unpacked", p, field, gv, wv)
		}
		if g.typ != w.typ {
			diff("type", typeName(g), typeName(w))
			continue
		}
		if g.perm != w.perm {
			diff("mode", fmt.Sprintf("%#o", g.perm), fmt.Sprintf("%#o", w.perm))
		}
		if g.uid != w.uid || g.gid != w.gid {
			diff("owner", fmt.Sprintf("%d:%d", g.uid, g.gid), fmt.Sprintf("%d:%d", w.uid, w.gid))
		}
		if g.size != w.size {
			diff("size", g.size, w.size)
		}
		if g.sha256 != w.sha256 {
			diff("sha256", g.sha256, w.sha256)
		}
		if g.target != w.target {
			diff("link target", g.target, w.target)
		}
		if g.rdev != w.rdev {
			diff("rdev", g.rdev, w.rdev)
		}
		if g.nlink != w.nlink {
			diff("nlink", g.nlink, w.nlink)
		}
		if !slices.Contains(implicit, p) && !g.mtime.Equal(w.mtime) {
			diff("mtime", g.mtime, w.mtime)
		}
		if fmt.Sprint(g.xattrs) != fmt.Sprint(w.xattrs) {
			diff("xattrs", g.xattrs, w.xattrs)
		}
	}
	if g, w := hardlinkGroups(got), hardlinkGroups(want); !slices.Equal(g, w) {
		t.Errorf("hardlink groups = %q in the mount, %q unpacked", g, w)
	}
}

// TestMountCLI checks what the mount looks like from outside: source
// and type in the mount table, read-only, nodev,nosuid by default, and
// that the daemon goes away with the mount.
func TestMountCLI(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	layout := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Gzip,
		(&tartest.Layer{}).File("f", []byte("x"), tartest.Mode(0o4755)))})
	ref := layout + ":v1"

	mnt := ocifsMount(t, bin, ref)
	fstype, source, ok := mountOf(t, mnt)
	if !ok || fstype != "fuse.ocifs" || source != ref {
		t.Errorf("mount table: type %q source %q (mounted %v), want fuse.ocifs %q", fstype, source, ok, ref)
	}
	opts := mountOptions(t, mnt)
	for _, o := range []string{"ro", "nosuid", "nodev"} {
		if !slices.Contains(opts, o) {
			t.Errorf("mount options %q lack %q", opts, o)
		}
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("y"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("WriteFile on the mount = %v, want EROFS", err)
	}
	run(t, bin, "umount", mnt)
	if isMountPoint(t, mnt) {
		t.Fatalf("%s still mounted after ocifs umount", mnt)
	}

	// --dev --suid (root only) and -o pass-through.
	mnt2 := ocifsMount(t, bin, ref, "--dev", "-o", "suid,noexec")
	opts = mountOptions(t, mnt2)
	if slices.Contains(opts, "nodev") || slices.Contains(opts, "nosuid") || !slices.Contains(opts, "noexec") || !slices.Contains(opts, "ro") {
		t.Errorf("mount options with --dev -o suid,noexec = %q", opts)
	}
}

// mountOptions returns the per-mount options of dir in mountinfo.
func mountOptions(t *testing.T, dir string) []string {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) == 0 {
		t.Fatalf("%s not mounted", dir)
	}
	return strings.Split(mounts[0].Options, ",")
}

// TestMountFailures runs each way mount can fail: a clear message, a
// non-zero exit, no daemon left and nothing mounted.
func TestMountFailures(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	// Without cgo the daemon is re-executed, not forked: the same
	// failures, the same messages.
	bins := map[string]string{"forked": bin, "re-executed": buildOcifsNoCgo(t)}
	layout := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Gzip,
		(&tartest.Layer{}).File("f", []byte("some content to corrupt")))})

	// A layout whose (plain) layer blob no longer matches its digest: one
	// byte of file content changed, so the tar stream still parses.
	corrupt := filepath.Join(t.TempDir(), "corrupt")
	descs := imagetest.WriteLayout(t, corrupt, imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Plain,
		(&tartest.Layer{}).File("f", []byte("some content to corrupt")))})
	m := imagetest.ReadManifest(t, corrupt, descs[0])
	blob := imagetest.BlobPath(corrupt, m.Layers[0].Digest)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("some content"), []byte("SOME content"), 1)
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}

	busy := ocifsMount(t, bin, layout+":v1")
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)

	vectors := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"mount point missing", []string{layout + ":v1", filepath.Join(t.TempDir(), "nope")}, "no such directory"},
		{"mount point is a file", []string{layout + ":v1", file}, "not a directory"},
		{"already mounted", []string{layout + ":v1", busy}, "already a mount point"},
		{"no such tag", []string{layout + ":v2", "MNT"}, `"v2"`},
		{"no layout", []string{filepath.Join(t.TempDir(), "nothing") + ":v1", "MNT"}, "no such file or directory"},
		{"digest mismatch", []string{corrupt + ":v1", "MNT"}, "digest mismatch"},
		{"rw refused", []string{"-o", "rw", layout + ":v1", "MNT"}, "read-only"},
		{"fsname refused", []string{"-o", "fsname=x", layout + ":v1", "MNT"}, "fsname"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			args := slices.Clone(tc.args)
			mnt := t.TempDir()
			for i, a := range args {
				if a == "MNT" {
					args[i] = mnt
				}
			}
			for _, run := range []struct {
				daemon string
				mode   []string
			}{{"forked", nil}, {"re-executed", nil}, {"forked", []string{"-f"}}} {
				mode := run.mode
				cmd := exec.Command(bins[run.daemon], append(append([]string{"mount"}, mode...), args...)...)
				cmd.Env = append(os.Environ(), "OCIFS_CACHE_DIR="+filepath.Join(t.TempDir(), "cache"))
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err = startWait(t, cmd)(30*time.Second, fmt.Sprintf("ocifs mount %v hangs", args))
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					t.Errorf("ocifs mount %s %v (%s daemon): exit %v, want 1", strings.Join(mode, ""), args, run.daemon, err)
				}
				// One message, once.
				if msg := stderr.String(); !strings.Contains(msg, tc.wantErr) || !strings.HasPrefix(msg, "ocifs: ") || strings.Count(msg, "ocifs: ") != 1 {
					t.Errorf("ocifs mount %s %v (%s daemon): stderr %q, want %q in one ocifs: message", strings.Join(mode, ""), args, run.daemon, msg, tc.wantErr)
				}
				if isMountPoint(t, mnt) {
					t.Errorf("ocifs mount %v failed but left %s mounted", args, mnt)
					unmountForCleanup(t, bin, mnt)
				}
			}
			if out, _ := exec.Command("pgrep", "-f", "mount .*"+regexpQuote(mnt)).Output(); len(out) > 0 {
				t.Errorf("a daemon for %s is still running: pids %s", mnt, out)
			}
		})
	}

	// No /dev/fuse: a private mount namespace with an empty /dev.
	if unshare, err := exec.LookPath("unshare"); err == nil {
		for daemon, bin := range bins {
			mnt := t.TempDir()
			_, stderr, err := runErr(unshare, "--mount", "--propagation", "private", "sh", "-c",
				`mount -t tmpfs none /dev && exec "$0" mount "$1" "$2"`, bin, layout+":v1", mnt)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(stderr), "no /dev/fuse") {
				t.Errorf("mount without /dev/fuse (%s daemon) = %v, %q; want exit 1 and \"no /dev/fuse\"", daemon, err, stderr)
			}
		}
	} else {
		t.Logf("no unshare: the missing /dev/fuse case is not tested")
	}

	// umount failures.
	for _, tc := range []struct {
		name, dir, wantErr string
	}{
		{"not mounted", t.TempDir(), "not mounted"},
		{"missing", filepath.Join(t.TempDir(), "nope"), "no such directory"},
		{"not ocifs", "/proc", "not ocifs"},
	} {
		_, stderr, err := runErr(bin, "umount", tc.dir)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(stderr), tc.wantErr) {
			t.Errorf("ocifs umount (%s) = %v, %q; want exit 1 and %q", tc.name, err, stderr, tc.wantErr)
		}
	}
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// TestUnmountWhileOpen: with a file open, umount fails at once (busy),
// --lazy detaches at once, the open file still reads, and the daemon
// exits when it is closed. A killed daemon leaves a dead mount that
// umount clears.
func TestUnmountWhileOpen(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	layout := filepath.Join(t.TempDir(), "layout")
	content := tartest.RandomData(t, "big", 1<<20)
	imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Gzip,
		(&tartest.Layer{}).File("big", content))})
	mnt := ocifsMount(t, bin, layout+":v1")
	pid := daemonPID(t, mnt)

	f, err := os.Open(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	if _, stderr, err := runErr(bin, "umount", mnt); err == nil || !strings.Contains(string(stderr), "busy") {
		t.Errorf("ocifs umount with a file open = %v, %q; want a busy error", err, stderr)
	}
	if _, stderr, err := runErr(bin, "umount", "--lazy", mnt); err != nil {
		t.Fatalf("ocifs umount --lazy: %v\n%s", err, stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("unmounting took %v", d)
	}
	if isMountPoint(t, mnt) {
		t.Errorf("%s still in the mount table after umount --lazy", mnt)
	}
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, 1<<19); err != nil || !bytes.Equal(buf, content[1<<19:1<<19+4096]) {
		t.Errorf("reading the open file after umount --lazy: %v", err)
	}
	f.Close()
	if !waitFor(10*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }) {
		t.Errorf("daemon %d still running 10s after the last file was closed", pid)
	}

	// SIGTERM to a daemon with a file open: it detaches and exits once
	// the file is closed.
	mnt = ocifsMount(t, bin, layout+":v1")
	pid = daemonPID(t, mnt)
	f2, err := os.Open(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if !waitFor(10*time.Second, func() bool { return !isMountPoint(t, mnt) }) {
		t.Errorf("%s still mounted 10s after SIGTERM", mnt)
	}
	f2.Close()
	if !waitFor(10*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }) {
		t.Errorf("daemon %d still running 10s after SIGTERM and the last close", pid)
	}

	// A killed daemon: the mount is dead (ENOTCONN) and umount clears it.
	mnt = ocifsMount(t, bin, layout+":v1")
	pid = daemonPID(t, mnt)
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(5*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })
	if _, err := os.Stat(mnt); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("Stat(dead mount) = %v, want ENOTCONN", err)
	}
	if _, stderr, err := runErr(bin, "mount", layout+":v1", mnt); err == nil || !strings.Contains(string(stderr), "daemon is gone") {
		t.Errorf("mount on a dead mount = %v, %q; want a clear error", err, stderr)
	}
	if _, stderr, err := runErr(bin, "umount", mnt); err != nil {
		t.Errorf("ocifs umount of a dead mount: %v\n%s", err, stderr)
	}
	if isMountPoint(t, mnt) {
		t.Errorf("%s still mounted", mnt)
	}
}

// TestMountInterrupted: ^C while mount waits for its daemon (here, for
// a layer index another process is building) stops the daemon, mounts
// nothing and says so; forked and re-executed daemons alike.
func TestMountInterrupted(t *testing.T) {
	requireMountable(t)
	layout := filepath.Join(t.TempDir(), "layout")
	descs := imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Gzip,
		(&tartest.Layer{}).File("f", []byte("x")))})
	layer := imagetest.ReadManifest(t, layout, descs[0]).Layers[0]
	cacheDir := t.TempDir()
	path, err := (&tarindex.Cache{Dir: cacheDir}).Path(layer)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := cachefile.Lock(t.Context(), path+".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	for daemon, bin := range map[string]string{"forked": buildOcifs(t), "re-executed": buildOcifsNoCgo(t)} {
		mnt := t.TempDir()
		cmd := exec.Command(bin, "mount", "--cache-dir", cacheDir, layout+":v1", mnt)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		wait := startWait(t, cmd)
		// Both processes run once the daemon waits for the lock.
		pattern := "ocifs mount .*" + regexpQuote(mnt) + "$"
		waitFor(10*time.Second, func() bool {
			out, _ := exec.Command("pgrep", "-f", pattern).Output()
			return len(strings.Fields(string(out))) == 2
		})
		time.Sleep(200 * time.Millisecond)
		cmd.Process.Signal(os.Interrupt)
		err := wait(30*time.Second, daemon+" daemon: ocifs mount still running 30s after ^C")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || strings.TrimSpace(stderr.String()) != "ocifs: mount interrupted" {
			t.Errorf("%s daemon: ocifs mount after ^C = %v, %q; want exit 1 and \"ocifs: mount interrupted\"", daemon, err, stderr.String())
		}
		if !waitFor(10*time.Second, func() bool { return exec.Command("pgrep", "-f", pattern).Run() != nil }) {
			t.Errorf("%s daemon: still running 10s after ^C", daemon)
		}
		if isMountPoint(t, mnt) {
			t.Errorf("%s daemon: %s mounted after ^C", daemon, mnt)
			unmountForCleanup(t, bin, mnt)
		}
	}
}

// daemonPID finds the daemon serving mnt.
func daemonPID(t *testing.T, mnt string) int {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", "ocifs mount .*"+regexpQuote(mnt)+"$").Output()
	if err != nil {
		t.Fatalf("find the daemon of %s: %v", mnt, err)
	}
	var pid int
	fmt.Sscan(string(out), &pid)
	return pid
}

// TestMountConcurrentReads reads random files of a real mount from
// many goroutines (and walks it) while checking every byte.
func TestMountConcurrentReads(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	l := &tartest.Layer{}
	want := map[string][]byte{}
	for i := range 100 {
		name := fmt.Sprintf("d%d/f%03d", i%5, i)
		want[name] = tartest.RandomData(t, name, (i*104729)%(512<<10))
	}
	for i := range 5 {
		l.Dir(fmt.Sprintf("d%d", i))
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		l.File(n, want[n])
	}
	layout := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Zstd, l)})
	mnt := ocifsMount(t, bin, layout+":v1")

	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(s string) {
		mu.Lock()
		failures = append(failures, s)
		mu.Unlock()
	}
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 3))
			for range 100 {
				n := names[r.IntN(len(names))]
				data := want[n]
				f, err := os.Open(filepath.Join(mnt, n))
				if err != nil {
					fail(err.Error())
					return
				}
				off := int64(r.IntN(len(data) + 1))
				buf := make([]byte, 1+r.IntN(200<<10))
				k, _ := f.ReadAt(buf, off)
				f.Close()
				if !bytes.Equal(buf[:k], data[off:min(off+int64(len(buf)), int64(len(data)))]) {
					fail("wrong bytes in " + n)
					return
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 10 {
				count := 0
				err := filepath.WalkDir(mnt, func(p string, d iofs.DirEntry, err error) error {
					count++
					return err
				})
				if err != nil || count != 1+5+100 {
					fail(fmt.Sprintf("walk: %d entries, %v", count, err))
					return
				}
			}
		})
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
}

// TestMountUnprivileged mounts as an ordinary user (uid 65534) through
// fusermount3, browses and unmounts.
func TestMountUnprivileged(t *testing.T) {
	requireMountable(t)
	setpriv := requireTool(t, "setpriv")
	requireTool(t, "fusermount3")
	bin := buildOcifs(t)

	// Everything the user needs, owned by the user, in a directory
	// the user can reach.
	home, err := os.MkdirTemp("", "ocifs-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	layout, mnt := filepath.Join(home, "layout"), filepath.Join(home, "mnt")
	imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Gzip,
		(&tartest.Layer{}).Dir("etc").File("etc/shadow", []byte("secret\n"), tartest.Mode(0)).File("hello", []byte("hi\n")))})
	userBin := filepath.Join(home, "ocifs")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(userBin, data, 0o755)
	os.Mkdir(mnt, 0o755)
	if err := filepath.Walk(home, func(p string, _ iofs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 65534, 65534)
	}); err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o755)
	asUser := func(args ...string) ([]byte, []byte, error) {
		return runErr(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups",
			"env", "HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, "cache")}, args...)...)
	}
	// fusermount3 opens /dev/fuse with the caller's rights: Debian's
	// udev makes it 0666, some containers leave it 0600. Then the
	// mount must fail clearly, and nothing more can be tested.
	var st syscall.Stat_t
	if err := syscall.Stat("/dev/fuse", &st); err == nil && st.Mode&0o006 != 0o006 {
		_, stderr, err := asUser(userBin, "mount", layout+":v1", mnt)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(stderr), "/dev/fuse") {
			t.Errorf("mount as uid 65534 without access to /dev/fuse = %v, %q; want exit 1 and a /dev/fuse error", err, stderr)
		}
		msg := fmt.Sprintf("/dev/fuse is mode %#o: other users cannot open it, so no unprivileged mount is possible", st.Mode&0o777)
		testenv.Unavailable(t, "%s", msg)
	}
	if _, stderr, err := asUser(userBin, "mount", layout+":v1", mnt); err != nil {
		t.Fatalf("ocifs mount as uid 65534: %v\n%s", err, stderr)
	}
	t.Cleanup(func() {
		if isMountPoint(t, mnt) {
			asUser(userBin, "umount", "--lazy", mnt)
		}
	})
	if fstype, _, ok := mountOf(t, mnt); !ok || fstype != "fuse.ocifs" {
		t.Fatalf("mount table: %q, mounted %v", fstype, ok)
	}
	if out, stderr, err := asUser("cat", filepath.Join(mnt, "hello"), filepath.Join(mnt, "etc/shadow")); err != nil || string(out) != "hi\nsecret\n" {
		t.Errorf("cat as uid 65534 = %q, %v\n%s", out, err, stderr)
	}
	if _, err := os.Stat(filepath.Join(home, "cache", "ocifs", "index")); err != nil {
		t.Errorf("the index cache is not in the user's XDG_CACHE_HOME: %v", err)
	}
	// Without allow_other nobody else, root included, may enter.
	if _, err := os.ReadFile(filepath.Join(mnt, "hello")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("root reading another user's mount = %v, want EACCES", err)
	}
	if _, stderr, err := asUser(userBin, "mount", "--suid", layout+":v1", filepath.Join(home, "cache")); err == nil || !strings.Contains(string(stderr), "need root") {
		t.Errorf("--suid as uid 65534 = %v, %q; want a clear refusal", err, stderr)
	}
	// No permission: a mount point the user cannot write.
	if _, stderr, err := asUser(userBin, "mount", layout+":v1", t.TempDir()); err == nil || !strings.Contains(string(stderr), "ermission") && !strings.Contains(string(stderr), "no write access") {
		t.Errorf("mount on root's directory as uid 65534 = %v, %q; want a permission error", err, stderr)
	}
	if _, stderr, err := asUser(userBin, "umount", mnt); err != nil {
		t.Errorf("ocifs umount as uid 65534: %v\n%s", err, stderr)
	}
	if isMountPoint(t, mnt) {
		t.Errorf("%s still mounted", mnt)
	}
}
