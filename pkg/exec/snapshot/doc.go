// Package snapshot stacks stage layers: it mounts overlayfs over the committed
// layers of a stage's ancestors, and, where overlayfs is unavailable, builds
// the same layers by copying.
//
// # Layer format
//
// A layer is a directory in overlayfs upper-dir format, so one cache serves
// both ways of building:
//
//   - ordinary entries (files, directories, symlinks, devices, fifos, sockets)
//     with their mode, owner, times, xattrs and hardlinks within the layer;
//   - a deleted path is a whiteout: a character device 0:0;
//   - a directory whose lower contents are hidden carries the xattr
//     trusted.overlay.opaque = "y".
//
// The layer's root directory carries the metadata of the merged root, as
// overlayfs takes the root's attributes from the topmost layer.
//
// No other trusted.overlay.* xattr belongs in a layer. Overlay mounts are made
// with index, metacopy and redirect_dir off, so the kernel never writes the
// ones that change meaning (redirect, metacopy); it still writes bookkeeping
// ones (origin, impure), which [Normalize] strips before a layer is committed.
//
// # Two ways to build a layer
//
// With overlayfs: [InitUpper], [MountOverlay] with an upper dir, run the
// stage, [Unmount], [Normalize] the upper dir.
//
// Without: [Materialize] the lowers into a private directory, run the stage
// there, then [Diff] it against the returned [Baseline] into an empty layer
// directory. [ApplyLayer] reads layers of either origin.
//
// The two agree on every tree a stage can produce (the tests run one random
// sequence of operations both ways and compare the merged trees) except
// where overlayfs itself departs from a plain filesystem:
//
//   - Without its index feature (off here, because it ties layers to one
//     filesystem) overlayfs breaks a hardlink between lower files when one
//     name is modified: the other name keeps the old content. In a
//     materialized tree both names change.
//   - With redirect_dir off, renaming a directory from a lower layer fails
//     with EXDEV and tools copy instead, as mv does across filesystems; the
//     copy breaks hardlinks between the moved tree and the rest. In a
//     materialized tree the rename succeeds and the links survive.
//
// Layers built the two ways may also differ without changing the merged
// tree: overlayfs makes all whiteouts one inode, and Diff copies a file
// whose link count alone changed.
//
// Inode flags (chattr) are not part of the layer format: overlayfs keeps
// immutable and append-only in a trusted.overlay.protattr xattr, which
// Normalize drops, and the copy fallback does not copy flags. Holes in
// sparse files are kept both ways.
//
// # Mount namespaces
//
// Callers run inside their own private mount namespace; these functions only
// mount and unmount, they never unshare.
package snapshot
