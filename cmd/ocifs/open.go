package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/image"
	"github.com/ocifs/ocifs/rootfs"
)

// imageFlags are the flags of every command that opens an image's
// tree: index, ls, cat, stat, diff and export.
type imageFlags struct {
	platform string
	cacheDir string
}

func (f *imageFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.platform, "platform", "", "pick this `os/arch[/variant]` from a multi-platform image (default: this host's)")
	c.Flags().StringVar(&f.cacheDir, "cache-dir", "", "index cache `directory` (default $OCIFS_CACHE_DIR, else $XDG_CACHE_HOME/ocifs)")
}

// openRootFS opens ref's merged tree, indexing layers that are not in
// the cache yet, with a progress line when stderr is a terminal.
func openRootFS(cmd *cobra.Command, ref string, f imageFlags) (*rootfs.RootFS, error) {
	return openRootFSWith(cmd, ref, f, rootfs.Options{})
}

// openRootFSWith is openRootFS with more options; f sets the platform
// and the cache directory.
func openRootFSWith(cmd *cobra.Command, ref string, f imageFlags, opts rootfs.Options) (*rootfs.RootFS, error) {
	img, err := image.Open(ref, image.Options{Platform: f.platform})
	if err != nil {
		return nil, err
	}
	opts.Platform, opts.CacheDir = f.platform, f.cacheDir
	if stderr := cmd.ErrOrStderr(); isTerminal(stderr) {
		layers, err := img.Layers()
		if err != nil {
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
