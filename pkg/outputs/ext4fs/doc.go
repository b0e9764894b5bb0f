// Package ext4fs edits ext2/3/4 filesystem images in place, for what
// mkfs.ext4 -d cannot be told to do itself: it copies inode times from the
// source tree, and a source ctime is always the time of the build.
//
// Everything here works on an image file that nothing has mounted. The
// layout follows the kernel's Documentation/filesystems/ext4; offsets named
// in comments are byte offsets within the structure being read.
package ext4fs
