package main

import (
	"strings"
	"testing"
)

// TestCacheUsage: cache commands called wrongly exit with status 2 and
// say why; on an empty store they report nothing to do.
func TestCacheUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cache", "gc", "--cache-dir", dir}, 2, "--max-size or --keep-duration"},
		{[]string{"cache", "gc", "--max-size", "lots", "--cache-dir", dir}, 2, "--max-size"},
		{[]string{"cache", "export", "--cache-dir", dir}, 2, "accepts 1 arg"},
		{[]string{"cache", "ls", "extra", "--cache-dir", dir}, 2, "unknown command"},
		{[]string{"cache", "gc", "--max-size", "1GiB", "--cache-dir", dir}, 0, "removed 0 objects"},
		{[]string{"cache", "du", "--cache-dir", dir}, 0, ""},
		{[]string{"cache", "verify", "--cache-dir", dir}, 0, "0 objects intact, 0 altered"},
		{[]string{"apply", "x.yaml", "--cache-from", "http://127.0.0.1:1/UPPER/Case", "--cache-dir", dir}, 2, "cache repository"},
	} {
		out, errOut, code := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q\n%s%s", strings.Join(tc.args, " "), code, tc.code, tc.want, out, errOut)
		}
	}
}
