package integration

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
)

// TestDaemonLogsByDefault mounts with no --log-file where no syslog
// listens, damages the layer blob under the mount and finds the reason
// for the EIO, with the file's path, in the state directory's log, as
// `ocifs mount` said it would, for both ways of starting the daemon.
func TestDaemonLogsByDefault(t *testing.T) {
	requireMountable(t)
	bins := map[string]string{"forked": buildOcifs(t), "re-executed": buildOcifsNoCgo(t)}
	var args []string
	if _, err := os.Stat("/dev/log"); err == nil {
		// This host has a syslog: the file is what ocifs falls
		// back to without one, and what --syslog=false picks.
		args = append(args, "--syslog=false")
	}
	want := map[string][]byte{}
	l := &tartest.Layer{}
	for _, n := range []string{"a", "b", "damaged-file"} {
		want[n] = tartest.RandomData(t, n, 1<<20)
		l.File(n, want[n])
	}
	for _, daemon := range []string{"forked", "re-executed"} {
		bin := bins[daemon]
		for _, c := range []tartest.Compression{tartest.Plain, tartest.Gzip} {
			t.Run(daemon+"/"+c.String(), func(t *testing.T) {
				layout := filepath.Join(t.TempDir(), "layout")
				descs := imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(c, l)})
				blob := imagetest.BlobPath(layout, imagetest.ReadManifest(t, layout, descs[0]).Layers[0].Digest)
				state := t.TempDir()
				mnt := t.TempDir()
				cmd := exec.Command(bin, append(append([]string{"mount"}, args...), layout+":v1", mnt)...)
				cmd.Env = append(os.Environ(),
					"OCIFS_CACHE_DIR="+filepath.Join(t.TempDir(), "cache"),
					"XDG_STATE_HOME="+state)
				out, err := cmd.CombinedOutput()
				t.Cleanup(func() { unmountForCleanup(t, bin, mnt) })
				if err != nil {
					t.Fatalf("ocifs mount: %v\n%s", err, out)
				}
				logFile := filepath.Join(state, "ocifs", "ocifs.log")
				if got, want := string(out), "ocifs: logging to "+logFile+"\n"; got != want {
					t.Errorf("ocifs mount said %q, want %q", got, want)
				}
				if got := mustRead(t, filepath.Join(mnt, "a")); !bytes.Equal(got, want["a"]) {
					t.Fatalf("a: wrong bytes before any damage")
				}
				size := int64(len(mustRead(t, blob)))
				if err := os.Truncate(blob, size/2); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(filepath.Join(mnt, "damaged-file"))
				if !errors.Is(err, unix.EIO) {
					t.Fatalf("read damaged-file from a truncated blob = %d bytes, %v; want EIO", len(got), err)
				}
				var line string
				waitFor(5*time.Second, func() bool {
					b, _ := os.ReadFile(logFile)
					for l := range strings.Lines(string(b)) {
						if strings.Contains(l, "answering EIO") {
							line = l
							return true
						}
					}
					return false
				})
				if line == "" {
					b, _ := os.ReadFile(logFile)
					t.Fatalf("no record of the EIO in %s:\n%s", logFile, b)
				}
				// The record names the file and says why: the blob
				// ends before the data the index points at ("blob is
				// shorter", "truncated stream": a malformed layer).
				if !strings.Contains(line, "path=damaged-file") || !strings.Contains(line, "malformed layer") {
					t.Errorf("EIO record %q: want path=damaged-file and the cause (a malformed layer)", line)
				}
			})
		}
	}
}

// TestDaemonLogsToSyslog builds ocifs with its syslog socket moved to
// one the test listens on (the path is a link-time variable, not a
// knob), mounts with no flags, and receives the mount's records there,
// the reason for an EIO among them, as a local syslog daemon would.
func TestDaemonLogsToSyslog(t *testing.T) {
	requireMountable(t)
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	records := make(chan string, 100)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(records)
				return
			}
			records <- string(buf[:n])
		}
	}()
	bin := filepath.Join(t.TempDir(), "ocifs")
	build := exec.Command("go", "build", "-ldflags", "-X main.syslogSocket="+sock, "-o", bin, "github.com/ocifs/ocifs/cmd/ocifs")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ocifs: %v\n%s", err, out)
	}

	data := tartest.RandomData(t, "damaged-file", 1<<20)
	layout := filepath.Join(t.TempDir(), "layout")
	descs := imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: layerSpecs(tartest.Gzip, (&tartest.Layer{}).File("damaged-file", data))})
	blob := imagetest.BlobPath(layout, imagetest.ReadManifest(t, layout, descs[0]).Layers[0].Digest)
	state := t.TempDir()
	mnt := t.TempDir()
	cmd := exec.Command(bin, "mount", layout+":v1", mnt)
	cmd.Env = append(os.Environ(), "OCIFS_CACHE_DIR="+filepath.Join(t.TempDir(), "cache"), "XDG_STATE_HOME="+state)
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() { unmountForCleanup(t, bin, mnt) })
	if err != nil {
		t.Fatalf("ocifs mount: %v\n%s", err, out)
	}
	if msg := string(out); !strings.HasPrefix(msg, "ocifs: logging to ") || !strings.Contains(msg, "ocifs") || strings.Contains(msg, state) || strings.Count(msg, "\n") != 1 {
		t.Errorf("ocifs mount said %q, want one line naming syslog", msg)
	}
	if err := os.Truncate(blob, int64(len(mustRead(t, blob)))/2); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "damaged-file")); !errors.Is(err, unix.EIO) {
		t.Fatalf("read damaged-file from a truncated blob = %d bytes, %v; want EIO", len(got), err)
	}
	var seen []string
	timeout := time.After(5 * time.Second)
	for {
		select {
		case r := <-records:
			seen = append(seen, r)
			if !strings.Contains(r, "answering EIO") {
				continue
			}
			// <27> is daemon.err; then the local syslog format's
			// time stamp and the tag that journalctl -t matches.
			if !strings.HasPrefix(r, "<27>") || !strings.Contains(r, " ocifs[") || !strings.Contains(r, "path=damaged-file") || !strings.Contains(r, "malformed layer") {
				t.Errorf("EIO record %q: want priority <27>, tag ocifs, the path and the cause", r)
			}
			if b, _ := os.ReadFile(filepath.Join(state, "ocifs", "ocifs.log")); bytes.Contains(b, []byte("answering EIO")) {
				t.Errorf("the EIO record went to the state file too:\n%s", b)
			}
			return
		case <-timeout:
			t.Fatalf("no EIO record on the syslog socket; got %q", seen)
		}
	}
}
