package stages

import "testing"

func TestEditFstab(t *testing.T) {
	old := "# /etc/fstab: static file system information.\n" +
		"UUID=1234 / ext4 errors=remount-ro 0 1\n" +
		"UUID=5678 none swap sw 0 0\n" +
		"/dev/sr0 /media/cdrom0 udf,iso9660 user,noauto 0 0\n" +
		"\n" +
		"tmpfs /tmp tmpfs defaults 0 0\n"
	got := string(EditFstab([]byte(old), FstabParams{
		Remove: []string{"/", "swap"},
		Add: []FstabEntry{
			{Spec: "LABEL=data", File: "/data", Type: "ext4", Options: "defaults", Pass: 2},
			{Spec: "tmpfs", File: "/tmp", Type: "tmpfs", Options: "size=1g", Dump: 0, Pass: 0},
		},
	}))
	want := "# /etc/fstab: static file system information.\n" +
		"/dev/sr0 /media/cdrom0 udf,iso9660 user,noauto 0 0\n" +
		"\n" +
		"tmpfs\t/tmp\ttmpfs\tsize=1g\t0\t0\n" +
		"LABEL=data\t/data\text4\tdefaults\t0\t2\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := string(EditFstab(nil, FstabParams{Add: []FstabEntry{{Spec: "a", File: "/b", Type: "c", Options: "defaults"}}})); got != "a\t/b\tc\tdefaults\t0\t0\n" {
		t.Errorf("from nothing: %q", got)
	}
	if got := EditFstab([]byte("UUID=1 / ext4 defaults 0 1\n"), FstabParams{Remove: []string{"/"}}); got != nil {
		t.Errorf("all removed: %q", got)
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"6.1.0-9-amd64", "6.1.0-10-amd64", true},
		{"6.1.0-10-amd64", "6.1.0-9-amd64", false},
		{"5.10.0-28-amd64", "6.1.0-1-amd64", true},
		{"6.1.0-18-cloud-amd64", "6.1.0-18-cloud-amd64", false},
		{"2.6.32-279.el6.x86_64", "2.6.32-358.el6.x86_64", true},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
