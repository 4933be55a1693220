package tarindex

import "time"

// Entry is one tar header of a layer, as recorded in the index.
//
// Entries keep the layer's own view: whiteout files (".wh.*") are
// recorded like any other regular file, because only the overlay knows
// what they mean (image-spec layer.md, "Whiteouts").
type Entry struct {
	// Name is the entry's path, cleaned as path.Clean("/"+hdr.Name)
	// with the leading slash removed, so "../x", "/x" and "./x" all
	// become "x" and nothing can name a place above the root (this is
	// what containerd's unpacker does). The root itself is ".", as in
	// io/fs.
	Name string

	// Type is the tar typeflag (archive/tar's TypeReg, TypeDir,
	// TypeSymlink, TypeLink, TypeChar, TypeBlock, TypeFifo). TypeRegA
	// and GNU sparse entries are recorded as TypeReg.
	Type byte

	// Mode holds the permission bits plus setuid, setgid and sticky
	// (hdr.Mode & 07777); the file type lives in Type.
	Mode uint32

	UID, GID int

	// Size is the logical size of a regular file (for sparse files the
	// size with holes). Zero for every other type.
	Size int64

	// Mtime is the modification time in seconds since the epoch and
	// MtimeNsec the nanoseconds within that second (0 to 999999999).
	// They are kept apart, not as int64 nanoseconds, because PAX mtimes
	// reach beyond what those hold (before 1678, after 2262): such
	// times keep their seconds exactly.
	Mtime     int64
	MtimeNsec uint32

	// Linkname is a symlink's target, verbatim, or a hardlink's
	// target cleaned like Name.
	Linkname string

	// Devmajor and Devminor are set for character and block devices.
	Devmajor, Devminor uint32

	// Xattrs are the PAX "SCHILY.xattr." records, sorted by key.
	Xattrs []Xattr

	// Offset is where the entry's data starts in the uncompressed tar
	// stream. For sparse files the data regions are stored there one
	// after another, in the order of Sparse.
	Offset int64

	// Sparse lists the data regions of a sparse file (GNU or PAX
	// sparse formats); everything else reads as zeros. Nil for
	// ordinary files.
	Sparse []SparseRegion
}

// ModTime returns the modification time.
func (e *Entry) ModTime() time.Time { return time.Unix(e.Mtime, int64(e.MtimeNsec)) }

// Xattr is one extended attribute.
type Xattr struct {
	Key   string
	Value string
}

// SparseRegion is a run of real data in a sparse file.
type SparseRegion struct {
	Offset int64 // logical offset in the file
	Length int64
}
