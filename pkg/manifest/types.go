// Package manifest reads imgplan manifests: strict decoding that reports
// every problem at once with its file:line:column, extends merging,
// --set overrides, validation and the JSON Schema of the format.
//
// The Go types here are the format. Each field's `doc` tag is its
// documentation; the JSON Schema (imgplan schema) is generated from them.
package manifest

// APIVersion is the only manifest format version this code reads.
const APIVersion = "imgplan/v1"

// Manifest is one image, after extends and overrides are resolved.
//
// Top-level keys starting with "x-" are ignored: they hold values to be
// reused through YAML anchors, as in compose files.
type Manifest struct {
	Meta `yaml:"-" json:"-"`

	APIVersion  string    `yaml:"apiVersion" json:"apiVersion" doc:"Format version; must be \"imgplan/v1\"." required:"true"`
	Name        string    `yaml:"name" json:"name" doc:"Image name: lowercase letters, digits, '.', '_' and '-'. Names the default output directory; never part of a stage key." required:"true"`
	Description string    `yaml:"description" json:"description,omitempty" doc:"Free text for people."`
	Extends     string    `yaml:"extends" json:"extends,omitempty" doc:"Path of a base manifest (relative to this file) whose settings this one inherits; see docs/manifest.md for the merge rules."`
	Epoch       *int64    `yaml:"epoch" json:"epoch,omitempty" doc:"SOURCE_DATE_EPOCH for the image: every clamped timestamp, and UUIDs and seeds derived from it. The SOURCE_DATE_EPOCH environment variable overrides it; the default is 0."`
	Bootstrap   Bootstrap `yaml:"bootstrap" json:"bootstrap" doc:"How the base tree is created." required:"true"`
	Packages    Packages  `yaml:"packages" json:"packages" doc:"Packages installed and removed after the bootstrap, with the image's package manager."`
	Hostname    string    `yaml:"hostname" json:"hostname,omitempty" doc:"Written to /etc/hostname (and /etc/sysconfig/network on sysvinit RPM systems)."`
	Timezone    string    `yaml:"timezone" json:"timezone,omitempty" doc:"Olson zone name, e.g. Asia/Shanghai; sets /etc/localtime from the image's own zoneinfo."`
	Locale      string    `yaml:"locale" json:"locale,omitempty" doc:"Default locale, e.g. en_US.UTF-8; generated if the image has locale-gen."`
	Files       []File    `yaml:"files" json:"files,omitempty" doc:"Files, directories, symlinks and trees overlaid on the image, applied in order; later entries win."`
	Fstab       Fstab     `yaml:"fstab" json:"fstab" doc:"Edits to /etc/fstab, applied after files."`
	Groups      []Group   `yaml:"groups" json:"groups,omitempty" doc:"Groups to create or change; applied before users."`
	Users       []User    `yaml:"users" json:"users,omitempty" doc:"Users to create or change (an existing user such as root is changed in place)."`
	Services    Services  `yaml:"services" json:"services" doc:"Services enabled and disabled at boot (systemd units or sysvinit scripts)."`
	Run         []Hook    `yaml:"run" json:"run,omitempty" doc:"Scripts run at named phases: the escape hatch for what the manifest cannot say."`
	Layout      *Layout   `yaml:"layout" json:"layout,omitempty" doc:"Partition layout for disk outputs (raw, qcow2, vmdk, vhd)."`
	Outputs     []Output  `yaml:"outputs" json:"outputs,omitempty" doc:"What the build writes. Each output is its own cached stage. A manifest without outputs builds its tree only (useful for a base)."`

	// Resolved by Load, not written in YAML.

	// Path is the file the manifest was loaded from.
	Path string `yaml:"-" json:"-"`
	// Chain lists the files read, this one first, then its bases.
	Chain []string `yaml:"-" json:"-"`
}

