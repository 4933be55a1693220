//go:build unix && !linux

package cachefile

// populate: MAP_POPULATE is Linux only; elsewhere pages fault in on the
// first read.
func populate(bool) int { return 0 }
