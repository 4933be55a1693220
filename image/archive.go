package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"strings"
	"sync"
)

// Limits on what an archive's headers may make this package keep.
const (
	// maxMembers bounds the members of an archive: an image layout
	// has a few per blob, a docker save a few per layer.
	maxMembers = 1 << 17
	// maxLinkHops bounds how many symlinks or hard links lead to a
	// member's data.
	maxLinkHops = 8
)

// archive is a tar file whose regular members are served in place: the
// outer tar of an image archive is not compressed, so each member's
// data is a section of the file, found by one scan of the headers
// that skips the data without reading it. One file is opened and
// shared by every member read (pread, safe for concurrent use); it is
// closed when the archive and every blob opened from it are closed.
type archive struct {
	path    string
	f       *os.File
	members map[string]member

	mu     sync.Mutex
	refs   int  // the archive itself and each open blob
	closed bool // the archive's own reference is dropped
}

// member is one member of an archive, by its cleaned name.
type member struct {
	off, size int64
	// link, if set, is the member whose data this one is: a hard
	// link's target, or a symlink's resolved inside the archive
	// (docker save links a layer it has already written).
	link    string
	symlink bool
}

// openArchive opens path and scans its tar headers. It refuses an
// archive a careful reader cannot trust: a member named outside the
// archive (".."), two members of the same name, a member whose data
// runs past the end of the file, or a sparse member (whose data is not
// one section of the file).
func openArchive(path string) (*archive, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("open archive %q: %w", path, err)
	}
	a := &archive{path: path, f: f, members: map[string]member{}, refs: 1}
	if err := a.scan(); err != nil {
		f.Close()
		return nil, fmt.Errorf("open archive %q: %w", path, err)
	}
	return a, nil
}

func (a *archive) scan() error {
	fi, err := a.f.Stat()
	if err != nil {
		return err
	}
	tr := tar.NewReader(a.f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: read tar header: %w", ErrBadArchive, err)
		}
		switch {
		case isSparse(hdr):
			return fmt.Errorf("%w: member %q is a sparse file", ErrBadArchive, hdr.Name)
		case hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeLink && hdr.Typeflag != tar.TypeSymlink:
			continue // directories and devices hold no blob
		}
		name, err := cleanMember(hdr.Name)
		if err != nil {
			return err
		}
		var m member
		switch hdr.Typeflag {
		case tar.TypeReg:
			// tar.Reader reads headers in whole blocks and nothing
			// ahead, so the file's offset is now the data's.
			if m.off, err = a.f.Seek(0, io.SeekCurrent); err != nil {
				return err
			}
			m.size = hdr.Size
			if m.off+m.size > fi.Size() {
				return fmt.Errorf("%w: member %q runs past the end of the file (truncated?)", ErrBadArchive, hdr.Name)
			}
		case tar.TypeLink:
			if m.link, err = cleanMember(hdr.Linkname); err != nil {
				return err
			}
		case tar.TypeSymlink:
			// A symlink's target is relative to its directory; one
			// that leads out of the archive (or anywhere absolute) is
			// only looked up among the members, never on the host.
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			if m.link, err = cleanMember(target); err != nil {
				m.link = "" // dangling: opening it fails
			}
			m.symlink = true
		}
		if _, dup := a.members[name]; dup {
			return fmt.Errorf("%w: member %q appears twice", ErrBadArchive, name)
		}
		if len(a.members) >= maxMembers {
			return fmt.Errorf("%w: more than %d members", ErrBadArchive, maxMembers)
		}
		a.members[name] = m
	}
	return nil
}

// isSparse reports whether hdr is a GNU or PAX sparse file, whose data
// in the tar is not the file's bytes.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// cleanMember turns a member name into the slash-separated, relative
// form members are looked up by: "./a//b" and "/a/b" are "a/b". A name
// that leads outside the archive ("..", "a/../../b") is refused.
func cleanMember(name string) (string, error) {
	clean := path.Clean("/" + name)[1:]
	if strings.Contains(name, "\x00") || clean == "" {
		return "", fmt.Errorf("%w: member name %q", ErrBadArchive, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: member name %q leads outside the archive", ErrBadArchive, name)
		}
	}
	return clean, nil
}

// lookup returns the regular member name is or links to; the error
// for a missing member wraps iofs.ErrNotExist.
func (a *archive) lookup(name string) (member, error) {
	want := name
	for range maxLinkHops + 1 {
		m, ok := a.members[name]
		switch {
		case !ok:
			return member{}, fmt.Errorf("member %q of %q: %w", want, a.path, iofs.ErrNotExist)
		case m.symlink && m.link == "":
			return member{}, fmt.Errorf("member %q of %q: %w: a symlink leading out of the archive", want, a.path, ErrBadArchive)
		case m.link == "":
			return m, nil
		}
		name = m.link
	}
	return member{}, fmt.Errorf("member %q of %q: %w: more than %d links", want, a.path, ErrBadArchive, maxLinkHops)
}

// has reports whether the archive has a member name (of any kind).
func (a *archive) has(name string) bool {
	_, ok := a.members[name]
	return ok
}

// open opens the regular member name for random access.
func (a *archive) open(name string) (Blob, error) {
	m, err := a.lookup(name)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refs == 0 {
		return nil, fmt.Errorf("member %q of %q: %w", name, a.path, iofs.ErrClosed)
	}
	a.refs++
	return &memberBlob{SectionReader: io.NewSectionReader(a.f, m.off, m.size), a: a}, nil
}

// readSmall reads member name whole, at most maxJSONBlob bytes.
func (a *archive) readSmall(name string) ([]byte, error) {
	b, err := a.open(name)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return readSmall(b, a.where(name))
}

// where names member name for messages.
func (a *archive) where(name string) string { return a.path + ":" + name }

// close drops the archive's own reference to its file, once.
func (a *archive) close() error {
	a.mu.Lock()
	closed := a.closed
	a.closed = true
	a.mu.Unlock()
	if closed {
		return nil
	}
	return a.release()
}

func (a *archive) release() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refs == 0 {
		return nil
	}
	if a.refs--; a.refs == 0 {
		return a.f.Close()
	}
	return nil
}

// memberBlob is an archive member opened for random access.
type memberBlob struct {
	*io.SectionReader
	a    *archive
	once sync.Once
}

var _ Blob = (*memberBlob)(nil)

// Close releases the blob's hold on the archive's file.
func (b *memberBlob) Close() error {
	var err error
	b.once.Do(func() { err = b.a.release() })
	return err
}

// OpenOCIArchive opens an OCI image layout stored in a tar file, as
// "skopeo copy ... oci-archive:PATH" writes it (and the newer docker
// save, beside its manifest.json): the members oci-layout, index.json
// and blobs/ALG/HEX, read in place (image-layout.md).
func OpenOCIArchive(path string) (*Layout, error) {
	a, err := openArchive(path)
	if err != nil {
		return nil, err
	}
	l, err := newLayout(path, a)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("open archive %q: %w", path, err)
	}
	return l, nil
}

// archiveTransport tells which archive the tar file path is: an OCI
// layout if it has an oci-layout member, else a docker-archive if it
// has a manifest.json.
func archiveTransport(path string) (Transport, error) {
	a, err := openArchive(path)
	if err != nil {
		return "", err
	}
	defer a.close()
	switch {
	case a.has("oci-layout"):
		return TransportOCIArchive, nil
	case a.has(dockerManifestFile):
		return TransportDockerArchive, nil
	}
	return "", fmt.Errorf("open archive %q: %w: no oci-layout or %s member", path, ErrBadArchive, dockerManifestFile)
}
