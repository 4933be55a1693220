package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/testenv"
)

// requireRoot skips a test that mounts, unless CI=true: there it must
// run.
func requireRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "bind and overlay mounts")
}

// bindMounter stands in for the FUSE mount: a bind mount of src.
type bindMounter struct {
	src  string
	fail error // Mount fails with it
}

func (b *bindMounter) Mount(_ context.Context, dir string) error {
	if b.fail != nil {
		return b.fail
	}
	return unix.Mount(b.src, dir, "", unix.MS_BIND, "")
}

func (b *bindMounter) Unmount(dir string) error { return unix.Unmount(dir, 0) }

// newImageDir is the bind mount's source: a tiny "image".
func newImageDir(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("from the image\n"), 0o644); err != nil {
		t.Fatalf("write fixture: %v", err)
	}
	return src
}

// cleanupMounts unmounts anything a failed test left below dir.
func cleanupMounts(t *testing.T, dir string) {
	t.Cleanup(func() {
		left, err := mountsUnder(dir)
		if err != nil {
			t.Errorf("mountsUnder(%q): %v", dir, err)
			return
		}
		for i := len(left) - 1; i >= 0; i-- {
			t.Errorf("left mounted: %s", left[i])
			unix.Unmount(left[i], unix.MNT_DETACH)
		}
	})
}

// assertNoMounts fails if anything is mounted at or below dir.
func assertNoMounts(t *testing.T, dir string) {
	t.Helper()
	left, err := mountsUnder(dir)
	if err != nil {
		t.Fatalf("mountsUnder(%q): %v", dir, err)
	}
	if len(left) > 0 {
		t.Errorf("mounted below %q: %q", dir, left)
	}
}

func testPlan(t *testing.T, dir string, exists, writable bool) plan {
	t.Helper()
	return plan{
		dir:    dir,
		exists: exists,
		marker: newMarker("layout:tag", CreateOptions{Writable: writable}),
		config: []byte("{}\n"),
	}
}

func TestCreateRemove(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name     string
		exists   bool
		writable bool
	}{
		{"new dir read-only", false, false},
		{"empty dir read-only", true, false},
		{"new dir writable", false, true},
		{"empty dir writable", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatalf("EvalSymlinks: %v", err)
			}
			cleanupMounts(t, parent)
			dir := filepath.Join(parent, "b")
			if tc.exists {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatalf("mkdir: %v", err)
				}
			}
			src := newImageDir(t)
			mounter := &bindMounter{src: src}
			if err := create(context.Background(), testPlan(t, dir, tc.exists, tc.writable), CreateOptions{Mounter: mounter}); err != nil {
				t.Fatalf("create: %v", err)
			}

			got, err := os.ReadFile(filepath.Join(dir, RootfsDir, "hello"))
			if err != nil || string(got) != "from the image\n" {
				t.Errorf("read rootfs/hello = %q, %v; want the image's file", got, err)
			}
			if got, err := os.ReadFile(filepath.Join(dir, ConfigName)); err != nil || string(got) != "{}\n" {
				t.Errorf("read %s = %q, %v; want %q", ConfigName, got, err, "{}\n")
			}
			m, err := readMarker(dir)
			if err != nil {
				t.Fatalf("readMarker: %v", err)
			}
			if m.CreatedDir == tc.exists || m.Writable != tc.writable || m.Ref != "layout:tag" {
				t.Errorf("marker = %+v, want createdDir %v, writable %v", m, !tc.exists, tc.writable)
			}

			// A write goes to the upper dir, never to the image.
			err = os.WriteFile(filepath.Join(dir, RootfsDir, "new"), []byte("x"), 0o644)
			if tc.writable {
				if err != nil {
					t.Errorf("write through the overlay: %v", err)
				}
				if _, err := os.Stat(filepath.Join(dir, upperDir, "new")); err != nil {
					t.Errorf("written file not in the upper dir: %v", err)
				}
			}
			// The bind mount is writable (unlike the FUSE one), so
			// it shows whether a write leaked into the image.
			if _, err := os.Stat(filepath.Join(src, "new")); tc.writable && err == nil {
				t.Errorf("a write through the overlay reached the image")
			}
			os.Remove(filepath.Join(src, "new"))

			if err := Remove(dir, RemoveOptions{Mounter: mounter}); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			assertNoMounts(t, parent)
			entries, err := os.ReadDir(dir)
			switch {
			case tc.exists && (err != nil || len(entries) != 0):
				t.Errorf("after Remove, dir has %v, %v; want it empty", entries, err)
			case !tc.exists && !errors.Is(err, os.ErrNotExist):
				t.Errorf("after Remove, dir has %v, %v; want it gone", entries, err)
			}
			if got, err := os.ReadFile(filepath.Join(src, "hello")); err != nil || string(got) != "from the image\n" {
				t.Errorf("image file after Remove = %q, %v", got, err)
			}
		})
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	requireRoot(t)
	mountErr := errors.New("mount failed")
	for _, tc := range []struct {
		name     string
		dirName  string
		exists   bool
		writable bool
		fail     error
		want     error
	}{
		{"mount fails new dir", "b", false, false, mountErr, mountErr},
		{"mount fails empty dir", "b", true, false, mountErr, mountErr},
		{"mount fails writable", "b", false, true, mountErr, mountErr},
		// The lower mount is up when the overlay is refused: it must
		// be unmounted again.
		{"overlay fails after mount", "b,c", false, true, nil, ErrOverlayPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatalf("EvalSymlinks: %v", err)
			}
			cleanupMounts(t, parent)
			dir := filepath.Join(parent, tc.dirName)
			if tc.exists {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatalf("mkdir: %v", err)
				}
			}
			mounter := &bindMounter{src: newImageDir(t), fail: tc.fail}
			err = create(context.Background(), testPlan(t, dir, tc.exists, tc.writable), CreateOptions{Mounter: mounter})
			if !errors.Is(err, tc.want) {
				t.Fatalf("create error = %v, want %v", err, tc.want)
			}
			assertNoMounts(t, parent)
			entries, err := os.ReadDir(dir)
			switch {
			case tc.exists && (err != nil || len(entries) != 0):
				t.Errorf("after failure, dir has %v, %v; want it empty", entries, err)
			case !tc.exists && !errors.Is(err, os.ErrNotExist):
				t.Errorf("after failure, dir has %v, %v; want it gone", entries, err)
			}
		})
	}
}

