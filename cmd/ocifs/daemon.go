package main

// Daemonizing `ocifs mount`, the way sshfs and squashfuse behave: the
// command returns once the mount is ready, or fails with the reason and
// leaves nothing behind.
//
// Go cannot fork. A build with cgo forks in C before the Go runtime
// starts (internal/daemonize); this file is the other way, for builds
// without cgo, for --debug with --log-file, and for `ocifs bundle`: the
// parent starts os.Executable() with the same arguments in a new
// session (setsid: no terminal, no job control signals), with stdin and
// stdout on /dev/null, stderr on a pipe the parent relays (so messages
// from the daemon and fusermount3 reach the user until the mount is
// ready), and a second pipe as fd 3, named by the environment variable
// daemonEnv. Either way the daemon (runDaemon) opens the image and
// mounts it, then moves its log and stderr to the daemon's log
// (daemonlog.go) and writes "ok" on its readiness fd, or writes the error there and exits.
// The parent exits 0 on "ok", and otherwise prints the error and exits
// non-zero; a daemon that dies without a word is reported with its
// exit status. A failed daemon has mounted nothing: fs.Mount either
// returns a working mount or none.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/daemonize"
)

// daemonEnv marks the daemon process and names its readiness fd.
const daemonEnv = "OCIFS_MOUNT_DAEMON_FD"

// readyMessage is what the daemon writes once the mount answers.
const readyMessage = "ok"

// errReported is what the daemon returns when the waiting command has
// its error to print: main does not print it again.
var errReported = errors.New("mount daemon: error reported to the mount command")

// daemonReadyFD reports whether this process is the mount daemon,
// forked (internal/daemonize) or re-executed, and the fd on which it
// reports readiness.
func daemonReadyFD() (int, bool) {
	if fd, ok := daemonize.ReadyFD(); ok {
		return fd, true
	}
	v, ok := os.LookupEnv(daemonEnv)
	if !ok {
		return 0, false
	}
	os.Unsetenv(daemonEnv) // not for fusermount3 or anything else we start
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return 0, false
	}
	return fd, true
}

// startDaemon runs in the command the user started: it starts the
// daemon and waits for its verdict.
func startDaemon(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create readiness pipe: %w", err)
	}
	defer readyR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return fmt.Errorf("create stderr pipe: %w", err)
	}
	defer errR.Close()

	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), daemonEnv+"=3") // ExtraFiles[0] is fd 3
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.Stderr = errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close()
	errW.Close()
	if err != nil {
		return fmt.Errorf("start mount daemon: %w", err)
	}

	relayed := make(chan struct{})
	go func() {
		io.Copy(os.Stderr, errR)
		close(relayed)
	}()
	verdict := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(readyR)
		verdict <- strings.TrimSpace(string(b))
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var msg string
	interrupted := false
	select {
	case msg = <-verdict:
	case <-sigs:
		// The daemon is in its own session and did not see the
		// terminal's ^C: pass it on. It stops opening, or unmounts
		// if it got that far, and exits.
		interrupted = true
		cmd.Process.Signal(syscall.SIGTERM)
		msg = <-verdict
	}
	if msg == readyMessage && !interrupted {
		<-relayed // the daemon has let go of the pipe: all its messages are out
		return cmd.Process.Release()
	}
	state, _ := cmd.Process.Wait()
	<-relayed
	switch {
	case interrupted:
		return errors.New("mount interrupted")
	case msg != "" && msg != readyMessage:
		return errors.New(msg)
	default:
		return fmt.Errorf("mount daemon exited before the mount was ready (%v)", state)
	}
}

// runDaemon is the daemon: it mounts, reports on fd readyFD and serves.
func runDaemon(ctx context.Context, cfg mountConfig, f mountFlags, readyFD int) error {
	ready := os.NewFile(uintptr(readyFD), "ready")
	unix.CloseOnExec(readyFD)
	reported := false
	report := func(msg string) {
		fmt.Fprintln(ready, msg)
		ready.Close()
		reported = true
	}

	// fail reports err to the waiting command, which prints it; after
	// the mount was ready, main logs it instead.
	fail := func(err error) error {
		if reported {
			return err
		}
		report(err.Error())
		return errReported
	}

	// A forked daemon is the first to look: its parent only waits.
	if err := checkMountPoint(cfg.dir); err != nil {
		return fail(err)
	}
	if err := checkFUSE(); err != nil {
		return fail(err)
	}
	// Before the mount is ready, records go to fd 2, the user's
	// terminal (or the pipe to it); after it, to the daemon's log,
	// and fd 2 to the log file (see daemonlog.go).
	dl, err := openDaemonLog(f.logFile, f.syslog)
	if err != nil {
		return fail(err)
	}
	defer dl.Close()
	level := slog.LevelInfo
	if f.debug {
		level = slog.LevelDebug
	}
	logger, log := newDaemonLogger(fileDest{os.Stderr}, level)

	err = serve(ctx, cfg, log, func() {
		if dl.chosen {
			// Once, so that a user who meets EIO later knows
			// where to look.
			fmt.Fprintf(os.Stderr, "ocifs: logging to %s\n", dl.where)
		}
		logger.switchTo(dl.dest)
		unix.Dup2(dl.stderrFd(), 2)
		// The daemon must not keep the caller's working
		// directory busy; the image is open by now.
		if err := os.Chdir("/"); err != nil {
			log.Warn("chdir /", "err", err)
		}
		report(readyMessage)
		log.Info("mounted", "ref", cfg.ref, "dir", cfg.dir, "pid", os.Getpid())
	})
	if err != nil {
		return fail(err)
	}
	return nil
}
