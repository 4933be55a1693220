// Package bundle turns an OCI image into an OCI runtime bundle
// (runtime-spec bundle.md): a config.json converted from the image
// config, next to a root filesystem that is the image itself.
//
// # Conversion
//
// RuntimeConfig follows the image-spec's conversion.md: Entrypoint and
// Cmd become process.args, Env process.env, WorkingDir process.cwd,
// User process.user (names resolved through the image's own
// /etc/passwd and /etc/group), and os, architecture, author, created,
// StopSignal, ExposedPorts and the Labels become annotations, the
// Labels winning on conflict. Volumes become tmpfs mounts. Everything
// the image does not say is a default close to `runc spec` and
// `umoci unpack`: pid, network, ipc, uts and mount namespaces, the
// standard /proc, /dev, /sys mounts, three capabilities, masked and
// read-only /proc paths, no new privileges.
//
// The process section is what umoci 0.4.7 writes for the same image,
// with three deliberate differences, each for a reason given where it
// is implemented: TERM=xterm is only added for a terminal, an image's
// own HOME is never replaced, and a passwd or group entry whose id is
// missing or not a number is an error instead of id 0 (root).
//
// # User resolution
//
// The image's /etc/passwd and /etc/group are read through a
// FileReader, so the caller decides how (the CLI reads them from the
// layer index without mounting anything). Missing files are fine as
// long as the user and group are numeric; a name that is not there is
// an error (conversion.md: "If Config.User does not correspond to a
// user in the container's context, the converter MUST return an
// error").
//
// # Bundle directories
//
// Create makes the bundle: it checks that DIR is missing or empty,
// converts (so an image that cannot run leaves nothing behind), writes
// the marker DIR/.ocifs/bundle.json listing everything it is about to
// make, mounts the image at DIR/rootfs through a Mounter (the CLI's
// daemonizing FUSE mount, read-only, with devices and setuid) and writes
// DIR/config.json. With Writable the image is mounted at
// DIR/.ocifs/lower instead and a kernel overlayfs joins it with
// DIR/.ocifs/upper at DIR/rootfs, so the container writes to the upper
// directory and the layout's blobs stay as they are.
//
// Remove reads the marker, unmounts what is still mounted (overlay
// first), checks that nothing at all is mounted below DIR any more and
// only then deletes what the marker lists. A directory without a marker
// is refused, and a marker may only list the names Create uses, so a
// stray or edited marker cannot make Remove delete anything else. Any
// error in Create runs the same teardown: nothing is left mounted.
//
// # What it never does
//
// This package never parses tar and never serves FUSE itself: it reads
// the image through rootfs, and mounts it through a Mounter.
package bundle
