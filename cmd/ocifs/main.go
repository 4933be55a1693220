// Command ocifs mounts OCI image layouts and archives lazily: no layer is unpacked,
// files are read from the layer blobs on demand.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// rootCmd is the top of the command tree; each subcommand registers
// itself from its own file with addCommand.
var rootCmd = &cobra.Command{
	Use:   "ocifs",
	Short: "Mount and browse OCI images without unpacking them",
	Long: `ocifs reads OCI image layouts (as written by skopeo, umoci, buildah,
crane or docker save), image archives (docker save, podman save,
skopeo's oci-archive and docker-archive) and images in registries, and
serves an image's root filesystem straight from its compressed layer
blobs, fetched by range when they are remote. Each layer is indexed
once (the index is cached by blob digest), layers are merged with the
OCI whiteout rules, and file contents are decompressed on demand.

References name an image in a layout directory, an archive or a registry,
spelled as skopeo spells them:
  PATH               the only image in the layout (or archive) PATH
  PATH:TAG           the image tagged TAG (org.opencontainers.image.ref.name)
  PATH@sha256:HEX    the image whose manifest or index has that digest
  oci:PATH[:TAG]     skopeo's spelling of the same, for a layout
  oci-archive:PATH[:TAG]
                     an image layout in a tar file (skopeo copy ... oci-archive:)
  docker-archive:PATH[:REPO:TAG|:@N]
                     what docker save and podman save write: the image
                     named REPO:TAG, or the N-th (from 0) of its manifest.json
  docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]
                     a registry; docker://busybox is
                     docker.io/library/busybox:latest
A PATH that is a tar file is read as whichever archive it is. Archives
are read in place: nothing is unpacked or copied.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

func addCommand(c *cobra.Command) { rootCmd.AddCommand(c) }

func init() { rootCmd.Version = version() }

// version is what go build stamped into the binary: the module's
// (pseudo-)version, which names the commit, or else the commit itself.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return bi.Main.Version
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintf(os.Stderr, "ocifs: %v\n", err)
		}
		os.Exit(1)
	}
}
