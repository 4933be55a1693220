package tarindex

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed corpora")

// TestWriteFuzzSeeds regenerates testdata/fuzz when run with
// -update-seeds; otherwise it only checks the seeds are there.
func TestWriteFuzzSeeds(t *testing.T) {
	type seed struct {
		dir, name string
		vals      []any
	}
	var seeds []seed
	if *updateSeeds {
		for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
			raw := randomLayer(rngFor(t), layerSpec{files: 8, maxSize: 4 << 10, sparse: true})
			blob := compress(rngFor(t), raw, c, 2)
			b, err := mustBuild(t, blob, c, BuildOptions{Span: 64 << 10}).MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			seeds = append(seeds, seed{"FuzzDecode", "index-" + c.String(), []any{b}})
			if c != Zstd {
				seeds = append(seeds, seed{"FuzzScan", "layer-" + c.String(), []any{blob, c == Gzip}})
			}
		}
		for _, s := range seeds {
			dir := filepath.Join("testdata", "fuzz", s.dir)
			os.MkdirAll(dir, 0o755)
			body := "go test fuzz v1\n"
			for _, v := range s.vals {
				switch v := v.(type) {
				case []byte:
					body += fmt.Sprintf("[]byte(%q)\n", v)
				case bool:
					body += fmt.Sprintf("bool(%v)\n", v)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, s.name), []byte(body), 0o644); err != nil {
				t.Fatalf("write seed: %v", err)
			}
		}
	}
	for _, d := range []string{"FuzzDecode", "FuzzScan"} {
		if m, _ := filepath.Glob(filepath.Join("testdata", "fuzz", d, "*")); len(m) == 0 {
			t.Errorf("no seeds in testdata/fuzz/%s; run go test -run TestWriteFuzzSeeds -update-seeds", d)
		}
	}
	// Index seeds of another format version would all stop at the
	// version check, and the fuzzer would start from nothing useful.
	m, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecode", "index-*"))
	for _, p := range m {
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read seed: %v", err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(body)), "go test fuzz v1\n[]byte(")
		lit, ok2 := strings.CutSuffix(lit, ")")
		b, err := strconv.Unquote(lit)
		if !ok || !ok2 || err != nil {
			t.Fatalf("seed %s is not one []byte value", p)
		}
		if _, err := Decode([]byte(b)); err != nil {
			t.Errorf("seed %s: %v; run go test -run TestWriteFuzzSeeds -update-seeds", p, err)
		}
	}
}
