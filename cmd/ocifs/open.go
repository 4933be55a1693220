package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/image"
	"github.com/ocifs/ocifs/internal/blobcache"
	"github.com/ocifs/ocifs/rootfs"
)

// imageFlags are the flags of every command that opens an image's
// tree: index, ls, cat, stat, diff and export.
type imageFlags struct {
	platform string
	cacheDir string
	cacheMax sizeFlag
	registry registryFlags
}

func (f *imageFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.platform, "platform", "", "pick this `os/arch[/variant]` from a multi-platform image (default: this host's)")
	c.Flags().StringVar(&f.cacheDir, "cache-dir", "", "cache `directory` of indexes, merged trees and fetched ranges (default $OCIFS_CACHE_DIR, else $XDG_CACHE_HOME/ocifs)")
	f.cacheMax = sizeFlag(blobcache.DefaultMaxBytes)
	c.Flags().Var(&f.cacheMax, "cache-max", "bound the ranges kept of remote layers to `SIZE` (e.g. 500M, 20G); the least recently used go first")
	f.registry.register(c.Flags())
}

// imageOptions are the image.Options the flags ask for: a registry's
// blobs read through the cache of fetched ranges.
func (f *imageFlags) imageOptions() image.Options {
	ro := f.registry.options()
	ro.Cache = &blobcache.Cache{Dir: cacheDirOr(f.cacheDir), MaxBytes: int64(f.cacheMax)}
	return image.Options{Platform: f.platform, Registry: ro}
}

// sizeFlag is a byte count given as N, NK, NM, NG or NT (powers of
// 1024, as du and sshfs read them).
type sizeFlag int64

func (s *sizeFlag) String() string { return humanSize(int64(*s)) }
func (s *sizeFlag) Type() string   { return "size" }
func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func parseSize(v string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSuffix(strings.ToUpper(v), "B")
	if num != "" {
		if i := strings.IndexByte("KMGT", num[len(num)-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			num = num[:len(num)-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: want a positive count of bytes such as 500M or 20G", v)
	}
	return n * mult, nil
}

// openRootFS opens ref's merged tree, indexing layers that are not in
// the cache yet, with a progress line when stderr is a terminal.
func openRootFS(cmd *cobra.Command, ref string, f imageFlags) (*rootfs.RootFS, error) {
	return openRootFSWith(cmd, ref, f, rootfs.Options{})
}

// openRootFSWith is openRootFS with more options; f sets the platform
// and the cache directory.
func openRootFSWith(cmd *cobra.Command, ref string, f imageFlags, opts rootfs.Options) (*rootfs.RootFS, error) {
	img, err := image.Open(cmd.Context(), ref, f.imageOptions())
	if err != nil {
		return nil, err
	}
	opts.Platform, opts.CacheDir = f.platform, f.cacheDir
	if stderr := cmd.ErrOrStderr(); isTerminal(stderr) {
		layers, err := img.Layers()
		if err != nil {
			img.Close()
			return nil, err
		}
		var total int64
		for _, l := range layers {
			total += l.Descriptor.Size
		}
		p := newProgress(stderr, len(layers), total)
		defer p.stop()
		opts.Progress = p.update
	}
	return rootfs.OpenImage(cmd.Context(), img, opts)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress draws one line, rewritten in place: bytes read of all
// layers, rate and ETA.
type progress struct {
	w     io.Writer
	total int64
	start time.Time
	read  []atomic.Int64 // per layer
	done  chan struct{}
	wg    sync.WaitGroup
}

func newProgress(w io.Writer, layers int, total int64) *progress {
	p := &progress{w: w, total: total, start: time.Now(), read: make([]atomic.Int64, layers), done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.done:
				fmt.Fprint(p.w, "\r\033[K")
				return
			}
		}
	}()
	return p
}

func (p *progress) update(i int, n int64) { p.read[i].Store(n) }

func (p *progress) draw() {
	var n int64
	for i := range p.read {
		n += p.read[i].Load()
	}
	secs := time.Since(p.start).Seconds()
	rate := float64(n) / secs
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.total-n) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r\033[Kindexing %s / %s  %s/s  ETA %s", humanSize(n), humanSize(p.total), humanSize(int64(rate)), eta)
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}
