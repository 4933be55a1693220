package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"

	"github.com/ocifs/ocifs/image"
	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/tarindex"
)

// Options tunes Open. The zero value works.
type Options struct {
	Platform string       // "os/arch[/variant]"; empty means the host's
	CacheDir string       // index cache; empty means tarindex.DefaultCacheDir
	Logger   *slog.Logger // nil discards

	// Progress, when set, is called as layer i's blob is read while its
	// index is built: n compressed bytes so far. Calls for different
	// layers come from different goroutines.
	Progress func(i int, n int64)

	// Parallel bounds how many layers are indexed at once; zero means
	// GOMAXPROCS.
	Parallel int
}

// The decompressed chunks the layers' readers keep are bounded by
// cacheBytes in all, split evenly, but at least minLayerCacheBytes per
// layer so that a few sequential readers per layer still find the
// chunks they just decoded. The kernel's page cache keeps file data
// across opens anyway; this cache only saves decoding the rest of a
// chunk for the next read.
const (
	cacheBytes         = 32 << 20
	minLayerCacheBytes = 4 << 20
)

// RootFS is an opened image. It is safe for concurrent use.
type RootFS struct {
	Image   *image.Image
	Layers  []image.Layer      // in manifest order, lowest first
	Indexes []*tarindex.Index  // one per layer
	Tree    *overlay.Tree      // the merged tree
	readers []*tarindex.Reader // one per layer
	blobs   []*image.Blob      // one per layer
}

// Open resolves ref and prepares its merged tree.
func Open(ctx context.Context, ref string, opts Options) (*RootFS, error) {
	img, err := image.Open(ref, image.Options{Platform: opts.Platform})
	if err != nil {
		return nil, err
	}
	return OpenImage(ctx, img, opts)
}

// OpenImage prepares the merged tree of an already resolved image.
func OpenImage(ctx context.Context, img *image.Image, opts Options) (_ *RootFS, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	r := &RootFS{
		Image:   img,
		Layers:  layers,
		Indexes: make([]*tarindex.Index, len(layers)),
		readers: make([]*tarindex.Reader, len(layers)),
		blobs:   make([]*image.Blob, len(layers)),
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	for i, l := range layers {
		if r.blobs[i], err = img.Layout.OpenBlob(l.Descriptor); err != nil {
			return nil, fmt.Errorf("open layer %d: %w", i+1, err)
		}
	}
	if err := r.index(ctx, opts, logger); err != nil {
		return nil, err
	}

	merge := make([]overlay.Layer, len(layers))
	ro := tarindex.ReaderOptions{CacheBytes: max(cacheBytes/int64(len(layers)+1), minLayerCacheBytes)}
	for i, ix := range r.Indexes {
		merge[i] = overlay.Layer{Name: layers[i].Descriptor.Digest.String(), Entries: ix.Entries}
		r.readers[i] = tarindex.NewReader(ix, r.blobs[i], ro)
	}
	if r.Tree, err = overlay.Merge(merge, overlay.Options{Logger: logger}); err != nil {
		return nil, fmt.Errorf("merge layers of %s: %w", img.Ref, err)
	}
	return r, nil
}

// index loads or builds every layer's index, at most opts.Parallel at
// once; the first error cancels the others.
func (r *RootFS) index(ctx context.Context, opts Options, logger *slog.Logger) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cache := &tarindex.Cache{Dir: opts.CacheDir, Logger: logger}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, l := range r.Layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			bo := tarindex.BuildOptions{DiffID: l.DiffID}
			if opts.Progress != nil {
				bo.Progress = func(n int64) { opts.Progress(i, n) }
			}
			ix, err := cache.Index(ctx, r.blobs[i], l.Descriptor, bo)
			if err != nil {
				cancel(fmt.Errorf("layer %d: %w", i+1, err))
				return
			}
			r.Indexes[i] = ix
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// ErrNotRegular is returned when reading a node that has no contents.
var ErrNotRegular = errors.New("rootfs: not a regular file")

// ReadAt reads the contents of a regular file node, like io.ReaderAt.
func (r *RootFS) ReadAt(n *overlay.Node, p []byte, off int64) (int, error) {
	if n.Layer < 0 || n.Entry == nil || n.Entry.Type != tar.TypeReg {
		return 0, fmt.Errorf("read node %d: %w", n.ID, ErrNotRegular)
	}
	return r.readers[n.Layer].ReadAt(n.Entry, p, off)
}

// Close releases the readers and the blobs.
func (r *RootFS) Close() error {
	var errs []error
	for _, rd := range r.readers {
		if rd != nil {
			errs = append(errs, rd.Close())
		}
	}
	for _, b := range r.blobs {
		if b != nil {
			errs = append(errs, b.Close())
		}
	}
	return errors.Join(errs...)
}
