package integration

import (
	"bytes"
	"errors"
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
// `ocifs mount` said it would.
func TestDaemonLogsByDefault(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
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
	for _, c := range []tartest.Compression{tartest.Plain, tartest.Gzip} {
		t.Run(c.String(), func(t *testing.T) {
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
