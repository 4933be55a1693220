package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
	"github.com/ocifs/ocifs/internal/testenv"
)

// requireMountable skips the test unless FUSE mounts are possible for
// root here (root, /dev/fuse openable); with CI=true it fails instead.
func requireMountable(t *testing.T) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "not root: these tests compare with umoci raw unpack, which needs root to keep owners, devices and xattrs"
	} else if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		reason = fmt.Sprintf("cannot open /dev/fuse: %v", err)
	} else {
		f.Close()
	}
	if reason == "" {
		return
	}
	testenv.Unavailable(t, "real mounts impossible: %s", reason)
}

// ocifsMount mounts ref on a new directory with `ocifs mount` (daemon
// mode) and unmounts it with `ocifs umount` when the test ends.
func ocifsMount(t *testing.T, bin, ref string, args ...string) string {
	t.Helper()
	mnt := t.TempDir()
	cmd := exec.Command(bin, append(append([]string{"mount"}, args...), ref, mnt)...)
	cmd.Env = append(os.Environ(), "OCIFS_CACHE_DIR="+filepath.Join(t.TempDir(), "cache"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ocifs mount %s %s: %v\n%s", ref, mnt, err, out)
	}
	t.Cleanup(func() { unmountForCleanup(t, bin, mnt) })
	return mnt
}

// unmountForCleanup ends a mount whatever state it is in, so that
// t.TempDir can be removed.
func unmountForCleanup(t *testing.T, bin, mnt string) {
	if !isMountPoint(t, mnt) {
		return
	}
	if out, err := exec.Command(bin, "umount", mnt).CombinedOutput(); err != nil {
		t.Errorf("ocifs umount %s: %v\n%s", mnt, err, out)
		exec.Command(bin, "umount", "--lazy", mnt).Run()
	}
}

// isMountPoint reports whether dir is in /proc/self/mountinfo, and
// with which type and source.
func isMountPoint(t *testing.T, dir string) bool {
	_, _, ok := mountOf(t, dir)
	return ok
}

func mountOf(t *testing.T, dir string) (fstype, source string, ok bool) {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) == 0 {
		return "", "", false
	}
	return mounts[0].FSType, mounts[0].Source, true
}

// startWait starts cmd and returns a function that waits up to d for
// it to exit and returns cmd.Wait's error; if cmd is still running
// then, it is killed and the test fails with msg.
func startWait(t *testing.T, cmd *exec.Cmd) func(d time.Duration, msg string) error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return func(d time.Duration, msg string) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(d):
			cmd.Process.Kill()
			t.Fatal(msg)
			return nil
		}
	}
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// fileState is everything compared about one path.
type fileState struct {
	typ      iofs.FileMode // type bits only
	perm     uint32        // st_mode & 07777
	uid, gid uint32
	size     int64 // regular files and symlinks
	sha256   string
	target   string // symlinks
	rdev     uint64
	mtime    time.Time
	ino      uint64
	nlink    uint64
	xattrs   map[string]string
}

// snapshot walks root and records every path's state, relative to
// root ("." is the root itself).
func snapshot(t *testing.T, root string) map[string]fileState {
	t.Helper()
	states := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fileState{
			typ:   iofs.FileMode(0),
			perm:  st.Mode & 0o7777,
			uid:   st.Uid,
			gid:   st.Gid,
			rdev:  st.Rdev,
			mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
			ino:   st.Ino,
			nlink: st.Nlink,
		}
		s.typ = d.Type()
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			s.size = st.Size
			s.sha256 = hashFile(t, p)
		case unix.S_IFLNK:
			s.size = st.Size
			s.target, err = os.Readlink(p)
			if err != nil {
				return err
			}
		}
		s.xattrs = readXattrs(t, p)
		states[rel] = s
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return states
}

func hashFile(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// readXattrs lists p's xattrs; a filesystem without xattr support has
// none.
func readXattrs(t *testing.T, p string) map[string]string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.EOPNOTSUPP) || n == 0 {
		return nil
	}
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	xs := map[string]string{}
	for name := range strings.SplitSeq(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("lgetxattr %s %s: %v", p, name, err)
		}
		xs[name] = string(v[:m])
	}
	return xs
}

