package cachefile

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatalf("setup: %v", err)
	}
	vectors := []struct {
		name    string
		path    string
		writes  []string // written in turn; the last must be what is read back
		wantErr bool
	}{
		{"new file in new directories", filepath.Join(dir, "a", "b", "c"), []string{"one"}, false},
		{"replace", filepath.Join(dir, "r"), []string{"old contents", "new"}, false},
		{"empty", filepath.Join(dir, "e"), []string{""}, false},
		{"directory is a file", filepath.Join(notDir, "x"), []string{"x"}, true},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			for _, w := range tc.writes {
				if err = WriteAtomic(tc.path, []byte(w)); err != nil {
					break
				}
			}
			if tc.wantErr {
				if err == nil {
					t.Fatalf("WriteAtomic(%q) = nil, want an error", tc.path)
				}
				return
			}
			if err != nil {
				t.Fatalf("WriteAtomic(%q) = %v", tc.path, err)
			}
			got, err := os.ReadFile(tc.path)
			if want := tc.writes[len(tc.writes)-1]; err != nil || string(got) != want {
				t.Errorf("ReadFile(%q) = %q, %v, want %q", tc.path, got, err, want)
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(tc.path), "*.tmp-*"))
			if len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

func TestLock(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("Lock is a no-op without flock")
	}
	p := filepath.Join(t.TempDir(), "sub", "x.lock")
	unlock, err := Lock(context.Background(), p)
	if err != nil {
		t.Fatalf("Lock(%q) = %v", p, err)
	}

	t.Run("cancelled while held", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*lockPoll)
		defer cancel()
		if u, err := Lock(ctx, p); !errors.Is(err, context.DeadlineExceeded) {
			if u != nil {
				u()
			}
			t.Fatalf("Lock(%q) while held = %v, want context.DeadlineExceeded", p, err)
		}
	})

	t.Run("waits for unlock", func(t *testing.T) {
		got := make(chan error, 1)
		go func() {
			u, err := Lock(context.Background(), p)
			if err == nil {
				u()
			}
			got <- err
		}()
		select {
		case err := <-got:
			t.Fatalf("Lock(%q) while held returned %v, want it to wait", p, err)
		case <-time.After(2 * lockPoll):
		}
		unlock()
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("Lock(%q) after unlock = %v", p, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Lock(%q) still waiting after unlock", p)
		}
	})
}

// TestMap covers Map, populated or not.
func TestMap(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := WriteAtomic(p, []byte(s)); err != nil {
			t.Fatalf("setup: %v", err)
		}
		return p
	}
	big := strings.Repeat("0123456789abcdef", 100000)
	vectors := []struct {
		name    string
		path    string
		want    string
		wantErr bool
		errIs   error // when set, the error must wrap it
	}{
		{"small", write("small", "hello"), "hello", false, nil},
		{"several pages", write("big", big), big, false, nil},
		{"empty", write("empty", ""), "", false, nil},
		{"missing", filepath.Join(dir, "missing"), "", true, fs.ErrNotExist},
		{"directory", dir, "", true, nil},
	}
	for _, load := range []struct {
		name string
		opts MapOptions
	}{{"Map", MapOptions{}}, {"Map populated", MapOptions{Populate: true}}} {
		for _, tc := range vectors {
			t.Run(load.name+"/"+tc.name, func(t *testing.T) {
				m, err := Map(tc.path, load.opts)
				if tc.wantErr {
					if err == nil || (tc.errIs != nil && !errors.Is(err, tc.errIs)) {
						t.Fatalf("%s(%q) = %v, want an error (wrapping %v)", load.name, tc.path, err, tc.errIs)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s(%q) = %v", load.name, tc.path, err)
				}
				if got := string(m.Bytes()); got != tc.want {
					t.Errorf("%s(%q).Bytes() = %d bytes, want %d", load.name, tc.path, len(got), len(tc.want))
				}
				// Release only drops residency: the bytes read
				// back.
				m.Release()
				if got := string(m.Bytes()); got != tc.want {
					t.Errorf("after Release, %s(%q).Bytes() = %d bytes differing from the file", load.name, tc.path, len(got))
				}
				if err := m.Close(); err != nil {
					t.Errorf("Close = %v", err)
				}
				if err := m.Close(); err != nil {
					t.Errorf("second Close = %v", err)
				}
			})
		}
	}
}

// TestMapSurvivesReplace: WriteAtomic renames over the mapped file; the
// mapping keeps the old contents, which is why cache files are never
// written in place.
func TestMapSurvivesReplace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	old := bytes.Repeat([]byte("old!"), 3000)
	if err := WriteAtomic(p, old); err != nil {
		t.Fatalf("setup: %v", err)
	}
	m, err := Map(p, MapOptions{})
	if err != nil {
		t.Fatalf("Map(%q) = %v", p, err)
	}
	defer m.Close()
	if err := WriteAtomic(p, []byte("new")); err != nil {
		t.Fatalf("WriteAtomic: %v", err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if !bytes.Equal(m.Bytes(), old) {
		t.Errorf("mapping changed after the file was replaced and removed")
	}
}

// TestCatchFault truncates a mapped file in place, as a careless
// process could: reading past the new end must be an error wrapping
// ErrFault, not a crash.
func TestCatchFault(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("Map copies the file without mmap")
	}
	p := filepath.Join(t.TempDir(), "f")
	if err := WriteAtomic(p, bytes.Repeat([]byte{1}, 64<<10)); err != nil {
		t.Fatalf("setup: %v", err)
	}
	m, err := Map(p, MapOptions{})
	if err != nil {
		t.Fatalf("Map(%q) = %v", p, err)
	}
	defer m.Close()
	if err := os.Truncate(p, 0); err != nil {
		t.Fatalf("Truncate: %v", err)
	}
	var sum int
	err = CatchFault(func() error {
		for _, c := range m.Bytes()[32<<10:] {
			sum += int(c)
		}
		return nil
	})
	if !errors.Is(err, ErrFault) {
		t.Fatalf("CatchFault(read truncated mapping) = %v (sum %d), want ErrFault", err, sum)
	}

	t.Run("other panics propagate", func(t *testing.T) {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic %q", r, "boom")
			}
		}()
		CatchFault(func() error { panic("boom") })
		t.Errorf("CatchFault returned after a panic")
	})

	t.Run("errors pass through", func(t *testing.T) {
		want := errors.New("x")
		if err := CatchFault(func() error { return want }); err != want {
			t.Errorf("CatchFault = %v, want %v", err, want)
		}
	})
}
