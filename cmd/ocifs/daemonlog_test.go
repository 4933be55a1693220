package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// useStateDir points $XDG_STATE_HOME at a new directory and returns
// the state log's path.
func useStateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_STATE_HOME", dir)
	return filepath.Join(dir, "ocifs", stateLogName)
}

// setVar sets *p to v for the test.
func setVar[T any](t *testing.T, p *T, v T) {
	old := *p
	*p = v
	t.Cleanup(func() { *p = old })
}

// TestStateLogRotation logs far more than maxLogSize from two daemons
// at once and checks the bound: ocifs.log and ocifs.log.1 each hold at
// most maxLogSize plus one record, every record whole, and the newest
// records are kept.
func TestStateLogRotation(t *testing.T) {
	path := useStateDir(t)
	const limit = 4096
	setVar(t, &maxLogSize, limit)
	const records = 500
	var wg sync.WaitGroup
	var logs []*slog.Logger
	for d := range 2 {
		dl, err := openDaemonLog("", false)
		if err != nil {
			t.Fatalf("openDaemonLog: %v", err)
		}
		defer dl.Close()
		if dl.where != path {
			t.Fatalf("logging to %q, want %q", dl.where, path)
		}
		_, log := newDaemonLogger(dl.dest, slog.LevelInfo)
		logs = append(logs, log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range records {
				log.Error("answering EIO", "daemon", d, "n", i, "err", strings.Repeat("x", 40))
			}
		}()
	}
	wg.Wait()
	for d, log := range logs {
		log.Info("done", "daemon", d)
	}

	var recLen int
	last := map[string]bool{}
	for _, p := range []string{path, path + ".1"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		lines := strings.SplitAfter(string(b), "\n")
		if lines[len(lines)-1] != "" {
			t.Errorf("%s ends in a partial record %q", p, lines[len(lines)-1])
		}
		for _, l := range lines[:len(lines)-1] {
			if !strings.HasPrefix(l, "time=") || !strings.Contains(l, `msg="answering EIO" daemon=`) && !strings.Contains(l, "msg=done daemon=") {
				t.Errorf("%s: broken record %q", p, l)
			}
			recLen = max(recLen, len(l))
			for d := range 2 {
				if strings.HasSuffix(l, fmt.Sprintf("msg=done daemon=%d\n", d)) {
					last[fmt.Sprint(d)] = true
				}
			}
		}
		if int64(len(b)) > limit+int64(recLen) {
			t.Errorf("%s holds %d bytes, want at most %d + one record (%d)", p, len(b), limit, recLen)
		}
	}
	if len(last) != 2 {
		t.Errorf("the last record of each daemon is not kept (found those of %v)", last)
	}
	if _, err := os.Stat(path + ".2"); err == nil {
		t.Errorf("%s.2 exists: only one old file is kept", path)
	}
}

// TestSyslogRecord listens on a socket of its own as the syslog socket
// and receives what the daemon logs: one datagram per record, in the
// local syslog format with tag ocifs and the record's severity, the
// time left to syslog.
func TestSyslogRecord(t *testing.T) {
	useStateDir(t)
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	setVar(t, &syslogSocket, sock)

	dl, err := openDaemonLog("", true)
	if err != nil {
		t.Fatalf("openDaemonLog: %v", err)
	}
	defer dl.Close()
	if !strings.Contains(dl.where, "ocifs") || strings.Contains(dl.where, stateLogName) {
		t.Errorf("logging to %q, want syslog", dl.where)
	}
	_, log := newDaemonLogger(dl.dest, slog.LevelInfo)
	log.Debug("not at info level")
	log.Error("answering EIO", "path", "etc/passwd", "err", "inflate gzip member: truncated stream")
	log.With("ref", "x:v1").Warn("mount busy")

	vectors := []struct{ pri, msg string }{
		{"<27>", `level=ERROR msg="answering EIO" path=etc/passwd err="inflate gzip member: truncated stream"`},
		{"<28>", `level=WARN msg="mount busy" ref=x:v1`},
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for _, want := range vectors {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read syslog socket: %v", err)
		}
		got := string(buf[:n])
		tag := fmt.Sprintf(" ocifs[%d]: ", os.Getpid())
		pri, rest, ok := strings.Cut(got, tag)
		if !ok || !strings.HasPrefix(pri, want.pri) || rest != want.msg {
			t.Errorf("syslog got %q, want %s<time>%s%s", got, want.pri, tag, want.msg)
		}
		if _, err := time.Parse(time.Stamp, strings.TrimPrefix(pri, want.pri)); err != nil {
			t.Errorf("syslog got %q: no local syslog time stamp after the priority: %v", got, err)
		}
	}
}

