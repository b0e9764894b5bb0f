package manifest

import "sort"

// Family is how a distribution is bootstrapped and how its packages are
// managed.
type Family string

// The families.
const (
	FamilyDeb       Family = "deb"       // mmdebstrap, apt
	FamilyRPM       Family = "rpm"       // dnf --installroot
	FamilyTarball   Family = "tarball"   // unpack an archive
	FamilyDirectory Family = "directory" // copy a tree
)

// Distro describes one bootstrap.distro value.
type Distro struct {
	Family Family
	// Fields lists the bootstrap keys this distro accepts besides distro.
	Fields []string
	// Required lists the keys it needs.
	Required []string
}

var (
	debFields = []string{"release", "arch", "mirror", "variant", "components", "packages", "repos", "gpgkeys"}
	rpmFields = []string{"release", "arch", "mirror", "packages", "groups", "exclude", "repos", "gpgcheck", "gpgkeys"}
)

// Distros is the one table of valid bootstrap.distro names; pkg/stages keys
// its bootstrappers by Family.
var Distros = map[string]Distro{
	"debian":    {Family: FamilyDeb, Fields: debFields, Required: []string{"release"}},
	"ubuntu":    {Family: FamilyDeb, Fields: debFields, Required: []string{"release"}},
	"centos":    {Family: FamilyRPM, Fields: rpmFields, Required: []string{"release", "mirror"}},
	"rocky":     {Family: FamilyRPM, Fields: rpmFields, Required: []string{"release", "mirror"}},
	"almalinux": {Family: FamilyRPM, Fields: rpmFields, Required: []string{"release", "mirror"}},
	"fedora":    {Family: FamilyRPM, Fields: rpmFields, Required: []string{"release", "mirror"}},
	"tarball":   {Family: FamilyTarball, Fields: []string{"source", "arch"}, Required: []string{"source"}},
	"directory": {Family: FamilyDirectory, Fields: []string{"source", "arch"}, Required: []string{"source"}},
}

// DistroNames is the sorted list of bootstrap.distro values.
func DistroNames() []string {
	out := make([]string, 0, len(Distros))
	for n := range Distros {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Family of the manifest's distro ("" when the distro is unknown).
func (b Bootstrap) Family() Family { return Distros[b.Distro].Family }

// debVariants are mmdebstrap's variants that make a bootable system.
var debVariants = []string{"minbase", "required", "important", "standard", "buildd", "essential", "apt"}

// Stages lists the rootfs stages in build order, most stable first. It is
// the one source of stage and phase names: a hook's phase is "post-" and a
// stage name; pkg/stages keys its builders by these names. Users come
// before files so that files can be owned by the users a manifest creates
// and be written into their homes.
var Stages = []string{"bootstrap", "packages", "system", "users", "files", "fstab", "services"}

// Phases lists the valid hook phases.
func Phases() []string {
	out := make([]string, len(Stages))
	for i, s := range Stages {
		out[i] = "post-" + s
	}
	return out
}
