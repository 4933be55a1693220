package fs

import (
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// noOpendir wraps go-fuse's node bridge so that the kernel opens
// directories itself, as it already opens files (see node.Open).
//
// A walk that has the whole tree in the kernel's caches (a second
// `find -ls`, or a second tar of the mount) still sends OPENDIR and
// RELEASEDIR for every directory: 25,000 round trips for an image of
// 100k files, most of the difference from a local disk. Answering the
// first OPENDIR with ENOSYS makes the kernel stop sending them for the
// whole mount (FUSE_NO_OPENDIR_SUPPORT, Linux 5.1) and give every
// directory it opens FOPEN_KEEP_CACHE|FOPEN_CACHE_DIR, which is what
// an immutable tree wants: a listing is read from us once and then
// served from the kernel's cache (fuse_file_open in fs/fuse/file.c).
//
// The kernel then sends READDIR and READDIRPLUS with handle 0, which
// go-fuse answers with an empty listing. So each such request gets a
// handle of its own for its duration: go-fuse opens the directory,
// seeks to the request's offset and lists from there, as it does for
// a handle the kernel opened.
type noOpendir struct {
	fuse.RawFileSystem
	kernel atomic.Uint64 // the INIT flags the kernel sent
}

func (r *noOpendir) Init(s *fuse.Server) {
	r.RawFileSystem.Init(s)
	r.kernel.Store(s.KernelSettings().Flags64())
}

func (r *noOpendir) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if r.kernel.Load()&fuse.CAP_NO_OPENDIR_SUPPORT != 0 {
		return fuse.ENOSYS
	}
	// An older kernel: open for real, and still cache the listing.
	st := r.RawFileSystem.OpenDir(cancel, in, out)
	if st.Ok() {
		out.OpenFlags |= fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	}
	return st
}

func (r *noOpendir) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.withHandle(cancel, in, out, r.RawFileSystem.ReadDir)
}

func (r *noOpendir) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.withHandle(cancel, in, out, r.RawFileSystem.ReadDirPlus)
}

// withHandle runs a READDIR or READDIRPLUS on a handle opened for it
// when the kernel sent none.
func (r *noOpendir) withHandle(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList,
	read func(<-chan struct{}, *fuse.ReadIn, *fuse.DirEntryList) fuse.Status) fuse.Status {
	if in.Fh != 0 {
		return read(cancel, in, out)
	}
	var opened fuse.OpenOut
	open := fuse.OpenIn{InHeader: in.InHeader, Flags: syscall.O_RDONLY | syscall.O_DIRECTORY}
	if st := r.RawFileSystem.OpenDir(cancel, &open, &opened); !st.Ok() {
		return st
	}
	defer r.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: in.InHeader, Fh: opened.Fh})
	withFh := *in
	withFh.Fh = opened.Fh
	return read(cancel, &withFh, out)
}
