package main

// Where a detached mount daemon logs. A user who meets EIO under a
// mount must be able to find out why without having thought of
// --log-file before mounting, so the daemon logs where a user of a
// daemon looks, in this order:
//
//   - --log-file PATH: appended to, as it always was (no rotation:
//     the user chose the file and owns its upkeep);
//   - syslog, when something listens on /dev/log (journald does, and
//     so do rsyslog and busybox syslogd), with the tag "ocifs", so
//     `journalctl -t ocifs` finds the records; --syslog=false skips it;
//   - otherwise $XDG_STATE_HOME/ocifs/ocifs.log (the XDG base
//     directory for "actions history, logs"; default
//     ~/.local/state/ocifs), rotated to ocifs.log.1 once it passes
//     maxLogSize, so the two files never hold more than about twice
//     that.
//
// What a Go program writes to fd 2 outside the logger (a panic's
// trace, above all) cannot go through syslog; once the mount is ready
// fd 2 is the log file, and with syslog the state file, so a crash
// leaves its trace there.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// syslogSocket is where the local syslog daemon listens; tests point
// it at a socket of their own.
var syslogSocket = "/dev/log"

// maxLogSize is the size past which the state log file is rotated.
var maxLogSize int64 = 4 << 20

// stateLogName is the log file's name in the state directory.
const stateLogName = "ocifs.log"

// stateDir is $XDG_STATE_HOME/ocifs, or ~/.local/state/ocifs.
func stateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		// The XDG spec says to ignore relative paths.
		return filepath.Join(d, "ocifs"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "ocifs"), nil
}

// logDest is where log records go: each call gets one whole record,
// ending in a newline.
type logDest interface {
	writeRecord(level slog.Level, rec []byte) error
	// stamps reports whether records should carry their time: syslog
	// stamps them itself.
	stamps() bool
	Close() error
}

// daemonLogger is the daemon's logger and the place its records go,
// which changes once: from stderr (the user's terminal, until the
// mount is ready) to the daemon's log.
type daemonLogger struct {
	mu   sync.Mutex // held for each record: formatting, then writing
	buf  bytes.Buffer
	dest logDest
}

func newDaemonLogger(dest logDest, level slog.Level) (*daemonLogger, *slog.Logger) {
	l := &daemonLogger{dest: dest}
	text := slog.NewTextHandler(recordBuffer{l}, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			// Called from within Handle, with l.mu held.
			if len(groups) == 0 && a.Key == slog.TimeKey && !l.dest.stamps() {
				return slog.Attr{}
			}
			return a
		},
	})
	return l, slog.New(&logHandler{l: l, text: text})
}

// switchTo sends every later record to dest.
func (l *daemonLogger) switchTo(dest logDest) {
	l.mu.Lock()
	l.dest = dest
	l.mu.Unlock()
}

// recordBuffer collects what the text handler writes for one record.
type recordBuffer struct{ l *daemonLogger }

func (b recordBuffer) Write(p []byte) (int, error) { return b.l.buf.Write(p) }

// logHandler formats records as slog's text handler does and hands
// each whole record, with its level, to the current destination.
type logHandler struct {
	l    *daemonLogger
	text slog.Handler
}

func (h *logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.text.Enabled(ctx, level)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	h.l.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	return h.l.dest.writeRecord(r.Level, h.l.buf.Bytes())
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{l: h.l, text: h.text.WithAttrs(as)}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{l: h.l, text: h.text.WithGroup(name)}
}

// fileDest appends records to an open file: stderr, or --log-file.
type fileDest struct{ f *os.File }

func (d fileDest) writeRecord(_ slog.Level, rec []byte) error {
	_, err := d.f.Write(rec)
	return err
}

func (d fileDest) stamps() bool { return true }

func (d fileDest) Close() error {
	if d.f == os.Stderr {
		return nil
	}
	return d.f.Close()
}

