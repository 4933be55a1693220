// Package integration tests the ocifs binary end to end, against image
// layouts written by tools we did not write (umoci, skopeo) and, once
// mounting exists, against real FUSE mounts.
//
// Tests need their tools on PATH. Outside CI a missing tool skips the
// test with the reason; with CI=true it fails it, so that CI cannot
// pass by skipping (see requireTool). Run them with
//
//	go test -race ./integration/
//
// This package has no code of its own outside tests.
package integration
