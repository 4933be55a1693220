package harness

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	vectors := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, v := range vectors {
		if got := median(v.in); got != v.want {
			t.Errorf("median(%v) = %v, want %v", v.in, got, v.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestUpdateDocKeepsOtherSections(t *testing.T) {
	name := filepath.Join(t.TempDir(), "benchmarks.md")
	top := "# Benchmarks\n\nhand-written top\n\n"
	tail := "\n## tarindex\n\nanother package's section\n"
	if err := os.WriteFile(name, []byte(top+beginMarker+"\nold numbers\n"+endMarker+"\n"+tail), 0o644); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := updateDoc(name, "new numbers\n"); err != nil {
		t.Fatalf("updateDoc: %v", err)
	}
	b, _ := os.ReadFile(name)
	got := string(b)
	want := top + beginMarker + "\nnew numbers\n" + endMarker + "\n" + tail
	if got != want {
		t.Errorf("updateDoc gave\n%s\nwant\n%s", got, want)
	}
	// A file without markers gets the section appended.
	plain := filepath.Join(t.TempDir(), "plain.md")
	if err := os.WriteFile(plain, []byte("# Benchmarks\n\n## overlay\n"), 0o644); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := updateDoc(plain, "numbers\n"); err != nil {
		t.Fatalf("updateDoc: %v", err)
	}
	b, _ = os.ReadFile(plain)
	if !strings.HasPrefix(string(b), "# Benchmarks\n\n## overlay\n\n"+beginMarker) {
		t.Errorf("updateDoc without markers gave\n%s", b)
	}
}

func TestCellText(t *testing.T) {
	base := &Row{Scenario: "s", Name: "base", Column: "time", Unit: "s", Samples: []float64{2, 2, 2}, Baseline: true}
	fast := &Row{Scenario: "s", Name: "fast", Column: "time", Unit: "s", Samples: []float64{0.5, 0.4, 0.6}, Versus: "base"}
	dnf := &Row{Scenario: "s", Name: "slow", Column: "time", Unit: "s", Note: "did not finish in 1m0s"}
	res := &Result{Rows: []*Row{base, fast, dnf}}
	vectors := []struct {
		row  *Row
		want string
	}{
		{fast, "500 ms (400 ms–600 ms) · 0.25×"},
		{base, "2 s (2 s–2 s)"},
		{dnf, "did not finish in 1m0s"},
	}
	for _, v := range vectors {
		if got := cellText(res, v.row); got != v.want {
			t.Errorf("cellText(%s) = %q, want %q", v.row.Name, got, v.want)
		}
	}
}

func TestQuote(t *testing.T) {
	vectors := []struct{ in, want string }{
		{"/work/main/bench/out", "/work/main/bench/out"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
	}
	for _, v := range vectors {
		if got := quote(v.in); got != v.want {
			t.Errorf("quote(%q) = %q, want %q", v.in, got, v.want)
		}
	}
}