// rotatingFile appends to path and renames it to path.1 when the next
// record would take it past max bytes, so it holds at most max bytes
// plus one record, and path.1 as much again.
//
// Several daemons may log to the same file at once. Each opens it with
// O_APPEND, so records never overwrite one another. Rotation happens
// under an exclusive flock(2) of path.lock, and only if path is still
// the file this daemon has open and still too big: a daemon whose file
// was rotated away by another only reopens path, so one rotation
// never becomes two and ocifs.log.1 is never lost half-full. Before
// each record a daemon checks that path is still its file and reopens
// it if not, so its records do not go on into path.1 (or, after a
// second rotation, into a file already unlinked). A record written in
// the instant between that check and another daemon's rename lands in
// path.1, among the records of its time.
type rotatingFile struct {
	path string
	max  int64
	f    *os.File
	// stderr makes fd 2 follow the file across rotations.
	stderr bool
}

func openRotatingFile(path string, max int64) (*rotatingFile, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &rotatingFile{path: path, max: max, f: f}, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log file %q: %w", path, err)
	}
	return f, nil
}

func (r *rotatingFile) writeRecord(_ slog.Level, rec []byte) error {
	fi, err := r.f.Stat()
	if err == nil {
		// Another daemon may have rotated the file away: the
		// record belongs in the new one. (Two stats per record:
		// nothing next to a FUSE round trip, and records are rare.)
		if cur, cerr := os.Stat(r.path); cerr != nil || !os.SameFile(cur, fi) {
			if err := r.reopen(); err != nil {
				fmt.Fprintf(os.Stderr, "ocifs: %v\n", err)
			}
			fi, err = r.f.Stat()
		}
	}
	if err == nil && fi.Size()+int64(len(rec)) > r.max && fi.Size() > 0 {
		if err := r.rotate(int64(len(rec))); err != nil {
			// Keep logging to the file we have: a log that
			// grows beats a log that stops.
			fmt.Fprintf(os.Stderr, "ocifs: %v\n", err)
		}
	}
	_, err = r.f.Write(rec)
	return err
}

func (r *rotatingFile) rotate(next int64) error {
	lock, err := os.OpenFile(r.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("rotate log file: %w", err)
	}
	defer lock.Close() // and with it the flock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("rotate log file: lock %q: %w", lock.Name(), err)
	}
	mine, err := r.f.Stat()
	if err != nil {
		return fmt.Errorf("rotate log file: %w", err)
	}
	cur, err := os.Stat(r.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Removed by hand: start a new one.
	case err != nil:
		return fmt.Errorf("rotate log file: %w", err)
	case os.SameFile(cur, mine) && cur.Size()+next > r.max:
		if err := os.Rename(r.path, r.path+".1"); err != nil {
			return fmt.Errorf("rotate log file: %w", err)
		}
	}
	if err := r.reopen(); err != nil {
		return fmt.Errorf("rotate log file: %w", err)
	}
	return nil
}

// reopen opens path afresh, after a rotation.
func (r *rotatingFile) reopen() error {
	f, err := openAppend(r.path)
	if err != nil {
		return err
	}
	r.f.Close()
	r.f = f
	if r.stderr {
		unix.Dup2(int(f.Fd()), 2)
	}
	return nil
}

func (r *rotatingFile) stamps() bool { return true }

func (r *rotatingFile) Close() error { return r.f.Close() }

// syslogDest sends each record as one datagram to the local syslog
// socket, in the format local syslog daemons expect:
// "<PRI>Mmm dd hh:mm:ss ocifs[PID]: MSG". log/syslog cannot be used
// for this: given a socket path it switches to the network format
// (RFC 3339 time and host name before the tag), in which journald no
// longer finds the tag, so `journalctl -t ocifs` would show nothing.
type syslogDest struct {
	path string
	conn net.Conn
}

// syslogTimeout bounds the wait for a syslog daemon to take a record.
var syslogTimeout = time.Second

// syslogTag is the syslog identifier: `journalctl -t ocifs`.
const syslogTag = "ocifs"

// logDaemon is syslog's facility for system daemons (RFC 5424 6.2.1).
const logDaemon = 3 << 3

func dialSyslog(path string) (*syslogDest, error) {
	c, err := net.Dial("unixgram", path)
	if err != nil {
		return nil, fmt.Errorf("connect to syslog: %w", err)
	}
	return &syslogDest{path: path, conn: c}, nil
}

// severity maps slog levels onto syslog's (RFC 5424 6.2.1).
func severity(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // err
	case l >= slog.LevelWarn:
		return 4 // warning
	case l >= slog.LevelInfo:
		return 6 // info
	default:
		return 7 // debug
	}
}

