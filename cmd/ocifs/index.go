package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocifs/ocifs/rootfs"
)

func init() { addCommand(newIndexCmd()) }

func newIndexCmd() *cobra.Command {
	var f imageFlags
	cmd := &cobra.Command{
		Use:   "index REF",
		Short: "Build the layer indexes and merged tree of an image ahead of time",
		Long: `Read each layer blob of REF once and store its index in the cache, then
merge the layers and store the merged tree, so that a later mount starts
in milliseconds. Layers are indexed in parallel; a layer already in the
cache (it is keyed by blob digest, so images that share layers share
indexes) is checked, and so is a tree already merged for the same layers.

Every byte of every cache file used is checked, more than a mount
checks: each index's checksums, every gzip window inflated and checked,
every entry decoded, and the whole merged tree. A file that fails is
rebuilt from the layer blobs and replaced, and a line on stderr says
so ("repaired index of layer 2 (sha256:...): <reason>"); nothing needs
deleting by hand.

While indexing, the blob digest and the uncompressed diff_id from the
image config are verified: a layer that does not match its digest is an
error and nothing is stored for it.

A progress line (bytes, rate, ETA) is shown when stderr is a terminal.`,
		Example: `  # index the image tagged latest
  ocifs index ./layout:latest
  ocifs index oci-archive:./image.tar:latest

  # use a cache directory of your own (also: OCIFS_CACHE_DIR)
  ocifs index --cache-dir /var/cache/ocifs ./layout:latest`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runIndex(cmd, args[0], f)
		},
	}
	f.register(cmd)
	return cmd
}

func runIndex(cmd *cobra.Command, ref string, f imageFlags) error {
	start := time.Now()
	var mu sync.Mutex
	r, err := openRootFSWith(cmd, ref, f, rootfs.Options{
		Verify: true,
		Repaired: func(rep rootfs.Repair) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(cmd.ErrOrStderr(), "repaired %s\n", rep)
		},
	})
	if err != nil {
		return err
	}
	defer r.Close()
	elapsed := time.Since(start)

	var entries, indexBytes int
	var blobs int64
	for i, ix := range r.Indexes {
		s := ix.Summary()
		entries += s.Entries
		indexBytes += s.EncodedSize
		blobs += r.Layers[i].Descriptor.Size
	}
	tree, _ := r.Tree.MarshalBinary()
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %d layers, %d entries, %s of blobs, index %s, tree %s, %s\n",
		r.Image.Ref, len(r.Layers), entries, humanSize(blobs), humanSize(int64(indexBytes)),
		humanSize(int64(len(tree))), elapsed.Round(time.Millisecond))
	return nil
}
