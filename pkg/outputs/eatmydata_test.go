package outputs

import "testing"

// The preloaded library must be the host's architecture's (with several
// multiarch copies installed, ld.so would ignore the wrong one).
func TestEatmydataMatchesHost(t *testing.T) {
	lib := eatmydata()
	if lib == "" {
		t.Skip("libeatmydata is not installed (scripts/deps.sh installs it)")
	}
	got, err := elfMachine(lib)
	if err != nil {
		t.Fatal(err)
	}
	want, err := elfMachine("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("%s is for %v, this host runs %v", lib, got, want)
	}
}
