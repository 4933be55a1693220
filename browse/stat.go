package browse

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/ocifs/ocifs/rootfs"
	"github.com/ocifs/ocifs/tarindex"
)

// Info is everything the index knows about one path of the merged
// tree, and where it comes from. It is the --json output of ocifs stat.
type Info struct {
	Path       string      `json:"path"` // in the merged tree, with parent symlinks followed
	Type       string      `json:"type"` // file, dir, symlink, chardev, blockdev, fifo
	Mode       uint32      `json:"mode"` // permission bits, setuid, setgid, sticky
	ModeString string      `json:"modeString"`
	UID        int         `json:"uid"`
	GID        int         `json:"gid"`
	Size       int64       `json:"size"`
	Mtime      int64       `json:"mtime"`     // seconds since the epoch
	MtimeNsec  uint32      `json:"mtimeNsec"` // and nanoseconds within the second
	Linkname   string      `json:"linkTarget,omitempty"`
	Devmajor   uint32      `json:"devMajor,omitempty"`
	Devminor   uint32      `json:"devMinor,omitempty"`
	Xattrs     []XattrInfo `json:"xattrs,omitempty"`
	Inode      uint64      `json:"inode"` // the node ID, the inode number of a mount
	Nlink      uint32      `json:"nlink"`
	Sparse     *SparseInfo `json:"sparse,omitempty"`
	// Layer provides the entry; nil for a directory no layer lists
	// (created implicitly as a parent).
	Layer *LayerRef `json:"layer"`
	// History lists, lowest layer first, every entry of any layer that
	// names this path or hides it: the entries it overrides, whiteouts
	// of it or of a parent, opaque markers of a parent. See Stat for
	// what it cannot see.
	History []LayerEvent `json:"history"`
}

// XattrInfo is one extended attribute. Value holds it when it is valid
// UTF-8; otherwise Base64 does.
type XattrInfo struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Base64 []byte `json:"base64,omitempty"`
}

// SparseInfo summarises a sparse file's map.
type SparseInfo struct {
	Regions   int   `json:"regions"`   // data regions
	DataBytes int64 `json:"dataBytes"` // bytes stored; the rest are holes
}

// LayerRef names a layer and an entry in it. Layers are numbered from
// 1, lowest first, in manifest order.
type LayerRef struct {
	Index  int           `json:"index"`
	Digest digest.Digest `json:"digest"`
	Name   string        `json:"name"` // the entry's name in that layer's tar
}

// Event kinds of LayerEvent.
const (
	EventEntry    = "entry"    // an entry for the path itself
	EventHardlink = "hardlink" // a hardlink entry for the path
	EventWhiteout = "whiteout" // ".wh.<base>" of the path or of a parent
	EventOpaque   = "opaque"   // ".wh..wh..opq" in a parent directory
)

// LayerEvent is one entry of a layer that concerns a path.
type LayerEvent struct {
	LayerRef
	Kind     string `json:"kind"`
	Type     string `json:"type,omitempty"`     // EventEntry: the entry's type
	Target   string `json:"target,omitempty"`   // what the whiteout, marker or hardlink names
	Provides bool   `json:"provides,omitempty"` // this entry is what the tree shows
}

// Stat describes name without following a last symlink (like lstat;
// a trailing "/" follows it).
//
// The history is found by name: each layer's entries are matched
// against the path the tree shows (and against the providing entry's
// own name, for a hardlink). Entry names are the names in each layer's
// tar, so an entry that reached the path through a parent symlink (the
// layer wrote "lib/x" while "lib" was a symlink to "usr/lib") is not
// listed under "usr/lib/x"; it is listed under "lib/x" if that name
// still exists.
func Stat(ctx context.Context, r *rootfs.RootFS, name string) (*Info, error) {
	res, err := resolve(r.Tree, name, false)
	if err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	n, e := res.node, res.node.Entry
	info := &Info{
		Path:       displayPath(res.path),
		Type:       typeName(e.Type),
		Mode:       e.Mode,
		ModeString: ModeString(e.Type, e.Mode),
		UID:        e.UID,
		GID:        e.GID,
		Size:       e.Size,
		Mtime:      e.Mtime,
		MtimeNsec:  e.MtimeNsec,
		Linkname:   e.Linkname,
		Devmajor:   e.Devmajor,
		Devminor:   e.Devminor,
		Inode:      n.ID,
		Nlink:      n.Nlink,
	}
	if e.Type == tar.TypeSymlink {
		info.Size = int64(len(e.Linkname))
	}
	for _, x := range e.Xattrs {
		xi := XattrInfo{Key: x.Key}
		if utf8.ValidString(x.Value) {
			xi.Value = x.Value
		} else {
			xi.Base64 = []byte(x.Value)
		}
		info.Xattrs = append(info.Xattrs, xi)
	}
	if e.Sparse != nil {
		info.Sparse = &SparseInfo{Regions: len(e.Sparse)}
		for _, s := range e.Sparse {
			info.Sparse.DataBytes += s.Length
		}
	}
	if n.Layer >= 0 {
		info.Layer = &LayerRef{Index: n.Layer + 1, Digest: r.Layers[n.Layer].Descriptor.Digest, Name: e.Name}
	}
	if info.History, err = history(ctx, r, res.path, n.Layer, e); err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	return info, nil
}

