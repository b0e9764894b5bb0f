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
eatmydata
xz-utils
zstd
squashfs-tools
qemu-system-x86
qemu-utils
cpio
mmdebstrap
debootstrap
debian-archive-keyring
busybox-static
docker-registry
curl
bc
python3
rpm
dnf
createrepo-c
tzdata
gpg
gpg-agent
fdisk
gdisk
dosfstools
mtools
xfsprogs
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
# docker-registry is only a binary the tests start on loopback: the
# system service its package starts (listening on every interface) is
# not wanted.
case "$missing" in *docker-registry*)
	if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
		$sudo systemctl disable --now docker-registry >/dev/null 2>&1 || true
	elif [ -x /etc/init.d/docker-registry ]; then
		$sudo /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
		$sudo update-rc.d docker-registry disable >/dev/null 2>&1 || true
	fi
esac
