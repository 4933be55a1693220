// Package cachefile holds the file handling every ocifs cache shares:
// layer indexes (tarindex) and merged trees (rootfs) are stored and
// loaded the same way, so a crash, a full disk or two processes at once
// have the same effect on each.
//
// # What it owns
//
// WriteAtomic replaces a cache file through a synced temporary file and
// a rename, so a reader sees the old file or the new one, never a
// partial one. Lock takes an advisory lock so that a second process
// waits for the first instead of building the same thing twice. Map
// maps a cache file read-only, because reading it instead costs more
// than everything else a mount does before its first byte (see Map).
//
// # What it never does
//
// It never decides what a file means or whether it is valid: callers
// check magic, version and checksum themselves, and rebuild a file they
// do not trust. It never deletes cache files and never writes a file in
// place (that is what keeps mappings of older versions valid).
//
// # Mapped files
//
// A mapping stays valid when its file is replaced or removed (the
// kernel keeps the old inode), but not when another process truncates
// the file in place: reading the missing pages then raises SIGBUS,
// which kills a Go program. Read mapped bytes inside CatchFault, which
// turns that into an error wrapping ErrFault, or copy what must
// outlive the check.
package cachefile