// history scans every layer's entries for those that concern p.
func history(ctx context.Context, r *rootfs.RootFS, p string, layer int, provider *tarindex.Entry) ([]LayerEvent, error) {
	names := map[string]bool{p: true}
	if layer >= 0 {
		names[provider.Name] = true
	}
	// Whiteouts of p or of a parent, and opaque markers of a parent.
	whiteouts := map[string]string{}
	opaques := map[string]string{}
	for q := p; q != "."; q = path.Dir(q) {
		dir, base := path.Split(q)
		whiteouts[dir+".wh."+base] = q
		parent := path.Dir(q)
		opaques[joinPath(parent, ".wh..wh..opq")] = parent
	}
	for n := range names {
		if n != p && n != "." {
			dir, base := path.Split(n)
			whiteouts[dir+".wh."+base] = n
		}
	}
	var events []LayerEvent
	for i := range r.Layers {
		entries, err := r.Entries(ctx, i)
		if err != nil {
			return nil, err
		}
		ref := LayerRef{Index: i + 1, Digest: r.Layers[i].Descriptor.Digest}
		for j := range entries {
			e := &entries[j]
			ev := LayerEvent{LayerRef: ref}
			ev.Name = e.Name
			switch {
			case names[e.Name] && e.Type == tar.TypeLink:
				ev.Kind, ev.Target = EventHardlink, "/"+e.Linkname
			case names[e.Name]:
				ev.Kind, ev.Type = EventEntry, typeName(e.Type)
				// The overlay may hand out a filtered copy of the
				// entry, so compare what identifies it in its layer.
				ev.Provides = i == layer && e.Name == provider.Name && e.Offset == provider.Offset
			case whiteouts[e.Name] != "":
				ev.Kind, ev.Target = EventWhiteout, displayPath(whiteouts[e.Name])
			case opaques[e.Name] != "":
				ev.Kind, ev.Target = EventOpaque, displayPath(opaques[e.Name])
			default:
				continue
			}
			events = append(events, ev)
		}
	}
	return events, nil
}

// WriteText prints info for people, one field a line.
func (info *Info) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Path:\t%s\n", info.Path)
	fmt.Fprintf(tw, "Type:\t%s\n", info.Type)
	fmt.Fprintf(tw, "Mode:\t%04o (%s)\n", info.Mode, info.ModeString)
	fmt.Fprintf(tw, "Owner:\t%d:%d\n", info.UID, info.GID)
	fmt.Fprintf(tw, "Size:\t%d\n", info.Size)
	fmt.Fprintf(tw, "Mtime:\t%s (%d.%09d s)\n", time.Unix(info.Mtime, int64(info.MtimeNsec)).UTC().Format(time.RFC3339Nano), info.Mtime, info.MtimeNsec)
	if info.Linkname != "" {
		fmt.Fprintf(tw, "Link target:\t%s\n", info.Linkname)
	}
	if info.Type == "chardev" || info.Type == "blockdev" {
		fmt.Fprintf(tw, "Device:\t%d, %d\n", info.Devmajor, info.Devminor)
	}
	fmt.Fprintf(tw, "Inode:\t%d\n", info.Inode)
	fmt.Fprintf(tw, "Links:\t%d\n", info.Nlink)
	if s := info.Sparse; s != nil {
		fmt.Fprintf(tw, "Sparse:\t%d data regions, %d bytes of data, %d of holes\n", s.Regions, s.DataBytes, info.Size-s.DataBytes)
	}
	if l := info.Layer; l != nil {
		fmt.Fprintf(tw, "Layer:\t%d %s (entry %q)\n", l.Index, l.Digest, l.Name)
	} else {
		fmt.Fprintf(tw, "Layer:\tnone (a parent directory no layer lists)\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(info.Xattrs) > 0 {
		fmt.Fprintln(w, "Xattrs:")
		for _, x := range info.Xattrs {
			if x.Base64 != nil {
				fmt.Fprintf(w, "  %s=%q\n", x.Key, x.Base64)
			} else {
				fmt.Fprintf(w, "  %s=%q\n", x.Key, x.Value)
			}
		}
	}
	fmt.Fprintln(w, "History:")
	for _, ev := range info.History {
		var what string
		switch ev.Kind {
		case EventEntry:
			what = ev.Type
			if ev.Provides {
				what += " (shown)"
			}
		case EventHardlink:
			what = "hardlink to " + ev.Target
		case EventWhiteout:
			what = "whiteout of " + ev.Target
		case EventOpaque:
			what = "opaque marker in " + ev.Target
		}
		_, err := fmt.Fprintf(w, "  layer %d %s  %s: %s\n", ev.Index, ev.Digest.Encoded()[:12], ev.Name, what)
		if err != nil {
			return err
		}
	}
	return nil
}
