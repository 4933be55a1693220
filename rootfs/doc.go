// Package rootfs opens an image's merged root filesystem: it resolves
// the reference (package image), loads or builds each layer's index
// through the cache, in parallel (package tarindex), merges the indexes
// (package overlay) and serves file contents from the blobs.
//
// It is what mount, bundle and the browsing commands share. It never
// touches FUSE and never prints: progress and warnings go to the
// callbacks and the logger in Options.
package rootfs
