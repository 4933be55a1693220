package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func runOcifs(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	rootCmd.SetArgs(args)
	defer rootCmd.SetArgs(nil)
	if err := rootCmd.Execute(); err != nil {
		t.Fatalf("ocifs %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

func TestCacheDuAndPrune(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{
		"index/v9/sha256/aa":      100,
		"index/v9/sha256/bb":      50,
		"tree/v2/sha256/cc":       30,
		"blobs/v1/sha256/dd/0000": 1000,
		"blobs/v1/sha256/dd/0001": 1000,
		"blobs/v1/sha256/ee/0000": 7,
		"unrelated-user-file":     5,
	}
	for name, n := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	type du struct {
		Kinds []struct {
			Kind  string
			Files int
			Bytes int64
		}
		Bytes int64
	}
	read := func() du {
		var d du
		out := runOcifs(t, "cache", "du", "--json", "--cache-dir", dir)
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("du --json: %v\n%s", err, out)
		}
		return d
	}
	d := read()
	want := []struct {
		files int
		bytes int64
	}{{2, 150}, {1, 30}, {3, 2007}}
	for i, w := range want {
		if k := d.Kinds[i]; k.Files != w.files || k.Bytes != w.bytes {
			t.Errorf("du: %s = %d files, %d bytes; want %d, %d", k.Kind, k.Files, k.Bytes, w.files, w.bytes)
		}
	}
	if d.Bytes != 2187 {
		t.Errorf("du: total %d bytes, want 2187", d.Bytes)
	}

	runOcifs(t, "cache", "prune", "--keep-indexes", "--cache-dir", dir)
	d = read()
	if d.Kinds[0].Files != 2 || d.Kinds[1].Files != 1 || d.Kinds[2].Files != 0 {
		t.Errorf("after prune --keep-indexes: %+v, want indexes and trees kept, ranges gone", d.Kinds)
	}
	runOcifs(t, "cache", "prune", "--keep-indexes=false", "--cache-dir", dir)
	if d = read(); d.Bytes != 0 {
		t.Errorf("after prune: %d bytes left", d.Bytes)
	}
	if _, err := os.Stat(filepath.Join(dir, "unrelated-user-file")); err != nil {
		t.Errorf("prune removed a file that is not ocifs's: %v", err)
	}
}