// Bootstrap creates the base tree.
type Bootstrap struct {
	Meta `yaml:"-" json:"-"`

	Distro     string      `yaml:"distro" json:"distro" doc:"debian, ubuntu (mmdebstrap); centos, rocky, almalinux, fedora (dnf); tarball (an existing rootfs archive); directory (an existing tree)." required:"true"`
	Release    string      `yaml:"release" json:"release,omitempty" doc:"Suite or release: bookworm, noble, 6.3, 9, 40. Required for package-based distros."`
	Arch       Arch        `yaml:"arch" json:"arch,omitempty" doc:"Architecture (amd64 or x86_64, arm64 or aarch64, ...). Default: the build host's."`
	Mirror     string      `yaml:"mirror" json:"mirror,omitempty" doc:"Base URL of the distribution's package archive. Default for debian/ubuntu: the tool's own default or the host's configured sources. Required for RPM distros."`
	Variant    string      `yaml:"variant" json:"variant,omitempty" doc:"debian/ubuntu: mmdebstrap variant (minbase, required, important, standard, buildd). Default minbase."`
	Components []string    `yaml:"components" json:"components,omitempty" doc:"debian/ubuntu: archive components. Default [main]."`
	Packages   []string    `yaml:"packages" json:"packages,omitempty" doc:"Extra packages installed by the bootstrap itself."`
	Groups     []string    `yaml:"groups" json:"groups,omitempty" doc:"RPM distros: comps groups to install, e.g. [core]."`
	Exclude    []string    `yaml:"exclude" json:"exclude,omitempty" doc:"RPM distros: package name globs never installed, e.g. [\"*i686*\"]."`
	Repos      []Repo      `yaml:"repos" json:"repos,omitempty" doc:"Extra repositories, used by the bootstrap and by packages."`
	GPGCheck   *bool       `yaml:"gpgcheck" json:"gpgcheck,omitempty" doc:"RPM distros: check package signatures. Default true."`
	GPGKeys    []LocalPath `yaml:"gpgkeys" json:"gpgkeys,omitzero" doc:"Key files (relative to the manifest) trusted for the archive: apt keyrings or RPM GPG keys."`
	Source     LocalPath   `yaml:"source" json:"source,omitzero" doc:"tarball: path of a rootfs archive (.tar, .tar.gz, .tar.xz, .tar.zst); directory: path of a tree. Relative to the manifest."`
}

// Repo is an extra package repository.
type Repo struct {
	Meta `yaml:"-" json:"-"`

	Name       string    `yaml:"name" json:"name" doc:"Repository id." required:"true"`
	URL        string    `yaml:"url" json:"url" doc:"Base URL." required:"true"`
	Suite      string    `yaml:"suite" json:"suite,omitempty" doc:"debian/ubuntu: suite. Default: the bootstrap release."`
	Components []string  `yaml:"components" json:"components,omitempty" doc:"debian/ubuntu: components. Default [main]."`
	GPGKey     LocalPath `yaml:"gpgkey" json:"gpgkey,omitzero" doc:"Key file (relative to the manifest) that signs this repository."`
	GPGCheck   *bool     `yaml:"gpgcheck" json:"gpgcheck,omitempty" doc:"RPM: check signatures of this repository's packages. Default: as bootstrap.gpgcheck."`
}

// Packages lists what the image's package manager installs and removes.
type Packages struct {
	Meta `yaml:"-" json:"-"`

	Install []string `yaml:"install" json:"install,omitempty" doc:"Package names (optionally name=version for apt, name-version for dnf)."`
	Remove  []string `yaml:"remove" json:"remove,omitempty" doc:"Packages removed (purged) after installation."`
}

