//go:build unix && !linux

package cachefile

import "syscall"

// mapFlags: MAP_POPULATE is Linux only; elsewhere pages fault in on the
// first read.
const mapFlags = syscall.MAP_SHARED
