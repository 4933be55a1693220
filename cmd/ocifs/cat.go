package main

import (
	"bufio"

	"github.com/spf13/cobra"

	"github.com/ocifs/ocifs/browse"
)

func init() { addCommand(newCatCmd()) }

func newCatCmd() *cobra.Command {
	var f imageFlags
	c := &cobra.Command{
		Use:   "cat REF PATH...",
		Short: "Print files of an image, without mounting it",
		Long: `cat writes the contents of each PATH of the merged root filesystem of REF
to stdout, in order, streamed from the layer blobs.

Symlinks are followed inside the image, as in a chroot: a link to
/etc/shadow reads the image's /etc/shadow and ../../.. stops at the
image root, never at a file of this host. More than 40 links on one
path fail, like ELOOP on Linux.

Nothing is mounted and no root is needed.`,
		Example: `  ocifs cat ./layout:latest /etc/os-release
  ocifs cat ./saved.tar /etc/os-release        # docker save or oci-archive
  ocifs cat ./layout:latest /etc/passwd /etc/group | grep nobody
  ocifs cat ./layout:latest /usr/bin/app > app`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRootFS(cmd, args[0], f)
			if err != nil {
				return err
			}
			defer r.Close()
			w := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<20)
			for _, p := range args[1:] {
				if err := browse.Cat(w, r, p); err != nil {
					w.Flush()
					return err
				}
			}
			return w.Flush()
		},
	}
	f.register(c)
	return c
}
