package cachefile

import "syscall"

// mapFlags populates the mapping in the mmap call: one system call
// instead of a page fault per 4 KiB page on the first read, which is
// what every caller does next (it checks the whole file's checksum).
const mapFlags = syscall.MAP_SHARED | syscall.MAP_POPULATE
