// Package fsroot writes into an image root tree from the host with chroot
// semantics: every image path is resolved as if the root directory were "/",
// so absolute symlinks, ".." chains and symlink loops in a hostile image stay
// inside the root instead of reaching the host.
//
// Resolution is done by the kernel (openat2 with RESOLVE_IN_ROOT and
// RESOLVE_NO_MAGICLINKS), never by joining host path strings, and every
// change is made relative to a directory file descriptor with the *at system
// calls and without following the final component, so a concurrent symlink
// swap can move where inside the root a write lands but never take it out.
//
// Decisions on the open points of chroot semantics:
//
//   - Image paths must be absolute and clean (path.Clean(p) == p). A caller's
//     path containing "..", ".", "//" or a trailing slash is rejected with
//     ErrInvalidPath rather than cleaned, because silently reinterpreting a
//     path hides manifest bugs. ".." inside symlink targets is resolved the
//     way the kernel does at "/": it stays at the root.
//   - Magic links (/proc/self/root, /proc/self/fd/N, ...) in a procfs mounted
//     inside the root are never followed; such paths fail with ELOOP.
//   - Mounts inside the root are part of the tree and are followed, but
//     RemoveAll refuses to descend into a mount point (a bind-mounted /dev or
//     host directory must not be emptied).
//   - Reads refuse device nodes, FIFOs and sockets: reading them could block,
//     never end, or read host devices that a hostile image planted.
//   - Writes replace files (temporary file plus rename); they never write in
//     place, so a hard link to an existing file keeps its old content.
//
// The package needs Linux 5.6 or later (openat2) and /proc mounted on the
// host (fd paths are read from /proc/self/fd).
package fsroot
