package fsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
)

// ErrUnknownName reports a user or group name the image does not define.
var ErrUnknownName = errors.New("unknown user or group")

type unknownNameError struct{ kind, name, file string }

func (e *unknownNameError) Error() string {
	return fmt.Sprintf("%s %q is not in the image's %s", e.kind, e.name, e.file)
}

func (e *unknownNameError) Is(target error) bool { return target == ErrUnknownName }

// LookupUser returns the uid and primary gid of user name from the image's
// /etc/passwd. A numeric name is a uid that needs no entry; its gid is the
// entry's if there is one and otherwise 0, as Docker and runc do for
// "USER 1000", rather than a guessed group that may belong to someone else.
func (r *Root) LookupUser(name string) (uid, gid int, err error) {
	const file = "/etc/passwd"
	if name == "" {
		return 0, 0, errors.New("look up user: empty name")
	}
	id, numeric := parseID(name)
	var found []string
	err = r.scanAccounts(file, 7, func(f []string) bool {
		if f[0] == name || numeric && f[2] == name {
			found = f
			return true
		}
		return false
	})
	if err != nil && !(numeric && errors.Is(err, fs.ErrNotExist)) {
		return 0, 0, err
	}
	if found == nil {
		if numeric {
			return id, 0, nil
		}
		return 0, 0, &unknownNameError{"user", name, file}
	}
	uid, ok := parseID(found[2])
	if !ok {
		return 0, 0, fmt.Errorf("user %q has an invalid uid %q in the image's %s", found[0], found[2], file)
	}
	gid, ok = parseID(found[3])
	if !ok {
		return 0, 0, fmt.Errorf("user %q has an invalid gid %q in the image's %s", found[0], found[3], file)
	}
	return uid, gid, nil
}

// LookupGroup returns the gid of group name from the image's /etc/group. A
// numeric name is a gid and needs no entry.
func (r *Root) LookupGroup(name string) (gid int, err error) {
	const file = "/etc/group"
	if name == "" {
		return 0, errors.New("look up group: empty name")
	}
	if id, ok := parseID(name); ok {
		return id, nil
	}
	var found []string
	err = r.scanAccounts(file, 4, func(f []string) bool {
		if f[0] == name {
			found = f
			return true
		}
		return false
	})
	if err != nil {
		return 0, err
	}
	if found == nil {
		return 0, &unknownNameError{"group", name, file}
	}
	gid, ok := parseID(found[2])
	if !ok {
		return 0, fmt.Errorf("group %q has an invalid gid %q in the image's %s", name, found[2], file)
	}
	return gid, nil
}

// scanAccounts calls match with the fields of each entry of an account file
// until it returns true. Like glibc, it skips comments, blank lines, NIS
// "+"/"-" lines and lines with the wrong number of fields instead of
// failing every lookup over one bad line.
func (r *Root) scanAccounts(file string, fields int, match func([]string) bool) error {
	data, err := r.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read the image's %s: %w", file, err)
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		if t := strings.TrimSpace(line); t == "" || t[0] == '#' || t[0] == '+' || t[0] == '-' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != fields {
			continue
		}
		if match(f) {
			return nil
		}
	}
	return nil
}

// parseID parses a decimal uid or gid; -1 (4294967295) is reserved by the
// kernel for "unchanged".
func parseID(s string) (int, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == math.MaxUint32 {
		return 0, false
	}
	return int(n), true
}
