#!/bin/sh
# Times `imgplan apply bench/reference.yaml` (cold, no change, one file
# changed) side by side with a plain mmdebstrap run that builds the same
# image (same packages, files, user, fstab, services, tar output), and
# prints medians and ratios. Both sides start with the same .debs cached,
# so the network is out of the comparison.
#
#   sudo bench/apply.sh [RUNS]        (default 3 runs of each)
#
# Needs root, mmdebstrap and the host's apt sources (as the tests do).
set -eu
runs=${1:-3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
work=$(mktemp -d /var/tmp/imgplan-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

go build -o "$work/imgplan" "$repo/cmd/imgplan"
imgplan=$work/imgplan

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Warm-up: fills a download cache both sides share (hard-linked copies).
cp -a "$here/reference.yaml" "$here/files" "$work/"
"$imgplan" apply "$work/reference.yaml" --cache-dir "$work/warm" --out "$work/out-warm" >/dev/null 2>&1
debs=$work/warm/v1/downloads/apt/debian/$(dpkg --print-architecture)

# The same image with mmdebstrap alone: its sources are the ones imgplan
# derived from the host (read back from the image it built).
tar -xOf "$work/out-warm/rootfs.tar" ./etc/apt/sources.list > "$work/sources.list"
hash=$(awk '/password_hash:/ {print $2}' "$here/reference.yaml")
baseline() {
	cache=$work/base-cache.$1
	rm -rf "$cache" && cp -al "$debs" "$cache"
	mmdebstrap --mode=root --variant=minbase --include=openssh-server,vim-tiny,cron \
		--skip=download/empty \
		--setup-hook="mkdir -p \"\$1/var/cache/apt/archives\" && mount --bind $cache \"\$1/var/cache/apt/archives\"" \
		--customize-hook="umount \"\$1/var/cache/apt/archives\"" \
		--customize-hook='echo bench > "$1/etc/hostname"' \
		--customize-hook="chroot \"\$1\" useradd -m -s /bin/bash -c 'benchmark user' bench" \
		--customize-hook="echo 'bench:$hash' | chroot \"\$1\" chpasswd -e" \
		--customize-hook="mkdir -p \"\$1/etc/ssh/sshd_config.d\" && cp $here/files/sshd-bench.conf \"\$1/etc/ssh/sshd_config.d/10-bench.conf\" && cp $here/files/motd \"\$1/etc/motd\"" \
		--customize-hook='printf "tmpfs\t/tmp\ttmpfs\tdefaults,nosuid,nodev\t0\t0\n" >> "$1/etc/fstab"' \
		--customize-hook='chroot "$1" sh -c "for s in ssh cron; do if command -v systemctl >/dev/null; then systemctl enable \$s; else update-rc.d \$s enable; fi; done"' \
		bookworm "$work/base-$1.tar" "$work/sources.list" >"$work/base.log" 2>&1 || { cat "$work/base.log" >&2; exit 1; }
	rm -rf "$cache" "$work/base-$1.tar"
}

: > "$work/t.base"; : > "$work/t.cold"; : > "$work/t.same"; : > "$work/t.one"
i=0
while [ "$i" -lt "$runs" ]; do
	i=$((i + 1))
	# mmdebstrap
	t0=$(now); baseline "$i"; t1=$(now)
	echo "$t1 - $t0" | bc >> "$work/t.base"

	# imgplan, cold: a new store whose download cache holds the same .debs
	store=$work/store-$i
	mkdir -p "$store/v1/downloads/apt/debian"
	cp -al "$debs" "$store/v1/downloads/apt/debian/"
	cp -a "$here/reference.yaml" "$here/files" "$work/"
	t0=$(now); "$imgplan" apply "$work/reference.yaml" --cache-dir "$store" --out "$work/out-$i" >/dev/null 2>&1; t1=$(now)
	echo "$t1 - $t0" | bc >> "$work/t.cold"

	# imgplan, no change
	t0=$(now); "$imgplan" apply "$work/reference.yaml" --cache-dir "$store" --out "$work/out-$i" >/dev/null 2>&1; t1=$(now)
	echo "$t1 - $t0" | bc >> "$work/t.same"

	# imgplan, one overlaid file changed
	echo "run $i" >> "$work/files/motd"
	t0=$(now); "$imgplan" apply "$work/reference.yaml" --cache-dir "$store" --out "$work/out-$i" >/dev/null 2>&1; t1=$(now)
	echo "$t1 - $t0" | bc >> "$work/t.one"
	rm -rf "$store" "$work/out-$i"
done

base=$(median < "$work/t.base")
printf '%-28s %10s %12s %8s\n' "reference image, $runs runs" imgplan mmdebstrap ratio
for case in cold same one; do
	t=$(median < "$work/t.$case")
	name=$(case $case in cold) echo "cold (.debs cached)";; same) echo "no change";; one) echo "one file changed";; esac)
	printf '%-28s %9.2fs %11.2fs %7.2fx\n' "$name" "$t" "$base" "$(echo "$t / $base" | bc -l)"
done
