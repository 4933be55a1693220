//go:build !linux || !cgo

package daemonize

func readyFD() int { return -1 }

func daemonMount([]string) bool { return false }

// Forks reports whether this build forks its daemon before Go starts.
const Forks = false
