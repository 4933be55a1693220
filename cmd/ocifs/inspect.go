package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/ocifs/ocifs/image"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
)

func init() { addCommand(newInspectCmd()) }

// inspectJSON is the output of `ocifs inspect --json`.
type inspectJSON struct {
	Reference string        `json:"reference"`
	Digest    digest.Digest `json:"digest"` // of the manifest
	MediaType string        `json:"mediaType"`
	Platform  string        `json:"platform"`
	Config    configJSON    `json:"config"`
	Layers    []layerJSON   `json:"layers"`
}

type configJSON struct {
	Digest     digest.Digest     `json:"digest"`
	Entrypoint []string          `json:"entrypoint"`
	Cmd        []string          `json:"cmd"`
	Env        []string          `json:"env"`
	WorkingDir string            `json:"workingDir"`
	User       string            `json:"user"`
	Labels     map[string]string `json:"labels"`
}

type layerJSON struct {
	MediaType string        `json:"mediaType"`
	Size      int64         `json:"size"`
	Digest    digest.Digest `json:"digest"`
	DiffID    digest.Digest `json:"diffID"`
}

func newInspectCmd() *cobra.Command {
	var (
		asJSON bool
		opts   image.Options
		rf     registryFlags
	)
	cmd := &cobra.Command{
		Use:   "inspect REF",
		Short: "Show an image's manifest, config and layers",
		Long: `Resolve REF to one image and show its manifest digest, platform,
the runtime settings of its config (entrypoint, cmd, env, working
directory, user, labels) and its layers, lowest first, with media type,
size and digest.

REF is a layout (PATH, PATH:TAG, PATH@DIGEST, oci:PATH[:TAG]), an
archive (oci-archive:PATH[:TAG], docker-archive:PATH[:REPO:TAG|:@N], or
the PATH of either) or docker://HOST/REPO[:TAG|@DIGEST]; see "ocifs
--help". For an image index (a multi-platform image), the manifest for
--platform is shown, by default the one for this host.`,
		Example: `  # the only image of a layout
  ocifs inspect ./alpine

  # a tag, for another platform
  ocifs inspect --platform linux/arm64 oci:./alpine:3.20

  # an image saved by "docker save busybox -o busybox.tar"
  ocifs inspect docker-archive:busybox.tar:busybox:latest

  # the layer digests, for a script
  ocifs inspect --json ./alpine:3.20 | jq -r '.layers[].digest'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Registry = rf.options()
			return runInspect(cmd.Context(), cmd.OutOrStdout(), args[0], opts, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of text")
	cmd.Flags().StringVar(&opts.Platform, "platform", "", "platform to select from an image index, as os/arch[/variant] (default: this host's)")
	rf.register(cmd.Flags())
	return cmd
}

func runInspect(ctx context.Context, w io.Writer, ref string, opts image.Options, asJSON bool) error {
	img, err := image.Open(ctx, ref, opts)
	if err != nil {
		return err
	}
	defer img.Close()
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	c := img.Config.Config
	out := inspectJSON{
		Reference: img.Ref.String(),
		Digest:    img.Descriptor.Digest,
		MediaType: img.Descriptor.MediaType,
		Platform:  image.FormatPlatform(img.Platform),
		Config: configJSON{
			Digest:     img.ConfigDescriptor.Digest,
			Entrypoint: c.Entrypoint,
			Cmd:        c.Cmd,
			Env:        c.Env,
			WorkingDir: c.WorkingDir,
			User:       c.User,
			Labels:     c.Labels,
		},
		Layers: make([]layerJSON, len(layers)),
	}
	for i, l := range layers {
		out.Layers[i] = layerJSON{MediaType: l.Descriptor.MediaType, Size: l.Descriptor.Size, Digest: l.Descriptor.Digest, DiffID: l.DiffID}
	}
	if asJSON {
		return writeJSON(w, out)
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Reference:\t%s\n", out.Reference)
	fmt.Fprintf(tw, "Digest:\t%s\n", out.Digest)
	fmt.Fprintf(tw, "Media type:\t%s\n", out.MediaType)
	fmt.Fprintf(tw, "Platform:\t%s\n", out.Platform)
	fmt.Fprintf(tw, "Config:\t%s\n", out.Config.Digest)
	fmt.Fprintf(tw, "Entrypoint:\t%s\n", jsonList(c.Entrypoint))
	fmt.Fprintf(tw, "Cmd:\t%s\n", jsonList(c.Cmd))
	fmt.Fprintf(tw, "WorkingDir:\t%s\n", c.WorkingDir)
	fmt.Fprintf(tw, "User:\t%s\n", c.User)
	if err := tw.Flush(); err != nil {
		return err
	}
	// Env and labels go one a line, outside the table: long values
	// would otherwise widen its first column.
	fmt.Fprintf(w, "Env:\n")
	for _, e := range c.Env {
		fmt.Fprintf(w, "  %s\n", e)
	}
	fmt.Fprintf(w, "Labels:\n")
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		fmt.Fprintf(w, "  %s=%s\n", k, c.Labels[k])
	}

	fmt.Fprintf(w, "Layers:\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  MEDIA TYPE\tSIZE\tDIGEST")
	for _, l := range out.Layers {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", l.MediaType, humanSize(l.Size), l.Digest)
	}
	return tw.Flush()
}
