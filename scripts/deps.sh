#!/bin/sh
# Installs the Debian packages imgplan drives and its tests use, when they
# are missing. Idempotent: with everything present it changes nothing and
# needs no network. Runs apt-get as root, or through sudo.
set -eu

packages="
ca-certificates
git
coreutils
e2fsprogs
xz-utils
zstd
squashfs-tools
cpio
mmdebstrap
debootstrap
debian-archive-keyring
busybox-static
fdisk
gdisk
dosfstools
mtools
xfsprogs
qemu-utils
qemu-system-x86
ovmf
"

missing=""
for p in $packages; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = "installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the list is intended
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
