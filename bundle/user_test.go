package bundle

import (
	"errors"
	"io/fs"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// mapFiles is a FileReader over an in-memory root.
type mapFiles map[string]string

func (m mapFiles) ReadFile(name string) ([]byte, error) {
	s, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return []byte(s), nil
}

// errFiles fails every read with err.
type errFiles struct{ err error }

func (e errFiles) ReadFile(string) ([]byte, error) { return nil, e.err }

// testPasswd and testGroup are the files of the image the umoci
// vectors below were taken from (umoci 0.4.7, `umoci config
// --config.user=X` then `umoci unpack`), minus the malformed lines,
// which have vectors of their own.
const (
	testPasswd = `root:x:0:0:root:/root:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
nohome:x:1002:1002:::/bin/sh
# comment line
bad line without colons
`
	testGroup = `root:x:0:
users:x:100:alice,bob
alice:x:1000:
staff:x:50:alice
wheel:x:10:bob,alice,dave
empty:x:60:
`
)

func TestResolveUser(t *testing.T) {
	files := mapFiles{PasswdPath: testPasswd, GroupPath: testGroup}
	// Every vector without a comment is what umoci 0.4.7 wrote into
	// config.json for the same User against the same files; home is
	// the HOME it added.
	vectors := []struct {
		name string
		spec string
		want specs.User
		home string
	}{
		{"empty is root", "", specs.User{UID: 0, GID: 0}, "/root"},
		{"root by name", "root", specs.User{UID: 0, GID: 0}, "/root"},
		{"name", "alice", specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{100, 50, 10}}, "/home/alice"},
		{"name with empty group", "alice:", specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{100, 50, 10}}, "/home/alice"},
		{"listed uid", "1000", specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{100, 50, 10}}, "/home/alice"},
		{"primary group is a member group", "bob", specs.User{UID: 1001, GID: 100, AdditionalGids: []uint32{100, 10}}, "/home/bob"},
		{"listed uid, other user", "1001", specs.User{UID: 1001, GID: 100, AdditionalGids: []uint32{100, 10}}, "/home/bob"},
		{"no home", "nohome", specs.User{UID: 1002, GID: 1002}, ""},
		{"unlisted uid", "5000", specs.User{UID: 5000, GID: 0}, ""},
		{"uid:gid", "1000:50", specs.User{UID: 1000, GID: 50}, "/home/alice"},
		{"unlisted uid:gid", "5000:5000", specs.User{UID: 5000, GID: 5000}, ""},
		{"name:group", "alice:staff", specs.User{UID: 1000, GID: 50}, "/home/alice"},
		{"uid:group", "1000:staff", specs.User{UID: 1000, GID: 50}, "/home/alice"},
		{"name:gid", "alice:50", specs.User{UID: 1000, GID: 50}, "/home/alice"},
		{"group only", ":50", specs.User{UID: 0, GID: 50}, "/root"},
		{"group name only", ":staff", specs.User{UID: 0, GID: 50}, "/root"},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveUser(tc.spec, files)
			if err != nil {
				t.Fatalf("resolveUser(%q) error: %v", tc.spec, err)
			}
			if !reflect.DeepEqual(got.user, tc.want) || got.home != tc.home {
				t.Errorf("resolveUser(%q) = %+v home %q, want %+v home %q", tc.spec, got.user, got.home, tc.want, tc.home)
			}
		})
	}
}

func TestResolveUserWhiteSpace(t *testing.T) {
	// libcontainer trims each line and skips blank ones; so do we.
	files := mapFiles{
		PasswdPath: "\n  bob:x:1001:100::/home/bob:/bin/sh  \r\n\n",
		GroupPath:  "\t users:x:100:alice,bob\nwheel:x:10:bob\n",
	}
	got, err := resolveUser("bob", files)
	if err != nil {
		t.Fatalf("resolveUser(%q) error: %v", "bob", err)
	}
	want := specs.User{UID: 1001, GID: 100, AdditionalGids: []uint32{100, 10}}
	if !reflect.DeepEqual(got.user, want) || got.home != "/home/bob" {
		t.Errorf("resolveUser(%q) = %+v home %q, want %+v home %q", "bob", got.user, got.home, want, "/home/bob")
	}
}