// File is one entry overlaid on the image. Exactly one of src, content,
// symlink, tree, directory or remove says what it is.
type File struct {
	Meta `yaml:"-" json:"-"`

	Dest      string    `yaml:"dest" json:"dest" doc:"Absolute path in the image. Required, except for tree (default /)."`
	Src       LocalPath `yaml:"src" json:"src,omitzero" doc:"Local file copied to dest, relative to the manifest."`
	Content   *string   `yaml:"content" json:"content,omitempty" doc:"Inline content written to dest."`
	Symlink   string    `yaml:"symlink" json:"symlink,omitempty" doc:"dest becomes a symlink to this target (verbatim)."`
	Tree      LocalPath `yaml:"tree" json:"tree,omitzero" doc:"Local directory whose contents are copied under dest, relative to the manifest."`
	Directory bool      `yaml:"directory" json:"directory,omitempty" doc:"dest is created as a directory."`
	Remove    bool      `yaml:"remove" json:"remove,omitempty" doc:"dest is deleted from the image (recursively) if present."`
	Mode      *Mode     `yaml:"mode" json:"mode,omitempty" doc:"Permission bits in octal. Default: the source file's bits for src, 0644 for content, 0755 for directory. Entries of a tree keep their own bits."`
	Owner     string    `yaml:"owner" json:"owner,omitempty" doc:"Owner name (resolved in the image's /etc/passwd) or numeric uid. Default root."`
	Group     string    `yaml:"group" json:"group,omitempty" doc:"Group name (resolved in the image's /etc/group) or numeric gid. Default root."`
}

// Fstab edits /etc/fstab.
type Fstab struct {
	Meta `yaml:"-" json:"-"`

	Remove []string     `yaml:"remove" json:"remove,omitempty" doc:"Entries to delete: a path matches the mount point (\"/\", \"/boot\"), anything else the filesystem type (\"swap\", \"nfs\")."`
	Add    []FstabEntry `yaml:"add" json:"add,omitempty" doc:"Entries appended; an entry with the same mount point replaces the old one."`
}

// FstabEntry is one line of /etc/fstab.
type FstabEntry struct {
	Meta `yaml:"-" json:"-"`

	Spec    string `yaml:"spec" json:"spec" doc:"Device: /dev/..., LABEL=..., UUID=..., or a remote spec." required:"true"`
	File    string `yaml:"file" json:"file" doc:"Mount point (absolute), or none/swap for swap." required:"true"`
	Type    string `yaml:"type" json:"type" doc:"Filesystem type." required:"true"`
	Options string `yaml:"options" json:"options,omitempty" doc:"Mount options. Default defaults."`
	Dump    int    `yaml:"dump" json:"dump,omitempty" doc:"dump(8) frequency, 0 or 1."`
	Pass    int    `yaml:"pass" json:"pass,omitempty" doc:"fsck pass: 0, 1 (root) or 2."`
}

// User is an account created, or changed when it exists.
type User struct {
	Meta `yaml:"-" json:"-"`

	Name         string    `yaml:"name" json:"name" doc:"Login name." required:"true"`
	UID          *int64    `yaml:"uid" json:"uid,omitempty" doc:"Numeric uid. Default: the next free one."`
	Group        string    `yaml:"group" json:"group,omitempty" doc:"Primary group name. Default: a group named after the user."`
	Groups       []string  `yaml:"groups" json:"groups,omitempty" doc:"Supplementary groups (must exist in the image or in groups)."`
	Shell        string    `yaml:"shell" json:"shell,omitempty" doc:"Login shell, e.g. /sbin/nologin."`
	Home         string    `yaml:"home" json:"home,omitempty" doc:"Home directory. Default /home/<name> (/root for root)."`
	CreateHome   *bool     `yaml:"create_home" json:"create_home,omitempty" doc:"Create the home directory. Default true for new non-system users."`
	Comment      string    `yaml:"comment" json:"comment,omitempty" doc:"GECOS field."`
	System       bool      `yaml:"system" json:"system,omitempty" doc:"Create as a system account (uid below 1000, no home by default)."`
	PasswordHash string    `yaml:"password_hash" json:"password_hash,omitempty" doc:"crypt(3) hash ($6$..., $y$..., $5$...) or ! / * to lock. Never a plain password."`
	PasswordFile LocalPath `yaml:"password_file" json:"password_file,omitzero" doc:"File (relative to the manifest) holding the hash, read at build time and kept out of plans, logs and cache metadata."`
}

