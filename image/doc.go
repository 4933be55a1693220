// Package image opens image sources and resolves a reference to one
// image: reference → source (layout directory, oci-archive,
// docker-archive; a registry is wired in elsewhere) → index.json →
// (nested) image index → manifest → config → layers. Resolution works
// over the Source interface only, so nothing above this package knows
// which source it has.
//
// # What it owns
//
//   - Validating a layout: the oci-layout file and its
//     imageLayoutVersion, and index.json (image-layout.md).
//   - Parsing references (PATH, PATH:TAG, PATH@DIGEST, oci:PATH[:TAG],
//     oci-archive:PATH[:TAG], docker-archive:PATH[:REPO:TAG|:@N],
//     docker://HOST/REPO[:TAG|@DIGEST]) and resolving them through tags (org.opencontainers.image.ref.name,
//     image-layout.md, "index.json file"), digests, nested image indexes
//     and platforms (image-index.md).
//   - Reading manifests, indexes and configs, verifying each one's
//     digest and size before it is decoded (descriptor.md, "Digests").
//   - Blob access: a Blob is an io.ReaderAt over one file opened once,
//     checked to be a regular file of the descriptor's size, or over a
//     section of an archive's one open file.
//   - Archives: one scan of the tar headers, refusing members named
//     outside the archive, duplicates, sparse or truncated members; a
//     docker-archive's manifest.json mapped to made-up manifests.
//   - Knowing which layer media types ocifs can read, OCI and Docker
//     (media-types.md).
//   - The registry Source (OpenRegistry): oras-go for the distribution
//     protocol, bearer and basic auth and the credential stores
//     (containers-auth.json(5), Docker's config.json and its helpers),
//     TLS as containers-certs.d(5) lays out --cert-dir; layers read
//     lazily with Range requests through internal/httprange.
//
// # What it never does
//
// It never decompresses or parses layer contents (that is tarindex),
// never writes to a layout, an archive or a registry, never extracts an
// archive, and its layouts and archives never fetch: a blob missing from
// them is an error, not a download.
//
// # Errors
//
// Errors are one line naming the operation and the object, and wrap one
// of the Err* sentinels where a caller may want to tell cases apart,
// e.g. errors.Is(err, image.ErrBlobNotFound).
package image
