package main

import (
	"github.com/spf13/cobra"

	"github.com/ocifs/ocifs/browse"
)

func init() { addCommand(newStatCmd()) }

func newStatCmd() *cobra.Command {
	var (
		f      imageFlags
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "stat [--json] REF PATH",
		Short: "Show everything indexed about a path, and which layers it comes from",
		Long: `stat shows every field the layer index keeps about PATH in the merged
root filesystem of REF: type, mode, owner, size, mtime (nanoseconds),
symlink target, device numbers, xattrs, inode (node ID) and link count,
and the data map of a sparse file.

It also answers "where does this file come from?": the layer that
provides the entry (numbered from 1, lowest first, with its digest and
the entry's name in that layer) and, lowest layer first, every entry of
any layer that names the path or hides it: the entries it overrides,
whiteouts of it or of a parent, and opaque markers of a parent.
Entries are matched by name; one a layer wrote through a parent
symlink is listed under the name it has in its layer.

Like lstat, a symlink given as PATH is described itself (add a "/" to
follow it). Symlinks before it are followed inside the image.`,
		Example: `  ocifs stat ./layout:latest /etc/passwd
  ocifs stat oci-archive:./image.tar /etc/passwd
  ocifs stat --json ./layout:latest /usr/bin/ping | jq '.xattrs'
  ocifs stat --json ./layout:latest /etc/hosts | jq '.layer.digest'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRootFS(cmd, args[0], f)
			if err != nil {
				return err
			}
			defer r.Close()
			info, err := browse.Stat(cmd.Context(), r, args[1])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), info)
			}
			return info.WriteText(cmd.OutOrStdout())
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of text")
	f.register(c)
	return c
}