// hardlinkGroups returns the sets of paths that share an inode (only
// non-directories with more than one name), as sorted, joined strings.
func hardlinkGroups(states map[string]fileState) []string {
	byIno := map[uint64][]string{}
	for p, s := range states {
		if s.typ != iofs.ModeDir && s.nlink > 1 {
			byIno[s.ino] = append(byIno[s.ino], p)
		}
	}
	var groups []string
	for _, ps := range byIno {
		sort.Strings(ps)
		groups = append(groups, strings.Join(ps, " = "))
	}
	sort.Strings(groups)
	return groups
}

// writeRawLayout writes a one-image layout whose layers are the given
// uncompressed tar streams, each compressed with c.
func writeRawLayout(t *testing.T, dir, tag string, c tartest.Compression, tars ...[]byte) {
	t.Helper()
	mediaType := map[tartest.Compression]string{
		tartest.Plain: ocispec.MediaTypeImageLayer,
		tartest.Gzip:  ocispec.MediaTypeImageLayerGzip,
		tartest.Zstd:  ocispec.MediaTypeImageLayerZstd,
	}[c]
	imagetest.WriteLayout(t, dir) // oci-layout and blobs/
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, raw := range tars {
		layers = append(layers, imagetest.WriteBlob(t, dir, mediaType, tartest.Compress(raw, c)))
		diffIDs = append(diffIDs, digest.FromBytes(raw))
	}
	p := imagetest.HostPlatform()
	config := imagetest.WriteJSONBlob(t, dir, ocispec.MediaTypeImageConfig, ocispec.Image{
		Platform: p,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	manifest := imagetest.WriteJSONBlob(t, dir, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    layers,
	})
	manifest.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	imagetest.WriteIndexJSON(t, dir, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifest},
	})
}

// gnuTarLayers makes two tar streams with GNU tar: sparse files in the
// PAX 1.0 sparse format (--sparse --format=posix; Debian's umoci 0.4.7
// cannot unpack the old GNU 'S' entries), and long names in the GNU
// format (././@LongLink entries).
func gnuTarLayers(t *testing.T) [][]byte {
	t.Helper()
	gnutar := requireTool(t, "tar")
	mk := func(src, name string, size int64, chunks map[int64]string) {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		for off, s := range chunks {
			if _, err := f.WriteAt([]byte(s), off); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	tarOf := func(src string, args ...string) []byte {
		out := filepath.Join(t.TempDir(), "layer.tar")
		args = append(args, "--numeric-owner", "--owner=0", "--group=0",
			"--mtime=@"+fmt.Sprint(tartest.Epoch.Unix()), "-cf", out, "-C", src, "sparse", "gnu")
		run(t, gnutar, args...)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	sparse := t.TempDir()
	mk(sparse, "sparse/holes", 8<<20, map[int64]string{0: "head", 3 << 20: strings.Repeat("middle", 1000), 8<<20 - 4: "tail"})
	mk(sparse, "sparse/all-hole", 1<<20, nil)
	os.Mkdir(filepath.Join(sparse, "gnu"), 0o755)
	long := t.TempDir()
	os.Mkdir(filepath.Join(long, "sparse"), 0o755)
	mk(long, "gnu/"+strings.Repeat("long-directory-", 10)+"/"+strings.Repeat("n", 200), 100, map[int64]string{0: "long"})
	symlinkTarget := strings.Repeat("target-", 30)
	if err := os.Symlink(symlinkTarget, filepath.Join(long, "gnu", "long-link")); err != nil {
		t.Fatal(err)
	}
	return [][]byte{
		tarOf(sparse, "--sparse", "--format=posix"),
		tarOf(long, "--format=gnu"),
	}
}

// typeName names a state's type for messages.
func typeName(s fileState) string {
	switch {
	case s.typ == 0:
		return "file"
	case s.typ&iofs.ModeDir != 0:
		return "dir"
	case s.typ&iofs.ModeSymlink != 0:
		return "symlink"
	case s.typ&iofs.ModeCharDevice != 0:
		return "chardev"
	case s.typ&iofs.ModeDevice != 0:
		return "blockdev"
	case s.typ&iofs.ModeNamedPipe != 0:
		return "fifo"
	}
	return s.typ.String()
}