// TestDaemonLogChoice checks which log the daemon picks.
func TestDaemonLogChoice(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	named := filepath.Join(t.TempDir(), "named.log")
	vectors := []struct {
		name    string
		logFile string
		syslog  bool
		socket  string
		want    string // "syslog", "state", "named" or "nowhere"
		broken  bool   // $XDG_STATE_HOME is a file
	}{
		{"syslog", "", true, sock, "syslog", false},
		{"no syslog socket", "", true, filepath.Join(t.TempDir(), "none"), "state", false},
		{"--syslog=false", "", false, sock, "state", false},
		{"--log-file wins", named, true, sock, "named", false},
		{"syslog, no state dir", "", true, sock, "syslog", true},
		{"no syslog, no state dir", "", false, sock, "nowhere", true},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			state := useStateDir(t)
			if tc.broken {
				file := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(file, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Setenv("XDG_STATE_HOME", file)
			}
			setVar(t, &syslogSocket, tc.socket)
			dl, err := openDaemonLog(tc.logFile, tc.syslog)
			if err != nil {
				t.Fatalf("openDaemonLog: %v", err)
			}
			defer dl.Close()
			_, log := newDaemonLogger(dl.dest, slog.LevelInfo)
			log.Info("hello")
			var got string
			switch d := dl.dest.(type) {
			case *syslogDest:
				got = "syslog"
			case *rotatingFile:
				if d.path == state {
					got = "state"
				}
			case fileDest:
				switch d.f.Name() {
				case named:
					got = "named"
				case os.DevNull:
					if strings.HasPrefix(dl.where, "nowhere: ") && strings.Contains(dl.where, "not a directory") {
						got = "nowhere"
					}
				}
			}
			if got != tc.want {
				t.Errorf("openDaemonLog(%q, %v) logs to %T (%s), want %s", tc.logFile, tc.syslog, dl.dest, dl.where, tc.want)
			}
			if chosen := tc.want != "named"; dl.chosen != chosen {
				t.Errorf("chosen = %v, want %v (mount says where only when it chose)", dl.chosen, chosen)
			}
			if tc.want == "state" || tc.want == "named" {
				b, _ := os.ReadFile(dl.where)
				if !bytes.Contains(b, []byte("msg=hello")) {
					t.Errorf("%s holds %q, want the record", dl.where, b)
				}
			}
		})
	}
}

// TestSyslogStalled: a syslog daemon that stops reading costs each
// record at most syslogTimeout; logging goes on and does not hang.
func TestSyslogStalled(t *testing.T) {
	useStateDir(t)
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // and never read
	setVar(t, &syslogSocket, sock)
	setVar(t, &syslogTimeout, 20*time.Millisecond)
	dl, err := openDaemonLog("", true)
	if err != nil {
		t.Fatalf("openDaemonLog: %v", err)
	}
	defer dl.Close()
	_, log := newDaemonLogger(dl.dest, slog.LevelInfo)
	// Keep the test's own stderr quiet: dropped records are reported
	// on fd 2, which in the daemon is the state file.
	null, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	setVar(t, &os.Stderr, null)
	const records = 100 // well past net.unix.max_dgram_qlen (10)
	start := time.Now()
	for i := range records {
		log.Error("answering EIO", "n", i)
	}
	if d := time.Since(start); d > records*syslogTimeout+5*time.Second {
		t.Errorf("%d records to a stalled syslog took %v, want about %v at most", records, d, records*syslogTimeout)
	}
}
