// Package gen writes large OCI image layouts for the end-to-end
// benchmarks, reproducibly from a seed.
//
// # What an image looks like
//
// Four layers shaped like a real application image: a Debian-like base
// (configs in /etc with /etc/os-release, binaries and shared libraries
// with their symlinks and a few hardlinks, docs, man pages, locales,
// headers, dpkg lists), a runtime layer (a Python tree with bytecode and
// a deeply nested node_modules), an application layer (deep source
// tree, static assets, a few very large data files) and a small config
// layer. The upper layers delete files and whole directories of the
// lower ones with whiteouts and make some directories opaque
// (image-spec layer.md, "Whiteouts"). Text-like files compress about
// 3:1, binaries about 1.7:1 and data files not at all.
//
// Every layer is written once as a tar stream that is compressed twice
// on the fly: gzip for the image tagged "gzip" and zstd for the image
// tagged "zstd". Both images share the config (their diff_ids are the
// same), so the two manifests differ only in their layer descriptors.
//
// # What it never does
//
// It never holds a layer in memory: the plan (names, sizes, links) is
// built first, then each layer is streamed from the plan through tar,
// the two compressors and the digests straight into the blob files.
// It never depends on the scheduling: every layer draws its contents
// from its own random stream, so the bytes depend only on the seed, the
// number of files and the byte budget.
package gen
