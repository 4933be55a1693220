package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocifs/ocifs/internal/testenv"
)

// requireTool returns the path of the program name. When it is missing
// the test is skipped with the reason, except under CI=true, where it
// fails: CI installs every tool (.ci/run), so a missing one is a bug.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	testenv.Unavailable(t, "%s not installed (%v); on Debian: apt-get install %s", name, err, name)
	return ""
}

// buildOcifs builds the ocifs binary as `make build` makes it (static,
// with cgo, so that the mount daemon is forked before Go starts) into a
// temporary directory of t, and returns its path.
func buildOcifs(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ocifs")
	if out, err := exec.Command("make", "-s", "-C", "..", "build", "BIN="+bin).CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	return bin
}

// buildOcifsNoCgo builds ocifs without cgo, as `go install` may: its
// mount daemon is the binary executed again.
func buildOcifsNoCgo(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ocifs")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/ocifs/ocifs/cmd/ocifs")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ocifs: %v\n%s", err, out)
	}
	return bin
}

// run runs name with args and returns its standard output; the test
// fails with the standard error if the command fails.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	stdout, stderr, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// runErr runs name with args and returns what it wrote and how it
// exited.
func runErr(name string, args ...string) (stdout, stderr []byte, err error) {
	var o, e bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}
