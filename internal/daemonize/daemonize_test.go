package daemonize

import (
	"testing"

	"github.com/ocifs/ocifs/internal/testenv"
)

// TestDaemonMount: the constructor forks only for a mount that goes to
// the background; everything it cannot rule out is left to Go.
func TestDaemonMount(t *testing.T) {
	if !Forks {
		testenv.Unavailable(t, "built without cgo: ocifs re-executes itself as its daemon (make build uses cgo)")
	}
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"ocifs", "mount", "./l:v1", "/mnt"}, true},
		{[]string{"ocifs", "mount", "--cache-dir", "/c", "--allow-other", "./l:v1", "/mnt"}, true},
		{[]string{"ocifs", "mount", "-o", "ro,nodev", "--log-file", "/l", "./l", "/mnt"}, true},
		{[]string{"ocifs", "mount", "-o", "fsname=h", "./l", "/mnt"}, true},    // the value is not a flag
		{[]string{"ocifs", "mount", "-ohard", "./l", "/mnt"}, true},            // nor here
		{[]string{"ocifs", "mount", "./l", "--", "-f"}, true},                  // an operand
		{[]string{"ocifs", "mount", "./l", "-"}, true},                         // an operand
		{[]string{"ocifs", "mount", "-f", "./l", "/mnt"}, false},               // foreground
		{[]string{"ocifs", "mount", "--foreground", "./l", "/mnt"}, false},     // foreground
		{[]string{"ocifs", "mount", "--foreground=false", "./l", "/m"}, false}, // left to Go
		{[]string{"ocifs", "mount", "--debug", "--log-file", "/l", "./l", "/m"}, false},
		{[]string{"ocifs", "mount", "-h"}, false},
		{[]string{"ocifs", "mount", "--help"}, false},
		{[]string{"ocifs", "mount", "-xf", "./l", "/mnt"}, false}, // combined short flags
		{[]string{"ocifs", "mount"}, true},                        // usage error, from the daemon
		{[]string{"ocifs", "umount", "/mnt"}, false},
		{[]string{"ocifs", "bundle", "./l", "./b"}, false},
		{[]string{"ocifs", "--help", "mount"}, false},
		{[]string{"ocifs"}, false},
		{[]string{}, false},
	} {
		if got := daemonMount(tc.args); got != tc.want {
			t.Errorf("daemonMount(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

// TestReadyFD: the test binary is no daemon.
func TestReadyFD(t *testing.T) {
	if fd, ok := ReadyFD(); ok {
		t.Errorf("ReadyFD() = %d, true in a test binary", fd)
	}
}