// Group is a group created, or changed when it exists.
type Group struct {
	Meta `yaml:"-" json:"-"`

	Name    string   `yaml:"name" json:"name" doc:"Group name." required:"true"`
	GID     *int64   `yaml:"gid" json:"gid,omitempty" doc:"Numeric gid. Default: the next free one."`
	System  bool     `yaml:"system" json:"system,omitempty" doc:"Create as a system group."`
	Members []string `yaml:"members" json:"members,omitempty" doc:"Users added to the group."`
}

// Services enables and disables services.
type Services struct {
	Meta `yaml:"-" json:"-"`

	Enable  []string `yaml:"enable" json:"enable,omitempty" doc:"Services started at boot: systemd unit names (\".service\" may be left out) or sysvinit script names."`
	Disable []string `yaml:"disable" json:"disable,omitempty" doc:"Services not started at boot."`
}

// Hook runs a script at a phase of the build.
type Hook struct {
	Meta `yaml:"-" json:"-"`

	Phase  string      `yaml:"phase" json:"phase" doc:"When: post-bootstrap, post-packages, post-system, post-users, post-files, post-fstab or post-services." required:"true"`
	Script LocalPath   `yaml:"script" json:"script,omitzero" doc:"Script file, relative to the manifest. A chrooted hook runs with the image as / and the manifest's directory mounted read-only at $IMGPLAN_MANIFEST_DIR (its working directory); that whole directory (but .git and imgplan output directories) is part of the stage key."`
	Inline string      `yaml:"inline" json:"inline,omitempty" doc:"Script text (run by /bin/sh -e) instead of a file."`
	Chroot *bool       `yaml:"chroot" json:"chroot,omitempty" doc:"Run inside the image (default true). false runs on the host with IMGPLAN_ROOT set to the tree."`
	Inputs []LocalPath `yaml:"inputs" json:"inputs,omitzero" doc:"Further local files or directories outside the manifest's directory the script reads, relative to the manifest; they are part of the stage key and visible read-only under $IMGPLAN_INPUTS."`
}

// Layout is a disk's partition table.
type Layout struct {
	Meta `yaml:"-" json:"-"`

	Table      string      `yaml:"table" json:"table" doc:"Partition table: msdos or gpt." required:"true"`
	Size       *Size       `yaml:"size" json:"size,omitempty" doc:"Disk size. Default: the partitions' fixed sizes plus room for the tree in the rest partition."`
	Partitions []Partition `yaml:"partitions" json:"partitions" doc:"Partitions, in disk order." required:"true"`
	Cmdline    string      `yaml:"cmdline" json:"cmdline,omitempty" doc:"Kernel command line the boot loader passes after root=UUID=... ro (e.g. \"console=ttyS0,115200n8 quiet\")."`
}

// Partition is one partition of a Layout.
type Partition struct {
	Meta `yaml:"-" json:"-"`

	Name    string   `yaml:"name" json:"name" doc:"Unique name; the GPT partition name." required:"true"`
	Size    Extent   `yaml:"size" json:"size" doc:"Size (\"430MiB\"), share of the disk (\"50%\"), or \"rest\" (at most one partition)." required:"true"`
	Type    string   `yaml:"type" json:"type,omitempty" doc:"linux (default), swap, esp, bios_grub, a GPT type GUID, or an MBR type byte (\"0x83\")."`
	FS      string   `yaml:"fs" json:"fs,omitempty" doc:"Filesystem: ext4, vfat, swap, or none (xfs is not built yet). Default: ext4, swap for type swap, vfat for esp, none for bios_grub."`
	Mount   string   `yaml:"mount" json:"mount,omitempty" doc:"Mount point in the image; the subtree under it goes into this partition."`
	Label   string   `yaml:"label" json:"label,omitempty" doc:"Filesystem label."`
	UUID    string   `yaml:"uuid" json:"uuid,omitempty" doc:"Filesystem UUID. Default: derived from the stage key."`
	Flags   []string `yaml:"flags" json:"flags,omitempty" doc:"boot, legacy_boot."`
	Options string   `yaml:"options" json:"options,omitempty" doc:"Mount options in the generated fstab. Default defaults."`
}
