package main

import (
	"github.com/spf13/cobra"

	"github.com/ocifs/ocifs/browse"
)

func init() { addCommand(newDiffCmd()) }

func newDiffCmd() *cobra.Command {
	var (
		f      imageFlags
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "diff [--json] REF1 REF2",
		Short: "List the files added, removed and changed between two images",
		Long: `diff compares the merged root filesystems of REF1 (old) and REF2 (new)
and prints one line per path that differs, in tree order, with docker
diff's letters:

  A /path               only in REF2 (everything below it is listed too)
  D /path               only in REF1
  C /path (fields)      in both, different

A path in both is changed when its type, mode, owner, size, symlink
target, device numbers or xattrs differ or, when all of those match,
when the sha256 of a regular file's contents differ (file contents in a
layer both images share are not read). Mtimes, inode numbers and link
counts are not compared. An image compared with itself prints nothing.
The exit status is 0 whether or not anything differs.`,
		Example: `  ocifs diff ./layout:v1 ./layout:v2
  ocifs diff ./layout:v1 docker-archive:./saved.tar:@0
  ocifs diff --json ./old ./new | jq -r '.[] | select(.kind=="changed") | .path'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := openRootFS(cmd, args[0], f)
			if err != nil {
				return err
			}
			defer a.Close()
			b, err := openRootFS(cmd, args[1], f)
			if err != nil {
				return err
			}
			defer b.Close()
			changes, err := browse.Diff(cmd.Context(), a, b)
			if err != nil {
				return err
			}
			if asJSON {
				if changes == nil {
					changes = []browse.Change{}
				}
				return writeJSON(cmd.OutOrStdout(), changes)
			}
			return browse.WriteChanges(cmd.OutOrStdout(), changes)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of changes instead of text")
	f.register(c)
	return c
}
