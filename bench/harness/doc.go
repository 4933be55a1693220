// Package harness runs the end-to-end benchmarks of ocifs against the
// tools a user would otherwise pick, on the same generated images, in
// one run, and writes the results as JSON, as the generated section of
// docs/benchmarks.md and as gnuplot plots.
//
// # How it measures
//
// Every timed step is one external command (bash -c, so the fork/exec
// of bash, about a millisecond, is in every number alike), timed with
// the monotonic clock from its start to its exit. Methods of a scenario
// run round-robin, one repetition of each in turn, so that a busy
// period of the machine hits them alike; each row keeps all its
// samples, and tables show the median with the min–max range. A
// repetition has an untimed setup (unmount, drop the kernel caches,
// mount) and may have several timed steps: a first pass and a second
// pass over the same mount.
//
// "Cold" means the page, dentry and inode caches were dropped
// (echo 3 > /proc/sys/vm/drop_caches, root only) and a FUSE daemon was
// freshly started; "warm" is the same command again right after.
//
// # What it never does
//
// It never kills a process it did not start and never unmounts
// anything outside its own work directory. Every mount it makes is
// undone on the way out, also after an error or an interrupt.
package harness
