package main

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ocifs/ocifs/tarindex"
)

// cacheKinds are the folders of the cache directory, in the order du
// lists them: what each holds, for the listing.
var cacheKinds = []struct{ dir, what string }{
	{"index", "layer indexes"},
	{"tree", "merged trees"},
	{"blobs", "fetched ranges of remote layers"},
}

func init() {
	var cacheDir string
	var asJSON, keepIndexes bool
	cache := &cobra.Command{
		Use:   "cache",
		Short: "Show or empty the cache of indexes, merged trees and fetched ranges",
		Long: `ocifs keeps, in one cache directory shared by every mount and command:
layer indexes (one per layer blob, by digest), merged trees (one per stack
of layers) and the byte ranges fetched of remote layers. The directory is
--cache-dir, else $OCIFS_CACHE_DIR, else $XDG_CACHE_HOME/ocifs
(~/.cache/ocifs). Fetched ranges are bounded by mount's --cache-max and
the least recently used go first; indexes and trees are small.`,
	}
	cache.PersistentFlags().StringVar(&cacheDir, "cache-dir", "", "cache `directory` (default $OCIFS_CACHE_DIR, else $XDG_CACHE_HOME/ocifs)")

	du := &cobra.Command{
		Use:   "du",
		Short: "Show what the cache holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := cacheDirOr(cacheDir)
			type kind struct {
				Kind  string `json:"kind"`
				Files int    `json:"files"`
				Bytes int64  `json:"bytes"`
			}
			var kinds []kind
			var total int64
			for _, k := range cacheKinds {
				files, bytes, err := duDir(filepath.Join(dir, k.dir))
				if err != nil {
					return err
				}
				kinds = append(kinds, kind{k.what, files, bytes})
				total += bytes
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"dir": dir, "kinds": kinds, "bytes": total})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "%s\n", dir)
			for _, k := range kinds {
				fmt.Fprintf(tw, "  %s\t%d files\t%s\n", k.Kind, k.Files, humanSize(k.Bytes))
			}
			fmt.Fprintf(tw, "  total\t\t%s\n", humanSize(total))
			return tw.Flush()
		},
	}
	du.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	prune := &cobra.Command{
		Use:   "prune",
		Short: "Empty the cache",
		Long: `prune removes everything ocifs keeps in the cache directory. Mounts that
are up keep working: they hold what they mapped, and what they read next
is fetched again. The next mount of a remote image streams its layers
again to index them, unless --keep-indexes kept the indexes and trees.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := cacheDirOr(cacheDir)
			var freed int64
			for _, k := range cacheKinds {
				if keepIndexes && k.dir != "blobs" {
					continue
				}
				p := filepath.Join(dir, k.dir)
				_, bytes, err := duDir(p)
				if err != nil {
					return err
				}
				if err := os.RemoveAll(p); err != nil {
					return fmt.Errorf("prune %q: %w", p, err)
				}
				freed += bytes
			}
			fmt.Fprintf(cmd.OutOrStdout(), "freed %s in %s\n", humanSize(freed), dir)
			return nil
		},
	}
	prune.Flags().BoolVar(&keepIndexes, "keep-indexes", false, "remove only the fetched ranges; keep layer indexes and merged trees")

	cache.AddCommand(du, prune)
	addCommand(cache)
}

func cacheDirOr(dir string) string {
	if dir != "" {
		return dir
	}
	return tarindex.DefaultCacheDir()
}

// duDir counts the regular files under dir and their bytes; a missing
// dir holds nothing.
func duDir(dir string) (files int, bytes int64, err error) {
	err = filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			files++
			bytes += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("du %q: %w", dir, err)
	}
	return files, bytes, nil
}
