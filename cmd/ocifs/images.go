package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/ocifs/ocifs/image"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
)

func init() { addCommand(newImagesCmd()) }

// imageJSON is one entry of `ocifs images --json`.
type imageJSON struct {
	Tag       string        `json:"tag"`
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	Platforms []string      `json:"platforms"`
	Size      int64         `json:"size"`
}

func newImagesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "images LAYOUT|ARCHIVE",
		Short: "List the images of an OCI image layout or an image archive",
		Long: `List each entry of the layout's index.json: its tag
(org.opencontainers.image.ref.name, "<none>" if untagged), the digest of
its manifest or image index, the platforms it holds and the total size of
its blobs (manifests, configs and layers, each counted once).

An archive is read in place: an oci-archive's index.json, or each image
of a docker-archive's manifest.json, tagged with its first RepoTag and
with the digest of the manifest ocifs makes up for it. The argument is
PATH, oci:PATH, oci-archive:PATH or docker-archive:PATH.

Any of the listed tags or digests can be passed to "ocifs inspect" as
LAYOUT:TAG or LAYOUT@DIGEST (for a docker-archive, ARCHIVE:REPO:TAG).`,
		Example: `  # a layout written by "skopeo copy docker://alpine oci:alpine:3.20"
  ocifs images alpine

  # what "docker save" put in a tarball
  ocifs images busybox.tar

  # the tags, for a script
  ocifs images --json alpine | jq -r '.[].tag'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImages(cmd.Context(), cmd.OutOrStdout(), args[0], asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array instead of a table")
	return cmd
}

func runImages(ctx context.Context, w io.Writer, arg string, asJSON bool) error {
	ref, err := image.ParseReference(arg)
	if err != nil {
		return err
	}
	if ref.Tag != "" || ref.Digest != "" {
		return fmt.Errorf("list images of %q: want a layout or an archive, not an image (try \"ocifs inspect %s\")", arg, arg)
	}
	src, err := image.OpenSource(ctx, ref, image.Options{})
	if err != nil {
		return err
	}
	defer src.Close()
	ix, ok := src.(image.Indexer)
	if !ok {
		return fmt.Errorf("list images of %q: a registry has no index to list (try \"ocifs inspect %s\")", arg, arg)
	}
	infos, err := image.Images(ctx, ix, ref.Path)
	if err != nil {
		return err
	}

	out := make([]imageJSON, len(infos))
	for i, info := range infos {
		out[i] = imageJSON{
			Tag:       info.Tag,
			Digest:    info.Descriptor.Digest,
			MediaType: info.Descriptor.MediaType,
			Platforms: []string{},
			Size:      info.Size,
		}
		for _, p := range info.Platforms {
			out[i].Platforms = append(out[i].Platforms, image.FormatPlatform(p))
		}
	}
	if asJSON {
		return writeJSON(w, out)
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tDIGEST\tPLATFORM\tSIZE")
	for _, img := range out {
		tag := img.Tag
		if tag == "" {
			tag = "<none>"
		}
		platforms := strings.Join(img.Platforms, ",")
		if platforms == "" {
			platforms = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", tag, img.Digest, platforms, humanSize(img.Size))
	}
	return tw.Flush()
}
