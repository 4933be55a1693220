package fs

import (
	"sync"
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
// go-fuse answers with an empty listing. So withHandle gives each
// listing a handle of go-fuse's, as if the kernel had opened one.
type noOpendir struct {
	fuse.RawFileSystem
	kernel atomic.Uint64 // the INIT flags the kernel sent

	mu      sync.Mutex
	resumes map[uint64]uint64 // directory node ID -> handle of a listing under way
}

// maxResumes bounds the listings kept open between requests (each
// holds its directory's names); beyond it one is released, and a later
// request for it lists the directory afresh.
const maxResumes = 16

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

// withHandle runs a READDIR or READDIRPLUS on a handle of go-fuse's
// when the kernel sent none. A listing takes many requests (one per
// 32 KiB of dirents), so the handle stays open from one to the next:
// opening a handle per request would list the directory again each
// time, which is quadratic in its size (a 100k-entry directory took
// 31 s). A kept handle serves any offset (go-fuse seeks its listing),
// since the kernel asks again for entries a small getdents buffer had
// no room for, and again at the end. Nothing says when a listing is
// over, so handles are kept until more than maxResumes are, or until
// an error.
func (r *noOpendir) withHandle(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList,
	read func(<-chan struct{}, *fuse.ReadIn, *fuse.DirEntryList) fuse.Status) fuse.Status {
	if in.Fh != 0 {
		return read(cancel, in, out)
	}
	fh, ok := r.take(in.NodeId)
	if !ok {
		var opened fuse.OpenOut
		open := fuse.OpenIn{InHeader: in.InHeader, Flags: syscall.O_RDONLY | syscall.O_DIRECTORY}
		if st := r.RawFileSystem.OpenDir(cancel, &open, &opened); !st.Ok() {
			return st
		}
		fh = opened.Fh
	}
	withFh := *in
	withFh.Fh = fh
	st := read(cancel, &withFh, out)
	if st.Ok() {
		r.keep(in.NodeId, fh, in.InHeader)
	} else {
		r.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: in.InHeader, Fh: fh})
	}
	return st
}

// take removes and returns the kept handle of directory k, if any.
func (r *noOpendir) take(k uint64) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fh, ok := r.resumes[k]
	delete(r.resumes, k)
	return fh, ok
}

// keep stores the handle of a listing of directory k that goes on,
// releasing one kept before (two listings at once) or one of many.
func (r *noOpendir) keep(k, fh uint64, h fuse.InHeader) {
	var drop []uint64
	r.mu.Lock()
	if r.resumes == nil {
		r.resumes = map[uint64]uint64{}
	}
	if old, ok := r.resumes[k]; ok {
		drop = append(drop, old)
	}
	r.resumes[k] = fh
	for other, ofh := range r.resumes {
		if len(r.resumes) <= maxResumes {
			break
		}
		if other != k {
			delete(r.resumes, other)
			drop = append(drop, ofh)
		}
	}
	r.mu.Unlock()
	for _, d := range drop {
		r.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: h, Fh: d})
	}
}
