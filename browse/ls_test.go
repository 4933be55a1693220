package browse

import (
	"bytes"
	"errors"
	iofs "io/fs"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/tartest"
)

func lsLayer() *tartest.Layer {
	old := tartest.ModTime(time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC))
	return (&tartest.Layer{}).
		Dir("etc").
		File("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n# comment\nalias:x:33:33::/:/bin/false\n")).
		File("etc/group", []byte("root:x:0:\nwww-data:x:33:\n")).
		Dir("bin").
		File("bin/su", []byte("su"), tartest.Mode(0o4755)).
		File("bin/sgid", []byte("x"), tartest.Mode(0o2644), tartest.Owner(33, 1234)).
		Hardlink("bin/su2", "bin/su").
		Symlink("bin/sh", "busybox").
		Dir("tmp", tartest.Mode(0o1777)).
		Dir("tmp2", tartest.Mode(0o1776), old).
		Dir("dev").
		CharDev("dev/null", 1, 3).
		BlockDev("dev/sda", 8, 16).
		Fifo("dev/fifo", tartest.Mode(0o600)).
		Symlink("etclink", "/etc")
}

func TestList(t *testing.T) {
	r := openLayers(t, tartest.Gzip, lsLayer())
	vectors := []struct {
		name, path string
		opts       ListOptions
		want       string
	}{
		{"names", "/", ListOptions{}, "bin\ndev\netc\netclink\ntmp\ntmp2\n"},
		{"long root", "/", ListOptions{Long: true}, "" +
			"drwxr-xr-x 2 root root 0 2023-11-14 22:13 bin\n" +
			"drwxr-xr-x 2 root root 0 2023-11-14 22:13 dev\n" +
			"drwxr-xr-x 2 root root 0 2023-11-14 22:13 etc\n" +
			"lrwxrwxrwx 1 root root 4 2023-11-14 22:13 etclink -> /etc\n" +
			"drwxrwxrwt 2 root root 0 2023-11-14 22:13 tmp\n" +
			"drwxrwxrwT 2 root root 0 2001-02-03 04:05 tmp2\n"},
		{"long bin, named owners", "/bin", ListOptions{Long: true}, "" +
			"-rw-r-Sr-- 1 www  1234 1 2023-11-14 22:13 sgid\n" +
			"lrwxrwxrwx 1 root root 7 2023-11-14 22:13 sh -> busybox\n" +
			"-rwsr-xr-x 2 root root 2 2023-11-14 22:13 su\n" +
			"-rwsr-xr-x 2 root root 2 2023-11-14 22:13 su2\n"},
		{"numeric owners", "/bin/sgid", ListOptions{Long: true, Numeric: true},
			"-rw-r-Sr-- 1 33 1234 1 2023-11-14 22:13 bin/sgid\n"},
		{"devices", "/dev", ListOptions{Long: true, Numeric: true}, "" +
			"prw------- 1 0 0     0 2023-11-14 22:13 fifo\n" +
			"crw-rw-rw- 1 0 0  1, 3 2023-11-14 22:13 null\n" +
			"brw-rw---- 1 0 0 8, 16 2023-11-14 22:13 sda\n"},
		{"symlink argument, long: the link", "/etclink", ListOptions{Long: true, Numeric: true},
			"lrwxrwxrwx 1 0 0 4 2023-11-14 22:13 etclink -> /etc\n"},
		{"symlink argument: followed", "/etclink", ListOptions{}, "group\npasswd\n"},
		{"symlink argument with slash: followed", "/etclink/", ListOptions{Long: true, Numeric: true}, "" +
			"-rw-r--r-- 1 0 0  25 2023-11-14 22:13 group\n" +
			"-rw-r--r-- 1 0 0 101 2023-11-14 22:13 passwd\n"},
		{"recursive", "/", ListOptions{Recursive: true}, "" +
			"/:\nbin\ndev\netc\netclink\ntmp\ntmp2\n" +
			"\n/bin:\nsgid\nsh\nsu\nsu2\n" +
			"\n/dev:\nfifo\nnull\nsda\n" +
			"\n/etc:\ngroup\npasswd\n" +
			"\n/tmp:\n" +
			"\n/tmp2:\n"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := List(&buf, r, tc.path, tc.opts); err != nil {
				t.Fatalf("List(%q) = %v", tc.path, err)
			}
			if buf.String() != tc.want {
				t.Errorf("List(%q, %+v) =\n%s\nwant\n%s", tc.path, tc.opts, buf.String(), tc.want)
			}
		})
	}
	if err := List(&bytes.Buffer{}, r, "/nope", ListOptions{}); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("List(/nope) = %v, want ErrNotExist", err)
	}
}

func TestModeString(t *testing.T) {
	vectors := []struct {
		typ  byte
		mode uint32
		want string
	}{
		{'0', 0o644, "-rw-r--r--"},
		{'0', 0o7777, "-rwsrwsrwt"},
		{'0', 0o7000, "---S--S--T"},
		{'5', 0o755, "drwxr-xr-x"},
		{'2', 0o777, "lrwxrwxrwx"},
		{'3', 0o620, "crw--w----"},
		{'4', 0o660, "brw-rw----"},
		{'6', 0o600, "prw-------"},
	}
	for _, tc := range vectors {
		if got := ModeString(tc.typ, tc.mode); got != tc.want {
			t.Errorf("ModeString(%q, %#o) = %q, want %q", tc.typ, tc.mode, got, tc.want)
		}
	}
}
