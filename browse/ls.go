package browse

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ocifs/ocifs/overlay"
	"github.com/ocifs/ocifs/rootfs"
)

// ListOptions tunes List. The zero value lists names only, like ls -1.
type ListOptions struct {
	// Long prints one `ls -l` line per name: mode, links, owner,
	// group, size (or major, minor), mtime and name, with "-> target"
	// for symlinks. Times are UTC, as --time-style=long-iso prints them.
	Long bool
	// Recursive lists every directory below too, each under a
	// "/path:" header, like ls -R.
	Recursive bool
	// Numeric prints uid and gid as numbers. Otherwise they are named
	// from the image's own /etc/passwd and /etc/group, when present;
	// never from the host's.
	Numeric bool
}

// maxAccountFile bounds the /etc/passwd and /etc/group read for names:
// anything larger is not worth reading for a listing.
const maxAccountFile = 1 << 20

// List writes the listing of name to w: the children of a directory,
// sorted by name, or one line for anything else. As with ls, a symlink
// named on the command line is followed unless Long is set (or name
// ends in "/").
func List(w io.Writer, r *rootfs.RootFS, name string, opts ListOptions) error {
	res, err := resolve(r.Tree, name, !opts.Long)
	if err != nil {
		return fmt.Errorf("ls: %w", err)
	}
	l := &lister{r: r, opts: opts, w: bufio.NewWriter(w)}
	if !opts.Numeric && opts.Long {
		l.users = l.accounts("etc/passwd")
		l.groups = l.accounts("etc/group")
	}
	if !res.node.IsDir() {
		label := strings.TrimLeft(name, "/")
		if label == "" {
			label = "/"
		}
		l.lines([]overlay.DirEntry{{Name: label, Node: res.node}})
	} else if err := l.dir(res.path, res.node, false); err != nil {
		return err
	}
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("ls %q: %w", name, err)
	}
	return nil
}

type lister struct {
	r             *rootfs.RootFS
	opts          ListOptions
	w             *bufio.Writer
	users, groups map[int]string
}

// dir lists one directory and, with Recursive, those below it.
func (l *lister) dir(p string, n *overlay.Node, blank bool) error {
	kids := l.r.Tree.ReadDir(n)
	if l.opts.Recursive {
		if blank {
			l.w.WriteString("\n")
		}
		fmt.Fprintf(l.w, "%s:\n", displayPath(p))
	}
	l.lines(kids)
	if !l.opts.Recursive {
		return nil
	}
	for _, de := range kids {
		if de.Node.IsDir() {
			if err := l.dir(joinPath(p, de.Name), de.Node, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// lines prints des, aligning the columns of a long listing the way ls
// does: widths are per listing.
func (l *lister) lines(des []overlay.DirEntry) {
	if !l.opts.Long {
		for _, de := range des {
			fmt.Fprintln(l.w, de.Name)
		}
		return
	}
	type row struct{ mode, nlink, user, group, size, mtime, name string }
	rows := make([]row, len(des))
	var wl, wu, wg, ws int
	for i, de := range des {
		e := de.Node.Entry
		rw := row{
			mode:  ModeString(e.Type, e.Mode),
			nlink: strconv.FormatUint(uint64(de.Node.Nlink), 10),
			user:  l.name(l.users, e.UID),
			group: l.name(l.groups, e.GID),
			size:  strconv.FormatInt(e.Size, 10),
			mtime: e.ModTime().UTC().Format("2006-01-02 15:04"),
			name:  de.Name,
		}
		switch e.Type {
		case tar.TypeChar, tar.TypeBlock:
			rw.size = fmt.Sprintf("%d, %d", e.Devmajor, e.Devminor)
		case tar.TypeSymlink:
			rw.size = strconv.Itoa(len(e.Linkname)) // what lstat(2) says
			rw.name += " -> " + e.Linkname
		}
		wl, wu, wg, ws = max(wl, len(rw.nlink)), max(wu, len(rw.user)), max(wg, len(rw.group)), max(ws, len(rw.size))
		rows[i] = rw
	}
	for _, rw := range rows {
		fmt.Fprintf(l.w, "%s %*s %-*s %-*s %*s %s %s\n", rw.mode, wl, rw.nlink, wu, rw.user, wg, rw.group, ws, rw.size, rw.mtime, rw.name)
	}
}

func (l *lister) name(names map[int]string, id int) string {
	if s, ok := names[id]; ok {
		return s
	}
	return strconv.Itoa(id)
}

// accounts reads "name:x:id:..." lines of an account file of the
// image (/etc/passwd or /etc/group) into id -> name, the first name
// winning as in getpwuid(3). Anything unreadable gives no names.
func (l *lister) accounts(p string) map[int]string {
	res, err := resolve(l.r.Tree, p, true)
	if err != nil || res.node.Entry.Type != tar.TypeReg || res.node.Entry.Size > maxAccountFile {
		return nil
	}
	var buf bytes.Buffer
	if err := copyContents(&buf, l.r, res.node, make([]byte, res.node.Entry.Size)); err != nil {
		return nil
	}
	names := map[int]string{}
	for line := range strings.SplitSeq(buf.String(), "\n") {
		f := strings.SplitN(line, ":", 4)
		if len(f) < 4 || f[0] == "" {
			continue
		}
		id, err := strconv.Atoi(f[2])
		if _, dup := names[id]; err == nil && !dup {
			names[id] = f[0]
		}
	}
	return names
}

// ModeString formats a type and mode like ls -l: the type letter, then
// rwx for owner, group and others, with s/S for setuid and setgid and
// t/T for sticky.
func ModeString(typ byte, mode uint32) string {
	b := []byte("?rwxrwxrwx")
	switch typ {
	case tar.TypeReg:
		b[0] = '-'
	case tar.TypeDir:
		b[0] = 'd'
	case tar.TypeSymlink:
		b[0] = 'l'
	case tar.TypeChar:
		b[0] = 'c'
	case tar.TypeBlock:
		b[0] = 'b'
	case tar.TypeFifo:
		b[0] = 'p'
	}
	for i := range 9 {
		if mode&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(bit uint32, pos int, lower, upper byte) {
		if mode&bit == 0 {
			return
		}
		if b[pos] == 'x' {
			b[pos] = lower
		} else {
			b[pos] = upper
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}

// typeName names an entry type in stat and diff output.
func typeName(typ byte) string {
	switch typ {
	case tar.TypeReg:
		return "file"
	case tar.TypeDir:
		return "dir"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeChar:
		return "chardev"
	case tar.TypeBlock:
		return "blockdev"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("type %q", typ)
}

// joinPath joins a tree path and a name.
func joinPath(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}
