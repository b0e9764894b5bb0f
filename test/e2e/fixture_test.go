package e2e

import (
	"archive/tar"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

var updateFixtures = flag.Bool("update-fixtures", false, "rewrite examples/special-rootfs.tar.gz")

// specialRootfs is a tiny root file system with every kind of entry an
// output must carry: setuid and setgid files, hardlinks, symlinks (one
// dangling, one absolute), character and block devices, a FIFO, an
// extended attribute, files owned by another user, a sticky /tmp.
func specialRootfs() []byte {
	mt := time.Unix(1700000000, 0)
	type e struct {
		name, data, link string
		typ              byte
		mode             int64
		uid, gid         int
		major, minor     int64
		xattr            map[string]string
	}
	entries := []e{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./bin", typ: tar.TypeSymlink, link: "usr/bin"},
		{name: "./dev/", typ: tar.TypeDir, mode: 0o755},
		{name: "./dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		{name: "./dev/zero", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 5},
		{name: "./dev/loop0", typ: tar.TypeBlock, mode: 0o660, gid: 6, major: 7, minor: 0},
		{name: "./etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "./etc/fstab", typ: tar.TypeReg, mode: 0o644, data: "LABEL=special / ext4 defaults 0 1\n"},
		{name: "./etc/group", typ: tar.TypeReg, mode: 0o644, data: "root:x:0:\ntty:x:5:\ndisk:x:6:\nshadow:x:42:\nappl:x:1000:\n"},
		{name: "./etc/localtime", typ: tar.TypeSymlink, link: "/usr/share/zoneinfo/UTC"},
		{name: "./etc/os-release", typ: tar.TypeReg, mode: 0o644, data: "ID=special\nNAME=\"imgplan special\"\n", xattr: map[string]string{"user.imgplan": "example"}},
		{name: "./etc/passwd", typ: tar.TypeReg, mode: 0o644, data: "root:x:0:0:root:/root:/bin/sh\nappl:x:1000:1000::/home/appl:/sbin/nologin\n"},
		{name: "./etc/shadow", typ: tar.TypeReg, mode: 0o640, gid: 42, data: "root:*:19000:0:99999:7:::\nappl:!:19000:0:99999:7:::\n"},
		{name: "./home/", typ: tar.TypeDir, mode: 0o755},
		{name: "./home/appl/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		{name: "./home/appl/.profile", typ: tar.TypeReg, mode: 0o644, uid: 1000, gid: 1000, data: "umask 027\n"},
		{name: "./root/", typ: tar.TypeDir, mode: 0o700},
		{name: "./run/", typ: tar.TypeDir, mode: 0o755},
		{name: "./run/initctl", typ: tar.TypeFifo, mode: 0o600},
		{name: "./tmp/", typ: tar.TypeDir, mode: 0o1777},
		{name: "./usr/", typ: tar.TypeDir, mode: 0o755},
		{name: "./usr/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "./usr/bin/gzip", typ: tar.TypeReg, mode: 0o755, data: "#!/bin/sh\necho gzip \"$@\"\n"},
		{name: "./usr/bin/gunzip", typ: tar.TypeLink, link: "./usr/bin/gzip"},
		{name: "./usr/bin/zcat", typ: tar.TypeLink, link: "./usr/bin/gzip"},
		{name: "./usr/bin/su", typ: tar.TypeReg, mode: 0o4755, data: "#!/bin/sh\necho su\n"},
		{name: "./usr/bin/wall", typ: tar.TypeReg, mode: 0o2755, gid: 5, data: "#!/bin/sh\necho wall\n"},
		{name: "./usr/share/", typ: tar.TypeDir, mode: 0o755},
		{name: "./usr/share/doc/", typ: tar.TypeDir, mode: 0o755},
		{name: "./usr/share/doc/README", typ: tar.TypeReg, mode: 0o644, data: "A root file system with every kind of file.\n"},
	}
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	for _, x := range entries {
		h := &tar.Header{Name: x.name, Typeflag: x.typ, Mode: x.mode, Uid: x.uid, Gid: x.gid, Linkname: x.link,
			Size: int64(len(x.data)), ModTime: mt, Devmajor: x.major, Devminor: x.minor, Format: tar.FormatPAX}
		if x.typ == tar.TypeSymlink || x.typ == tar.TypeLink {
			h.Mode = 0o777
		}
		for k, v := range x.xattr {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		tw.WriteHeader(h)
		tw.Write([]byte(x.data))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// TestSpecialRootfsIsCurrent keeps the committed fixture equal to what
// specialRootfs makes (-update-fixtures rewrites it).
func TestSpecialRootfsIsCurrent(t *testing.T) {
	path := filepath.Join(repo, "examples/special-rootfs.tar.gz")
	want := specialRootfs()
	if *updateFixtures {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s is not current (%v): go test ./test/e2e -run TestSpecialRootfsIsCurrent -update-fixtures", path, err)
	}
}
