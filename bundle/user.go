package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// FileReader reads a file of the image's root filesystem by absolute
// path. A file that does not exist is reported with an error that
// matches fs.ErrNotExist.
type FileReader interface {
	ReadFile(path string) ([]byte, error)
}

// The files user names are resolved through, inside the image.
const (
	PasswdPath = "/etc/passwd"
	GroupPath  = "/etc/group"
)

// maxID is the largest uid or gid accepted, as in libcontainer's user
// package (what runc and umoci use): ids above it are negative to
// parts of the kernel ABI and to many programs.
const maxID = math.MaxInt32

// execUser is what a Config.User resolves to.
type execUser struct {
	user specs.User
	home string // from the passwd entry; "" when there is none
}

// passwdEntry is one line of passwd(5):
// name:password:uid:gid:gecos:home:shell.
type passwdEntry struct {
	line     int // 1-based, for messages
	name     string
	uid, gid string // unparsed: only the entry asked for must be valid
	home     string
}

// groupEntry is one line of group(5): name:password:gid:members.
type groupEntry struct {
	line    int
	name    string
	gid     string
	members []string
}

// resolveUser resolves a Config.User value (config.md: "user", "uid",
// "user:group", "uid:gid", "uid:group", "user:gid", or empty) the way
// libcontainer's GetExecUser does for umoci and runc:
//
//   - The user part, when numeric, is matched against passwd uids, else
//     against names; empty means uid 0. A numeric uid need not be listed;
//     a name must.
//   - A listed user brings its primary gid and home.
//   - The group part, when given, replaces the gid (numeric gids need
//     not be listed, names must) and no supplementary groups are added
//     (config.md: "If group/gid is specified, supplementary groups from
//     the container are ignored").
//   - Otherwise every group whose member list names the user is added
//     to additionalGids, in file order. The primary group is not added
//     unless it lists the user too.
//
// Unlike libcontainer, an id field that is empty or not a number makes
// its entry unusable instead of reading as 0: a typo in an image's
// /etc/passwd must not run the container as root.
func resolveUser(spec string, files FileReader) (execUser, error) {
	userArg, groupArg, _ := strings.Cut(spec, ":")
	var eu execUser

	// The user's name, for the supplementary groups; "" when the user
	// is not in /etc/passwd.
	var name string

	passwd, err := readPasswd(files)
	if err != nil {
		return execUser{}, err
	}
	uidArg, uidNumeric, err := parseArgID(userArg, "uid")
	if err != nil {
		return execUser{}, err
	}
	var entry *passwdEntry
	for i := range passwd {
		e := &passwd[i]
		switch {
		case userArg == "":
			// No user: root, with root's home if the image has one.
			if id, ok := parseFileID(e.uid); ok && id == 0 {
				entry = e
			}
		case uidNumeric:
			if id, ok := parseFileID(e.uid); ok && id == uidArg {
				entry = e
			}
		case e.name == userArg:
			entry = e
		}
		if entry != nil {
			break
		}
	}
	switch {
	case entry != nil:
		uid, ok := parseFileID(entry.uid)
		if !ok {
			return execUser{}, fmt.Errorf("resolve user %q: %s line %d: uid %q: %w", userArg, PasswdPath, entry.line, entry.uid, ErrMalformedEntry)
		}
		gid, ok := parseFileID(entry.gid)
		if !ok {
			return execUser{}, fmt.Errorf("resolve user %q: %s line %d: gid %q: %w", userArg, PasswdPath, entry.line, entry.gid, ErrMalformedEntry)
		}
		eu.user.UID, eu.user.GID = uid, gid
		eu.home = entry.home
		name = entry.name
	case uidNumeric:
		eu.user.UID = uidArg
	case userArg != "":
		return execUser{}, fmt.Errorf("resolve user %q: %w", userArg, ErrUnknownUser)
	}

	if groupArg != "" {
		gid, err := resolveGroup(groupArg, files)
		if err != nil {
			return execUser{}, err
		}
		eu.user.GID = gid
		return eu, nil
	}
	if name == "" {
		return eu, nil
	}
	groups, err := readGroup(files)
	if err != nil {
		return execUser{}, err
	}
	for _, g := range groups {
		if !slices.Contains(g.members, name) {
			continue
		}
		// A malformed line that lists the user is skipped rather than
		// fatal: it cannot be honoured, and libcontainer would add gid 0.
		if gid, ok := parseFileID(g.gid); ok {
			eu.user.AdditionalGids = append(eu.user.AdditionalGids, gid)
		}
	}
	return eu, nil
}