func TestResolveUserNoFiles(t *testing.T) {
	// An image without /etc/passwd and /etc/group: numeric ids
	// resolve (umoci: 5000 → 5000:0, no HOME), names do not.
	for _, files := range []FileReader{nil, mapFiles{}} {
		for _, tc := range []struct {
			spec string
			want specs.User
		}{
			{"", specs.User{}},
			{"5000", specs.User{UID: 5000}},
			{"5000:6000", specs.User{UID: 5000, GID: 6000}},
			{":7", specs.User{GID: 7}},
		} {
			got, err := resolveUser(tc.spec, files)
			if err != nil {
				t.Fatalf("resolveUser(%q) with %T error: %v", tc.spec, files, err)
			}
			if !reflect.DeepEqual(got.user, tc.want) || got.home != "" {
				t.Errorf("resolveUser(%q) with %T = %+v home %q, want %+v", tc.spec, files, got.user, got.home, tc.want)
			}
		}
		if _, err := resolveUser("alice", files); !errors.Is(err, ErrUnknownUser) {
			t.Errorf("resolveUser(%q) with %T error = %v, want %v", "alice", files, err, ErrUnknownUser)
		}
		if _, err := resolveUser("0:staff", files); !errors.Is(err, ErrUnknownGroup) {
			t.Errorf("resolveUser(%q) with %T error = %v, want %v", "0:staff", files, err, ErrUnknownGroup)
		}
	}
}

func TestResolveUserErrors(t *testing.T) {
	files := mapFiles{
		PasswdPath: testPasswd +
			"carol:x:notanumber:5:c:/c:/bin/sh\n" +
			"dave:x:1003\n" +
			"erin:x:1004:-1::/e:/bin/sh\n" +
			"huge:x:4294967295:1::/h:/bin/sh\n",
		GroupPath: testGroup +
			"broken:x:abc:alice\n" +
			"nogid:x\n",
	}
	vectors := []struct {
		name string
		spec string
		want error
	}{
		// umoci: "unable to find user nobody: no matching entries
		// in passwd file".
		{"unknown user", "nobody", ErrUnknownUser},
		// umoci: "unable to find group nogroup".
		{"unknown group", "alice:nogroup", ErrUnknownGroup},
		{"unknown group, numeric user", "1000:nogroup", ErrUnknownGroup},
		// umoci runs carol as uid 0 (libcontainer reads a bad number
		// as 0); we refuse.
		{"uid not a number", "carol", ErrMalformedEntry},
		// umoci runs dave as 1003:0; we refuse a missing gid.
		{"gid missing", "dave", ErrMalformedEntry},
		{"negative gid", "erin", ErrMalformedEntry},
		{"uid above range in file", "huge", ErrMalformedEntry},
		{"group gid not a number", "alice:broken", ErrMalformedEntry},
		{"group gid missing", "alice:nogid", ErrMalformedEntry},
		// libcontainer: "uid out of range" / "gid out of range".
		{"negative uid", "-1", ErrIDOutOfRange},
		{"uid above range", "2147483648", ErrIDOutOfRange},
		{"gid above range", "0:99999999999", ErrIDOutOfRange},
		{"comment is no user", "# comment line", ErrUnknownUser},
	}
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveUser(tc.spec, files)
			if !errors.Is(err, tc.want) {
				t.Fatalf("resolveUser(%q) = %+v, %v; want error %v", tc.spec, got, err, tc.want)
			}
		})
	}

	// A malformed group line that lists the user is skipped, not
	// fatal and not gid 0.
	got, err := resolveUser("alice", files)
	if err != nil {
		t.Fatalf("resolveUser(%q) error: %v", "alice", err)
	}
	if want := []uint32{100, 50, 10}; !reflect.DeepEqual(got.user.AdditionalGids, want) {
		t.Errorf("resolveUser(%q).AdditionalGids = %v, want %v", "alice", got.user.AdditionalGids, want)
	}

	// Read errors other than "does not exist" are reported.
	boom := errors.New("boom")
	if _, err := resolveUser("alice", errFiles{boom}); !errors.Is(err, boom) {
		t.Errorf("resolveUser with failing reader error = %v, want %v", err, boom)
	}
	// /etc/group is only read when it is needed.
	onlyPasswd := failingGroup{mapFiles{PasswdPath: testPasswd}}
	if _, err := resolveUser("5000", onlyPasswd); err != nil {
		t.Errorf("resolveUser(%q) read %s: %v", "5000", GroupPath, err)
	}
}

// failingGroup fails reads of /etc/group.
type failingGroup struct{ mapFiles }

func (f failingGroup) ReadFile(name string) ([]byte, error) {
	if name == GroupPath {
		return nil, errors.New("group read")
	}
	return f.mapFiles.ReadFile(name)
}

// FuzzResolveUser feeds arbitrary users and files: no panic, and any
// resolved id is in range.
func FuzzResolveUser(f *testing.F) {
	f.Add("alice", testPasswd, testGroup)
	f.Add("1000:staff", testPasswd, testGroup)
	f.Add(":50", "", "")
	f.Add("dave", "dave:x:1003\n", "g:x:1:dave,,\n")
	f.Fuzz(func(t *testing.T, spec, passwd, group string) {
		u, err := resolveUser(spec, mapFiles{PasswdPath: passwd, GroupPath: group})
		if err != nil {
			return
		}
		ids := append([]uint32{u.user.UID, u.user.GID}, u.user.AdditionalGids...)
		for _, id := range ids {
			if id > maxID {
				t.Fatalf("resolveUser(%q) gave id %d > %d", spec, id, maxID)
			}
		}
	})
}
