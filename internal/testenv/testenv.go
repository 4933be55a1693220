// Package testenv holds the one rule for tests that need something of
// the machine (root, /dev/fuse, umoci, runc): outside CI they skip and
// say why; with CI=true they fail, because there a missing tool is a
// broken machine, not a reason to test less.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips t with the reason, or fails it in CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true: required)", reason)
	}
	t.Skip(reason)
}

// RequireRoot calls Unavailable unless the test runs as root; why says
// what needs root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "not root: %s", why)
	}
}
