package main

import (
	"github.com/spf13/cobra"

	"github.com/ocifs/ocifs/browse"
)

func init() { addCommand(newLsCmd()) }

func newLsCmd() *cobra.Command {
	var (
		f    imageFlags
		opts browse.ListOptions
	)
	c := &cobra.Command{
		Use:   "ls [-l] [-R] REF [PATH]",
		Short: "List a directory of an image, without mounting it",
		Long: `ls lists PATH (default /) of the merged root filesystem of REF, as ls
would on the unpacked image: a directory's names sorted, or one line for
a file. With -l each line shows mode (with setuid, setgid and sticky
letters), link count, owner, group, size (major, minor for devices),
mtime in UTC and name, and "-> target" for symlinks. Owners are named
from the image's own /etc/passwd and /etc/group (-n: numbers).

Symlinks in PATH are followed inside the image: an absolute target or
".." never leaves the image root. As with ls, a symlink given as PATH
is listed itself with -l and followed without it (or with a trailing
"/").

Nothing is mounted and no root is needed; layers not yet indexed are
indexed (and cached) first.`,
		Example: `  # the top of the image
  ocifs ls ./layout:latest
  ocifs ls docker-archive:./busybox.tar:busybox:latest /bin

  # a long listing of /etc
  ocifs ls -l ./layout:latest /etc

  # everything, recursively, with numeric owners
  ocifs ls -lRn ./layout:latest /`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := "/"
			if len(args) == 2 {
				p = args[1]
			}
			r, err := openRootFS(cmd, args[0], f)
			if err != nil {
				return err
			}
			defer r.Close()
			return browse.List(cmd.OutOrStdout(), r, p, opts)
		},
	}
	c.Flags().BoolVarP(&opts.Long, "long", "l", false, "long listing: mode, links, owner, group, size, mtime")
	c.Flags().BoolVarP(&opts.Recursive, "recursive", "R", false, "list subdirectories recursively")
	c.Flags().BoolVarP(&opts.Numeric, "numeric-uid-gid", "n", false, "with -l, print uid and gid as numbers")
	f.register(c)
	return c
}