// resolveGroup resolves the group part of Config.User.
func resolveGroup(groupArg string, files FileReader) (uint32, error) {
	gidArg, gidNumeric, err := parseArgID(groupArg, "gid")
	if err != nil {
		return 0, err
	}
	groups, err := readGroup(files)
	if err != nil {
		return 0, err
	}
	for _, g := range groups {
		gid, ok := parseFileID(g.gid)
		switch {
		case gidNumeric:
			if ok && gid == gidArg {
				return gid, nil
			}
		case g.name == groupArg:
			if !ok {
				return 0, fmt.Errorf("resolve group %q: %s line %d: gid %q: %w", groupArg, GroupPath, g.line, g.gid, ErrMalformedEntry)
			}
			return gid, nil
		}
	}
	if gidNumeric {
		return gidArg, nil
	}
	return 0, fmt.Errorf("resolve group %q: %w", groupArg, ErrUnknownGroup)
}

// parseArgID reports whether s, a part of Config.User, is numeric and
// if so its value. Like libcontainer, anything strconv.Atoi accepts is
// numeric, and a numeric id out of range is an error rather than a name.
func parseArgID(s, what string) (uint32, bool, error) {
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, false, nil
	}
	if n < 0 || n > maxID {
		return 0, false, fmt.Errorf("resolve %s %q: %w", what, s, ErrIDOutOfRange)
	}
	return uint32(n), true, nil
}

// parseFileID parses an id field of /etc/passwd or /etc/group. Only
// plain decimal numbers in range are ids.
func parseFileID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > maxID {
		return 0, false
	}
	return uint32(n), true
}

func readPasswd(files FileReader) ([]passwdEntry, error) {
	lines, err := readLines(files, PasswdPath)
	if err != nil {
		return nil, err
	}
	var entries []passwdEntry
	for i, line := range lines {
		f, ok := splitEntry(line)
		if !ok {
			continue
		}
		entries = append(entries, passwdEntry{
			line: i + 1,
			name: field(f, 0),
			uid:  field(f, 2),
			gid:  field(f, 3),
			home: field(f, 5),
		})
	}
	return entries, nil
}

func readGroup(files FileReader) ([]groupEntry, error) {
	lines, err := readLines(files, GroupPath)
	if err != nil {
		return nil, err
	}
	var entries []groupEntry
	for i, line := range lines {
		f, ok := splitEntry(line)
		if !ok {
			continue
		}
		var members []string
		if m := field(f, 3); m != "" {
			members = strings.Split(m, ",")
		}
		entries = append(entries, groupEntry{
			line:    i + 1,
			name:    field(f, 0),
			gid:     field(f, 2),
			members: members,
		})
	}
	return entries, nil
}

// readLines reads a file through files; a missing file (or no
// FileReader) has no lines.
func readLines(files FileReader, path string) ([]string, error) {
	if files == nil {
		return nil, nil
	}
	data, err := files.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	return strings.Split(string(data), "\n"), nil
}

// splitEntry splits a passwd or group line into its colon-separated
// fields. Surrounding white space is dropped, as libcontainer does;
// blank lines and comments (a "#" first) are no entries.
func splitEntry(line string) ([]string, bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return nil, false
	}
	return strings.Split(line, ":"), true
}

// field returns f[i], or "" for a field the line does not have: short
// lines are read as far as they go, like libcontainer does.
func field(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}