func TestCreateTwiceFails(t *testing.T) {
	requireRoot(t)
	parent, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatalf("EvalSymlinks: %v", err)
	}
	cleanupMounts(t, parent)
	dir := filepath.Join(parent, "b")
	mounter := &bindMounter{src: newImageDir(t)}
	if err := create(context.Background(), testPlan(t, dir, false, false), CreateOptions{Mounter: mounter}); err != nil {
		t.Fatalf("create: %v", err)
	}
	// As if a second Create had checked the directory just before
	// the first one filled it.
	if err := create(context.Background(), testPlan(t, dir, true, false), CreateOptions{Mounter: mounter}); !errors.Is(err, os.ErrExist) {
		t.Errorf("second create error = %v, want %v", err, os.ErrExist)
	}
	// The first bundle is intact.
	if _, err := readMarker(dir); err != nil {
		t.Errorf("readMarker after the second create: %v", err)
	}
	if err := Remove(dir, RemoveOptions{Mounter: mounter}); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	assertNoMounts(t, parent)
}

func TestRemoveKeepsForeignFiles(t *testing.T) {
	requireRoot(t)
	parent, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatalf("EvalSymlinks: %v", err)
	}
	cleanupMounts(t, parent)
	dir := filepath.Join(parent, "b")
	mounter := &bindMounter{src: newImageDir(t)}
	if err := create(context.Background(), testPlan(t, dir, false, false), CreateOptions{Mounter: mounter}); err != nil {
		t.Fatalf("create: %v", err)
	}
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("mine"), 0o644); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := Remove(dir, RemoveOptions{Mounter: mounter}); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	assertNoMounts(t, parent)
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "notes.txt" {
		t.Errorf("after Remove, dir has %v, %v; want only notes.txt", entries, err)
	}
}

func TestRemoveRefuses(t *testing.T) {
	mounter := &bindMounter{}
	for _, tc := range []struct {
		name   string
		marker string // "" writes none
		want   error
	}{
		{"no marker", "", ErrNotBundle},
		{"not json", "{", ErrBadMarker},
		{"other version", `{"version":2}`, ErrBadMarker},
		{"foreign path", `{"version":1,"paths":["../etc"]}`, ErrBadMarker},
		{"foreign mount", `{"version":1,"mounts":[{"path":"/","type":"fuse"}]}`, ErrBadMarker},
		{"unknown mount type", `{"version":1,"mounts":[{"path":"rootfs","type":"nfs"}]}`, ErrBadMarker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keep := filepath.Join(dir, ConfigName)
			if err := os.WriteFile(keep, []byte("{}"), 0o644); err != nil {
				t.Fatalf("write: %v", err)
			}
			if tc.marker != "" {
				if err := os.Mkdir(filepath.Join(dir, StateDir), 0o700); err != nil {
					t.Fatalf("mkdir: %v", err)
				}
				if err := os.WriteFile(filepath.Join(dir, markerPath), []byte(tc.marker), 0o644); err != nil {
					t.Fatalf("write: %v", err)
				}
			}
			if err := Remove(dir, RemoveOptions{Mounter: mounter}); !errors.Is(err, tc.want) {
				t.Errorf("Remove error = %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(keep); err != nil {
				t.Errorf("Remove touched %s: %v", ConfigName, err)
			}
		})
	}
}

func TestCreateRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatalf("write: %v", err)
	}
	// Refused before the image is even opened.
	err := Create(context.Background(), "/nonexistent-layout:tag", dir, CreateOptions{Mounter: &bindMounter{}})
	if !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Create error = %v, want %v", err, ErrNotEmpty)
	}
	file := filepath.Join(dir, "x")
	if err := Create(context.Background(), "/nonexistent-layout:tag", file, CreateOptions{Mounter: &bindMounter{}}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Create on a file error = %v, want not a directory", err)
	}
}

func TestMarkerJSON(t *testing.T) {
	m := newMarker("l:t", CreateOptions{Writable: true})
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var back Marker
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !reflect.DeepEqual(&back, m) {
		t.Errorf("marker round trip = %+v, want %+v", back, *m)
	}
	wantMounts := []MountRecord{{lowerDir, MountFUSE}, {RootfsDir, MountOverlay}}
	if !reflect.DeepEqual(m.Mounts, wantMounts) {
		t.Errorf("writable mounts = %+v, want %+v", m.Mounts, wantMounts)
	}
}
