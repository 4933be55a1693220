package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ocifs/ocifs/browse"
)

func init() { addCommand(newExportCmd()) }

func newExportCmd() *cobra.Command {
	var (
		f      imageFlags
		output string
	)
	c := &cobra.Command{
		Use:   "export [-o FILE] REF",
		Short: "Write an image's flattened root filesystem as one tar stream",
		Long: `export writes the merged root filesystem of REF as one PAX tar archive,
what unpacking every layer in order would leave on disk (like crane
export or docker export), streamed from the layer blobs: nothing is
unpacked or written to disk but the archive.

Entries come in tree order, directories before their contents, starting
with "./". Hardlinked files are written once and then as hardlinks to
the first name; xattrs are PAX SCHILY.xattr records (GNU tar restores
them with --xattrs --xattrs-include='*'); devices, fifos, symlinks,
owners (numeric) and mtimes (with nanoseconds) are kept. Sparse files
are written in full.

The archive goes to stdout unless -o names a file; it is not written to
a terminal unless you ask for it with -o -.`,
		Example: `  # unpack an image's root filesystem without ocifs mount or umoci
  ocifs export ./layout:latest | tar --xattrs --xattrs-include='*' -xpf - -C rootfs

  # to a file
  ocifs export -o rootfs.tar ./layout:latest
  ocifs export -o rootfs.tar docker-archive:./busybox.tar

  # import it into docker as a one-layer image
  ocifs export ./layout:latest | docker import - flat:latest`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExport(cmd, args[0], output, f)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "write the archive to `FILE` (\"-\": stdout, even a terminal)")
	f.register(c)
	return c
}

func runExport(cmd *cobra.Command, ref, output string, f imageFlags) (err error) {
	w := cmd.OutOrStdout()
	if output == "" && isTerminal(w) {
		return errors.New("export: refusing to write a tar archive to a terminal; redirect stdout, or use -o FILE (or -o - to insist)")
	}
	r, err := openRootFS(cmd, ref, f)
	if err != nil {
		return err
	}
	defer r.Close()
	if output != "" && output != "-" {
		file, err := os.Create(output)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer func() {
			if cerr := file.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("export: %w", cerr)
			}
			if err != nil {
				os.Remove(output) // a partial archive would look whole
			}
		}()
		w = file
	}
	return browse.Export(cmd.Context(), w, r)
}
