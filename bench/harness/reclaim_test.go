package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kdamond writes a fake DAMON sysfs directory for one kdamond.
func kdamond(t *testing.T, root, id, state string, actions ...string) {
	t.Helper()
	files := map[string]string{"state": state}
	ctx := filepath.Join("contexts", "0")
	files[filepath.Join(ctx, "monitoring_attrs", "intervals", "aggr_us")] = "5000000\n"
	for i, a := range actions {
		s := filepath.Join(ctx, "schemes", string(rune('0'+i)))
		files[filepath.Join(s, "action")] = a + "\n"
		files[filepath.Join(s, "access_pattern", "age", "min")] = "12\n"
	}
	for name, body := range files {
		p := filepath.Join(root, id, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPauseReclaim(t *testing.T) {
	root := t.TempDir()
	kdamond(t, root, "0", "on\n", "stat", "pageout") // pauses
	kdamond(t, root, "1", "off\n", "pageout")        // already off
	kdamond(t, root, "2", "on\n", "lru_prio")        // does not reclaim
	kdamond(t, root, "3", "on\n")                    // no scheme
	state := func(id string) string { return readTrim(filepath.Join(root, id, "state")) }

	found := proactiveReclaim(root)
	if len(found) != 1 || found[0].State != filepath.Join(root, "0", "state") {
		t.Fatalf("proactiveReclaim = %+v, want kdamond 0 only", found)
	}
	if want := "DAMON kdamond 0, which pages out memory idle for 1m0s"; found[0].What != want {
		t.Errorf("What = %q, want %q", found[0].What, want)
	}
	paused, resume := pauseReclaim(found)
	if len(paused) != 1 {
		t.Fatalf("paused %d, want 1", len(paused))
	}
	want := map[string]string{"0": "off", "1": "off", "2": "on", "3": "on"}
	for id, w := range want {
		if got := state(id); got != w {
			t.Errorf("paused: kdamond %s state %q, want %q", id, got, w)
		}
	}
	if err := resume(); err != nil {
		t.Fatalf("resume: %v", err)
	}
	want["0"] = "on"
	for id, w := range want {
		if got := state(id); got != w {
			t.Errorf("resumed: kdamond %s state %q, want %q", id, got, w)
		}
	}
}

func TestReportSaysReclaim(t *testing.T) {
	for _, tc := range []struct {
		rc   Reclaim
		want string
	}{
		{Reclaim{}, ""},
		{Reclaim{Found: []string{"DAMON kdamond 0"}, Paused: 1}, "DAMON kdamond 0; paused for the run"},
		{Reclaim{Found: []string{"DAMON kdamond 0"}, Kept: true}, "left running (`-keep-reclaim`)"},
		{Reclaim{Found: []string{"a", "b"}, Paused: 1}, "1 of 2 paused"},
	} {
		md := markdown(&Result{Reclaim: tc.rc}, false)
		got := strings.Contains(md, "**Proactive reclaim:**")
		if got != (tc.want != "") || !strings.Contains(md, tc.want) {
			t.Errorf("%+v: report has %q: %v; want it to say %q", tc.rc, "Proactive reclaim", got, tc.want)
		}
	}
}
