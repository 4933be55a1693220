package bundle

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/tarindex"
)

// entryContent serves contents by the entry's name in its layer.
type entryContent map[string]string

func (c entryContent) ReadAt(n *overlay.Node, p []byte, off int64) (int, error) {
	s := c[n.Entry.Name]
	if off >= int64(len(s)) {
		return 0, io.EOF
	}
	k := copy(p, s[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func file(name, data string) tarindex.Entry {
	return tarindex.Entry{Name: name, Type: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}
}

func dir(name string) tarindex.Entry {
	return tarindex.Entry{Name: name, Type: tar.TypeDir, Mode: 0o755}
}

func symlink(name, target string) tarindex.Entry {
	return tarindex.Entry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Linkname: target}
}

func TestTreeFiles(t *testing.T) {
	contents := entryContent{
		"etc/passwd":        "root:x:0:0::/root:/bin/sh\n",
		"usr/share/group":   "root:x:0:\n",
		"real/hosts":        "127.0.0.1 localhost\n",
		"etc/empty":         "",
		"lib/real/resolved": "via parent link\n",
	}
	entries := []tarindex.Entry{dir("etc"), dir("usr"), dir("usr/share"), dir("real"), dir("lib"), dir("lib/real")}
	for name, data := range contents {
		entries = append(entries, file(name, data))
	}
	entries = append(entries,
		symlink("etc/group", "../usr/share/group"),
		symlink("etc/hosts", "/real/hosts"),
		// Out of the root, but a chroot keeps it in: /../../real/hosts.
		symlink("etc/escape", "../../../real/hosts"),
		symlink("etc/abs-escape", "/../real/hosts"),
		symlink("etc/chain", "group"),
		symlink("etc/loop", "loop"),
		symlink("etc/dangling", "/nowhere"),
		// "..", after following the symlinked parent: /lib/real/../real/resolved.
		symlink("etc/sub", "/lib/real"),
		symlink("etc/viaparent", "sub/../real/resolved"),
	)
	tree, err := overlay.Merge([]overlay.Layer{{Name: "l0", Entries: entries}}, overlay.Options{})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	files := TreeFiles{Tree: tree, Content: contents}

	vectors := []struct {
		name string
		want string
		err  error
	}{
		{"/etc/passwd", contents["etc/passwd"], nil},
		{"etc/passwd", contents["etc/passwd"], nil},
		{"/etc/group", contents["usr/share/group"], nil},
		{"/etc/chain", contents["usr/share/group"], nil},
		{"/etc/hosts", contents["real/hosts"], nil},
		{"/etc/escape", contents["real/hosts"], nil},
		{"/etc/abs-escape", contents["real/hosts"], nil},
		{"/etc/viaparent", contents["lib/real/resolved"], nil},
		{"/etc/empty", "", nil},
		{"/etc/missing", "", fs.ErrNotExist},
		{"/etc/dangling", "", fs.ErrNotExist},
		{"/etc/passwd/x", "", overlay.ErrNotDir},
		{"/etc", "", ErrNotRegular},
		{"/etc/loop", "", overlay.ErrSymlinkLoop},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := files.ReadFile(tc.name)
			if !errors.Is(err, tc.err) {
				t.Fatalf("ReadFile(%q) error = %v, want %v", tc.name, err, tc.err)
			}
			if err == nil && string(got) != tc.want {
				t.Errorf("ReadFile(%q) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

func TestTreeFilesLimits(t *testing.T) {
	big := file("big", "")
	big.Size = maxFileSize + 1
	short := file("short", "0123456789")
	tree, err := overlay.Merge([]overlay.Layer{{Name: "l0", Entries: []tarindex.Entry{big, short}}}, overlay.Options{})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	// The content has fewer bytes than the entry claims.
	files := TreeFiles{Tree: tree, Content: entryContent{"short": "01234"}}
	if _, err := files.ReadFile("/big"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFile(%q) error = %v, want %v", "/big", err, ErrTooLarge)
	}
	if _, err := files.ReadFile("/short"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadFile(%q) error = %v, want %v", "/short", err, io.ErrUnexpectedEOF)
	}
}

func TestCheckMountPoints(t *testing.T) {
	base := []tarindex.Entry{dir("proc"), dir("dev"), dir("sys"), dir("var"), dir("var/lib"),
		symlink("data", "/var/lib"), file("notdir", "x")}
	tree, err := overlay.Merge([]overlay.Layer{{Name: "l0", Entries: base}}, overlay.Options{})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	files := TreeFiles{Tree: tree, Content: entryContent{}}
	vectors := []struct {
		name    string
		volumes []string
		want    error
	}{
		// /dev/pts, /dev/shm, /dev/mqueue live in the /dev tmpfs and
		// /sys/fs/cgroup in sysfs: the image needs none of them.
		{"standard mounts", nil, nil},
		{"volume", []string{"/var/lib"}, nil},
		{"volume through a symlink", []string{"/data"}, nil},
		{"volume inside a volume", []string{"/var/lib", "/var/lib/x"}, nil},
		{"missing volume", []string{"/srv"}, ErrMissingMountPoint},
		{"volume on a file", []string{"/notdir"}, ErrMissingMountPoint},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			vols := map[string]struct{}{}
			for _, v := range tc.volumes {
				vols[v] = struct{}{}
			}
			img := linuxImage(ocispec.ImageConfig{Cmd: []string{"x"}, Volumes: vols})
			spec, err := RuntimeConfig(img, nil, Options{})
			if err != nil {
				t.Fatalf("RuntimeConfig: %v", err)
			}
			if err := checkMountPoints(spec, files); !errors.Is(err, tc.want) {
				t.Errorf("checkMountPoints(volumes %q) = %v, want %v", tc.volumes, err, tc.want)
			}
		})
	}

	// An image FROM scratch: no /proc, /dev or /sys.
	scratch, err := overlay.Merge([]overlay.Layer{{Name: "l0", Entries: []tarindex.Entry{file("app", "x")}}}, overlay.Options{})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	spec, err := RuntimeConfig(linuxImage(ocispec.ImageConfig{Cmd: []string{"/app"}}), nil, Options{})
	if err != nil {
		t.Fatalf("RuntimeConfig: %v", err)
	}
	err = checkMountPoints(spec, TreeFiles{Tree: scratch, Content: entryContent{}})
	if !errors.Is(err, ErrMissingMountPoint) || !strings.Contains(err.Error(), `"/proc"`) {
		t.Errorf("checkMountPoints(scratch) = %v, want %v for /proc", err, ErrMissingMountPoint)
	}
}
