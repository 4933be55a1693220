package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocifs/ocifs/image"
	"github.com/ocifs/ocifs/rootfs"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() { addCommand(newIndexCmd()) }

func newIndexCmd() *cobra.Command {
	var opts rootfs.Options
	cmd := &cobra.Command{
		Use:   "index REF",
		Short: "Build the layer indexes of an image ahead of time",
		Long: `Read each layer blob of REF once and store its index in the cache, so
that a later mount starts in milliseconds. Layers are indexed in
parallel; a layer already in the cache (it is keyed by blob digest, so
images that share layers share indexes) is only checked.

While indexing, the blob digest and the uncompressed diff_id from the
image config are verified: a layer that does not match its digest is an
error and nothing is stored for it.

A progress line (bytes, rate, ETA) is shown when stderr is a terminal.`,
		Example: `  # index the image tagged latest
  ocifs index ./layout:latest

  # use a cache directory of your own (also: OCIFS_CACHE_DIR)
  ocifs index --cache-dir /var/cache/ocifs ./layout:latest`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runIndex(cmd, args[0], opts)
		},
	}
	cmd.Flags().StringVar(&opts.Platform, "platform", "", "pick this `os/arch[/variant]` from a multi-platform image (default: this host's)")
	cmd.Flags().StringVar(&opts.CacheDir, "cache-dir", "", "index cache `directory` (default $OCIFS_CACHE_DIR, else $XDG_CACHE_HOME/ocifs)")
	return cmd
}

func runIndex(cmd *cobra.Command, ref string, opts rootfs.Options) error {
	img, err := image.Open(ref, image.Options{Platform: opts.Platform})
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var total int64
	for _, l := range layers {
		total += l.Descriptor.Size
	}
	stderr := cmd.ErrOrStderr()
	if isTerminal(stderr) {
		p := newProgress(stderr, len(layers), total)
		defer p.stop()
		opts.Progress = p.update
	}

	start := time.Now()
	r, err := rootfs.OpenImage(cmd.Context(), img, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	elapsed := time.Since(start)

	var entries, indexBytes int
	for _, ix := range r.Indexes {
		s := ix.Summary()
		entries += s.Entries
		indexBytes += s.EncodedSize
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %d layers, %d entries, %s of blobs, index %s, %s\n",
		img.Ref, len(layers), entries, humanSize(total), humanSize(int64(indexBytes)),
		elapsed.Round(time.Millisecond))
	return nil
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
