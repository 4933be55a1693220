package bundle

import "github.com/moby/sys/mountinfo"

// mountsUnder returns the mount points at or below dir, an absolute
// path without symlinks, in mount-table order (deepest last).
func mountsUnder(dir string) ([]string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, err
	}
	points := make([]string, len(mounts))
	for i, m := range mounts {
		points[i] = m.Mountpoint
	}
	return points, nil
}

// isMountPoint reports whether path, absolute and without symlinks, is
// a mount point. It reads the mount table rather than stat'ing path,
// which would fail on a FUSE mount whose daemon is gone.
func isMountPoint(path string) (bool, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(path))
	return len(mounts) > 0, err
}
