package cachefile

import "syscall"

func populate(on bool) int {
	if on {
		return syscall.MAP_POPULATE
	}
	return 0
}
