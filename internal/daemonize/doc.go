// Package daemonize lets `ocifs mount` start its daemon without
// starting a second Go program.
//
// A FUSE daemon outlives the command that mounts it: like sshfs and
// squashfuse, `ocifs mount` returns to the shell once the mount is
// ready and leaves a daemon serving it. C tools fork (libfuse's
// fuse_daemonize); a Go program cannot, because fork copies only the
// calling thread of a runtime that has several. The usual way out, and
// ocifs's fallback, is to execute the binary again as the daemon and
// wait for it to report. That starts the Go runtime twice, and a Go
// start is not cheap on the VMs ocifs is measured on: about 14 ms of
// the warm mount's time to first byte went to the second one
// (docs/benchmarks.md).
//
// So when ocifs is built with cgo (as `make build` does), a C
// constructor forks before the Go runtime starts, the way runc's
// nsexec enters namespaces before Go can run. It acts only on a
// command line that certainly means a background mount (see
// daemonMount: `mount` without -f, --foreground, --debug or --help);
// for anything else it returns and ocifs runs as usual.
//
//   - The child starts a new session (no terminal, no job-control
//     signals), puts stdin and stdout on /dev/null, keeps stderr (the
//     user's terminal, so its messages need no relay) and goes on into
//     Go. ReadyFD tells it that it is the daemon and which fd reaches
//     the parent.
//   - The parent never starts Go. It waits on a pipe for the daemon's
//     verdict: "ok" exits 0; any other line is an error it prints as
//     "ocifs: LINE" and exits 1. If the pipe closes without a word,
//     the daemon has exited (having printed its own error, such as a
//     usage error) and the parent exits with its status. SIGINT,
//     SIGTERM and SIGHUP are passed on to the daemon as SIGTERM, after
//     which the parent reports "mount interrupted".
//
// This is the protocol cmd/ocifs's re-executed daemon speaks too; the
// re-execution remains for builds without cgo, for --debug with
// --log-file, and for `ocifs bundle`, whose command does Go work
// before it mounts.
package daemonize
