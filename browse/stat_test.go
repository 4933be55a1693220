package browse

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/tartest"
)

func TestStat(t *testing.T) {
	nsec := tartest.ModTime(time.Unix(1600000000, 123456789))
	l1 := (&tartest.Layer{}).
		Dir("etc").
		File("etc/hosts", []byte("lower")).
		File("etc/gone", []byte("x")).
		Dir("opt").File("opt/old", []byte("hidden")).
		File("bin/target", []byte("t")).Hardlink("bin/alias", "bin/target")
	l2 := (&tartest.Layer{}).
		File("etc/hosts", []byte("upper hosts"), tartest.Mode(0o640), tartest.Owner(1, 2), nsec,
			tartest.Xattr("user.k", "v"), tartest.Xattr("user.bin", "\xff\x00")).
		Whiteout("etc", "gone").
		Opaque("opt").File("opt/new", []byte("n")).
		CharDev("dev/null", 1, 3).
		Symlink("lnk", "etc/hosts")
	l3 := (&tartest.Layer{}).File("etc/gone", []byte("back"))
	r := openLayers(t, tartest.Gzip, l1, l2, l3)
	d := func(i int) string { return r.Layers[i-1].Descriptor.Digest.String() }

	type ev struct {
		layer      int
		name, kind string
		provides   bool
	}
	vectors := []struct {
		path    string
		check   func(t *testing.T, info *Info)
		history []ev
	}{
		{"/etc/hosts", func(t *testing.T, info *Info) {
			if info.Type != "file" || info.Mode != 0o640 || info.UID != 1 || info.GID != 2 || info.Size != 11 ||
				info.Mtime != 1600000000 || info.MtimeNsec != 123456789 || info.Nlink != 1 || info.ModeString != "-rw-r-----" {
				t.Errorf("Stat(/etc/hosts) = %+v", info)
			}
			if got := fmt.Sprintf("%q", info.Xattrs); got != `[{"user.bin" "" "\xff\x00"} {"user.k" "v" ""}]` {
				t.Errorf("xattrs = %s, want user.bin in base64 and user.k=v", got)
			}
			if info.Layer == nil || info.Layer.Index != 2 || info.Layer.Digest.String() != d(2) || info.Layer.Name != "etc/hosts" {
				t.Errorf("layer = %+v, want 2 %s", info.Layer, d(2))
			}
		}, []ev{{1, "etc/hosts", EventEntry, false}, {2, "etc/hosts", EventEntry, true}}},
		{"/etc/gone", nil, []ev{{1, "etc/gone", EventEntry, false}, {2, "etc/.wh.gone", EventWhiteout, false}, {3, "etc/gone", EventEntry, true}}},
		{"/opt/new", nil, []ev{{2, "opt/.wh..wh..opq", EventOpaque, false}, {2, "opt/new", EventEntry, true}}},
		{"/bin/alias", func(t *testing.T, info *Info) {
			if info.Nlink != 2 || info.Layer.Name != "bin/target" {
				t.Errorf("Stat(/bin/alias) nlink %d layer %+v, want 2 and bin/target", info.Nlink, info.Layer)
			}
		}, []ev{{1, "bin/target", EventEntry, true}, {1, "bin/alias", EventHardlink, false}}},
		{"/bin", func(t *testing.T, info *Info) {
			if info.Layer != nil || info.Type != "dir" || info.Mode != 0o755 {
				t.Errorf("Stat(/bin) = %+v, want an implicit directory", info)
			}
		}, nil},
		{"/dev/null", func(t *testing.T, info *Info) {
			if info.Type != "chardev" || info.Devmajor != 1 || info.Devminor != 3 {
				t.Errorf("Stat(/dev/null) = %+v", info)
			}
		}, []ev{{2, "dev/null", EventEntry, true}}},
		{"/lnk", func(t *testing.T, info *Info) {
			if info.Type != "symlink" || info.Linkname != "etc/hosts" || info.Size != 9 {
				t.Errorf("Stat(/lnk) = %+v", info)
			}
		}, []ev{{2, "lnk", EventEntry, true}}},
		{"/lnk/", func(t *testing.T, info *Info) {
			if info.Path != "/etc/hosts" {
				t.Errorf("Stat(/lnk/).Path = %q, want /etc/hosts", info.Path)
			}
		}, []ev{{1, "etc/hosts", EventEntry, false}, {2, "etc/hosts", EventEntry, true}}},
	}
	for _, tc := range vectors {
		t.Run(tc.path, func(t *testing.T) {
			info, err := Stat(context.Background(), r, tc.path)
			if err != nil {
				t.Fatalf("Stat(%q) = %v", tc.path, err)
			}
			if tc.check != nil {
				tc.check(t, info)
			}
			var got []ev
			for _, e := range info.History {
				if e.Digest.String() != d(e.Index) {
					t.Errorf("event %+v: digest of layer %d is %s", e, e.Index, d(e.Index))
				}
				got = append(got, ev{e.Index, e.Name, e.Kind, e.Provides})
			}
			if !slices.Equal(got, tc.history) {
				t.Errorf("Stat(%q).History = %+v, want %+v", tc.path, got, tc.history)
			}
		})
	}
}
