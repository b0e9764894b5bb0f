package fsroot

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

const passwd = `# /etc/passwd of a test image
#olduser:x:5000:5000::/:/bin/sh

root:x:0:0:root:/root:/bin/bash
   # indented comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
+nisuser::::::
broken:x:12
app:x:1000:1001:App,,,:/home/app:/bin/sh
dup:x:2000:2000::/:/bin/sh
dup:x:2001:2001::/:/bin/sh
badid:x:abc:1::/:/bin/sh
neg:x:-5:1::/:/bin/sh
crlf:x:3000:3001::/:/bin/sh` + "\r\n" + `noeol:x:4000:4001::/:/bin/sh`

const group = `# groups
#oldgroup:x:5000:
root:x:0:

wheel:x:10:root,app
appgroup:x:1001:app
odd:x:
badgid:x:zz:
1234:x:77:
`

func TestLookupUser(t *testing.T) {
	r, _ := newRoot(t, map[string]ent{"etc/passwd": file(passwd, 0o644)})
	tests := []struct {
		name          string
		wantUID, wGID int
		wantErr       error
		wantMsg       string
	}{
		{name: "root", wantUID: 0, wGID: 0},
		{name: "app", wantUID: 1000, wGID: 1001},
		{name: "daemon", wantUID: 1, wGID: 1},
		{name: "dup", wantUID: 2000, wGID: 2000}, // first entry wins, as in glibc
		{name: "crlf", wantUID: 3000, wGID: 3001},
		{name: "noeol", wantUID: 4000, wGID: 4001},
		{name: "1000", wantUID: 1000, wGID: 1001}, // numeric: the entry's group
		{name: "4242", wantUID: 4242, wGID: 0},    // numeric without entry
		{name: "0", wantUID: 0, wGID: 0},
		{name: "appl", wantErr: ErrUnknownName, wantMsg: `user "appl" is not in the image's /etc/passwd`},
		{name: "broken", wantErr: ErrUnknownName},   // malformed line skipped
		{name: "+nisuser", wantErr: ErrUnknownName}, // NIS compat line skipped
		{name: "# /etc/passwd of a test image", wantErr: ErrUnknownName},
		{name: "#olduser", wantErr: ErrUnknownName}, // commented out
		{name: "5000", wantUID: 5000, wGID: 0},      // ... so its uid has no entry
		{name: "badid", wantErr: errAny, wantMsg: `user "badid" has an invalid uid "abc" in the image's /etc/passwd`},
		{name: "neg", wantErr: errAny},
		{name: "-1", wantErr: ErrUnknownName},
		{name: "4294967295", wantErr: ErrUnknownName}, // the kernel's "unchanged"
		{name: "", wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, gid, err := r.LookupUser(tt.name)
			check(t, err, tt.wantErr)
			if tt.wantMsg != "" && (err == nil || err.Error() != tt.wantMsg) {
				t.Errorf("error %q, want %q", err, tt.wantMsg)
			}
			if err == nil && (uid != tt.wantUID || gid != tt.wGID) {
				t.Errorf("got %d:%d, want %d:%d", uid, gid, tt.wantUID, tt.wGID)
			}
		})
	}
}

func TestLookupGroup(t *testing.T) {
	r, _ := newRoot(t, map[string]ent{"etc/group": file(group, 0o644)})
	tests := []struct {
		name    string
		want    int
		wantErr error
		wantMsg string
	}{
		{name: "root", want: 0},
		{name: "wheel", want: 10},
		{name: "appgroup", want: 1001},
		{name: "77", want: 77},     // numeric is a gid, even if a group is named "77"
		{name: "1234", want: 1234}, // ... or a group is named "1234"
		{name: "app", wantErr: ErrUnknownName, wantMsg: `group "app" is not in the image's /etc/group`},
		{name: "odd", wantErr: ErrUnknownName},
		{name: "#oldgroup", wantErr: ErrUnknownName},
		{name: "badgid", wantErr: errAny},
		{name: "", wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gid, err := r.LookupGroup(tt.name)
			check(t, err, tt.wantErr)
			if tt.wantMsg != "" && (err == nil || err.Error() != tt.wantMsg) {
				t.Errorf("error %q, want %q", err, tt.wantMsg)
			}
			if err == nil && gid != tt.want {
				t.Errorf("got %d, want %d", gid, tt.want)
			}
		})
	}
}

// TestLookupFiles: missing databases are errors except for numeric ids, and
// the databases are read inside the root like any other path.
func TestLookupFiles(t *testing.T) {
	r, _ := newRoot(t, map[string]ent{"etc": dir(0o755)})
	if _, _, err := r.LookupUser("root"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LookupUser without /etc/passwd = %v, want not exist", err)
	}
	if uid, gid, err := r.LookupUser("33"); err != nil || uid != 33 || gid != 0 {
		t.Errorf("LookupUser(33) without /etc/passwd = %d:%d, %v", uid, gid, err)
	}
	if _, err := r.LookupGroup("root"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LookupGroup without /etc/group = %v, want not exist", err)
	}

	// The image's /etc points at the host's /etc, whose passwd has root:
	// inside the root that chain is a loop, so the lookup must fail.
	r2, _ := newRoot(t, map[string]ent{"etc": link(strings.Repeat("../", 30) + "etc")})
	if uid, _, err := r2.LookupUser("root"); err == nil {
		t.Errorf("LookupUser read the host's /etc/passwd (uid %d)", uid)
	}
	f := adversarial(t)
	if _, _, err := f.r.LookupUser("root"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LookupUser through /etc -> sentinel = %v, want not exist", err)
	}
}
