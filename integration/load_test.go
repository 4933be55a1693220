package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocifs/ocifs/internal/imagetest"
	"github.com/ocifs/ocifs/internal/tartest"
)

// TestMountLoad: 16 readers doing random reads, whole-file checks and
// directory walks on a real mount for a fixed number of operations: no
// errors, every byte right, the daemon's peak memory bounded, and the
// throughput logged. The default is small enough for the race run;
// OCIFS_LOAD=1 uses a 512 MiB image and ten times the operations.
func TestMountLoad(t *testing.T) {
	requireMountable(t)
	bin := buildOcifs(t)
	imageMiB, ops := 24, 150
	if os.Getenv("OCIFS_LOAD") == "1" {
		imageMiB, ops = 512, 1500
	}
	const readers = 16
	want := map[string][]byte{}
	var names []string
	var layers []*tartest.Layer
	total := 0
	for li := 0; li < 2; li++ {
		l := &tartest.Layer{}
		for i := 0; total < imageMiB<<20*(li+1)/2; i++ {
			size := (i * 7919) % (96 << 10)
			if i%20 == 0 {
				size = 1<<20 + (i*104729)%(2<<20)
			}
			name := fmt.Sprintf("l%d/d%02d/f%05d", li, i%37, i)
			want[name] = tartest.RandomData(t, name, size)
			names = append(names, name)
			l.File(name, want[name])
			total += size
		}
		layers = append(layers, l)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, layout, imagetest.Image{Tag: "v1", Layers: []imagetest.LayerSpec{
		{Layer: layers[0], Compression: tartest.Gzip}, {Layer: layers[1], Compression: tartest.Plain}}})
	mnt := ocifsMount(t, bin, layout+":v1")
	pid := daemonPID(t, mnt)

	var bytesRead, fails atomic.Int64
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		if fails.Add(1) <= 20 {
			mu.Lock()
			failures = append(failures, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for g := range readers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			buf := make([]byte, 256<<10)
			for op := range ops {
				name := names[r.IntN(len(names))]
				data := want[name]
				switch {
				case op%50 == 49:
					dir := filepath.Join(mnt, filepath.Dir(name))
					n := 0
					err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
						n++
						return err
					})
					if err != nil || n < 2 {
						fail("walk %s: %d entries, %v", dir, n, err)
					}
				case op%8 == 7:
					got, err := os.ReadFile(filepath.Join(mnt, name))
					bytesRead.Add(int64(len(got)))
					if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
						fail("read %s: %v, or wrong sha256", name, err)
					}
				default:
					f, err := os.Open(filepath.Join(mnt, name))
					if err != nil {
						fail("open %s: %v", name, err)
						continue
					}
					off := int64(r.IntN(len(data) + 1))
					b := buf[:1+r.IntN(len(buf))]
					k, _ := f.ReadAt(b, off)
					f.Close()
					bytesRead.Add(int64(k))
					if !bytes.Equal(b[:k], data[off:min(off+int64(len(b)), int64(len(data)))]) {
						fail("read %s at %d: wrong bytes", name, off)
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, f := range failures {
		t.Error(f)
	}
	hwm := vmHWM(t, pid)
	t.Logf("%d readers x %d ops on %d MiB (%d files): %v, %.1f MiB/s, %.0f ops/s, daemon VmHWM %d MiB",
		readers, ops, total>>20, len(names), elapsed.Round(time.Millisecond),
		float64(bytesRead.Load())/(1<<20)/elapsed.Seconds(), float64(readers*ops)/elapsed.Seconds(), hwm>>20)
	// The bound: one Reader cache (64 MiB) per compressed layer, the
	// index and tree, and the Go runtime's slack.
	if hwm > 400<<20 {
		t.Errorf("daemon VmHWM %d MiB, want at most 400", hwm>>20)
	}
}

// vmHWM returns the peak resident memory of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of %d: %v", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
