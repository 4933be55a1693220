package daemonize

// ReadyFD reports whether this process is a mount daemon forked by the
// constructor, and the fd of the pipe on which it reports to the
// waiting command: one line, "ok" once the mount is ready, or the
// error that stopped it. The fd is close-on-exec.
func ReadyFD() (int, bool) {
	fd := readyFD()
	return fd, fd >= 0
}