func (d *syslogDest) writeRecord(level slog.Level, rec []byte) error {
	msg := fmt.Appendf(nil, "<%d>%s %s[%d]: %s", logDaemon|severity(level),
		time.Now().Format(time.Stamp), syslogTag, os.Getpid(), bytes.TrimRight(rec, "\n"))
	// A syslog daemon that stops reading must not stall the FUSE
	// requests that log: past the deadline the record is dropped.
	d.conn.SetWriteDeadline(time.Now().Add(syslogTimeout))
	_, err := d.conn.Write(msg)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		// journald or syslogd restarted: its socket is a new one.
		if c, derr := net.Dial("unixgram", d.path); derr == nil {
			d.conn.Close()
			d.conn = c
			c.SetWriteDeadline(time.Now().Add(syslogTimeout))
			_, err = c.Write(msg)
		}
	}
	if err != nil {
		// Nowhere better to say it: fd 2 is the state file.
		fmt.Fprintf(os.Stderr, "ocifs: syslog: %v: %s", err, rec)
	}
	return err
}

func (d *syslogDest) stamps() bool { return false }

func (d *syslogDest) Close() error { return d.conn.Close() }

// daemonLog is where a detached daemon logs, chosen by openDaemonLog.
type daemonLog struct {
	dest logDest
	// stderr is what fd 2 becomes once the mount is ready.
	stderr *os.File
	// where tells the user how to read the log, as "ocifs mount"
	// says it: "journald (journalctl -t ocifs)", a file name, or
	// "nowhere: " and why.
	where string
	// chosen is false when the user named the log file.
	chosen bool
}

// openDaemonLog opens the daemon's log: logFile if given, else syslog
// if useSyslog and a syslog daemon listens, else the state file.
func openDaemonLog(logFile string, useSyslog bool) (*daemonLog, error) {
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log file %q: %w", logFile, err)
		}
		return &daemonLog{dest: fileDest{f}, stderr: f, where: logFile}, nil
	}
	dir, err := stateDir()
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	path := filepath.Join(dir, stateLogName)
	if useSyslog {
		if d, serr := dialSyslog(syslogSocket); serr == nil {
			dl := &daemonLog{dest: d, where: syslogWhere(), chosen: true}
			// Crash traces only: a failure here costs nothing.
			if err == nil {
				dl.stderr, _ = openAppend(path)
			}
			if dl.stderr == nil {
				dl.stderr, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			}
			return dl, nil
		}
	}
	var r *rotatingFile
	if err == nil {
		r, err = openRotatingFile(path, maxLogSize)
	}
	if err != nil {
		// Mounting matters more than its log (and mounted without
		// one before): say so, and mount.
		null, nerr := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if nerr != nil {
			return nil, fmt.Errorf("open the daemon's log: %w", errors.Join(err, nerr))
		}
		return &daemonLog{dest: fileDest{null}, stderr: null, chosen: true,
			where: fmt.Sprintf("nowhere: %v (--log-file FILE names a place)", err)}, nil
	}
	r.stderr = true
	return &daemonLog{dest: r, stderr: r.f, where: path, chosen: true}, nil
}

// stderrFd is the fd that fd 2 becomes once the mount is ready: the
// log file as it is now.
func (d *daemonLog) stderrFd() int {
	if r, ok := d.dest.(*rotatingFile); ok {
		return int(r.f.Fd())
	}
	return int(d.stderr.Fd())
}

// syslogWhere says how to read what went to syslog.
func syslogWhere() string {
	if _, err := os.Stat("/run/systemd/journal/socket"); err == nil {
		return "journald (journalctl -t " + syslogTag + ")"
	}
	return "syslog (tag " + syslogTag + ", at " + syslogSocket + ")"
}

// Close closes the log and what fd 2 was to become.
func (d *daemonLog) Close() error {
	switch dest := d.dest.(type) {
	case fileDest:
		if dest.f == d.stderr {
			return dest.Close()
		}
	case *rotatingFile:
		return dest.Close() // d.stderr is its first file, closed by now
	}
	err := d.dest.Close()
	if d.stderr != nil {
		d.stderr.Close()
	}
	return err
}

var _ io.Closer = (*daemonLog)(nil)
