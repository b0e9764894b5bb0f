#!/bin/sh
# Output assembly: imgplan building the ext4 (2 GiB) and squashfs outputs of
# bench/reference.yaml, against mkfs.ext4 -d and mksquashfs run directly on
# the same tree, alternated, medians of RUNS; and the peak memory of the
# imgplan processes (the CLI and its sandbox) while writing the 2 GiB image.
#
#   sudo bench/outputs.sh [RUNS]       (default 5)
#
# IMGPLAN_BENCH_STORE names a store to build the tree in (a fresh one under
# the work directory otherwise): CI passes the end-to-end tests' store, so
# the reference's bootstrap and .debs come from there. Only the timed output
# objects are removed from it between runs.
set -eu
runs=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
work=$(mktemp -d /var/tmp/imgplan-bench-out.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

go build -o "$work/imgplan" "$repo/cmd/imgplan"
imgplan=$work/imgplan
store=${IMGPLAN_BENCH_STORE:-$work/store}
outputs='outputs=[{type: dir, path: rootfs}, {type: ext4, path: root.img, size: 2GiB}, {type: squashfs, path: root.squashfs}]'

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
key() { # the store directory of an output's object, from the last report
	python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print([n['key'] for n in r['nodes'] if n['id']==sys.argv[2]][0].split(':')[1])" "$work/out/imgplan-report.json" "$1"
}
seconds() { # an output node's times in the last report: in the sandbox, and with the commit
	python3 -c "import json,sys; r=json.load(open(sys.argv[1])); n=[n for n in r['nodes'] if n['id']==sys.argv[2]][0]; print(n['build_seconds'], n['seconds'])" "$work/out/imgplan-report.json" "$1"
}

# The tree, built once; the baselines read its copy (the dir output).
cp -a "$here/reference.yaml" "$here/files" "$work/"
"$imgplan" apply "$work/reference.yaml" --cache-dir "$store" --out "$work/out" --set "$outputs" >/dev/null 2>&1
tree=$work/out/rootfs
ext4=$(key output:root.img)
sqfs=$(key output:root.squashfs)

# peak sums the resident memory of every imgplan process, sampled every
# 20 ms, while the command runs; it prints the peak in MiB.
peak() {
	"$@" >/dev/null 2>&1 &
	pid=$!
	max=0
	while kill -0 "$pid" 2>/dev/null; do
		rss=$(ps -C imgplan -o rss= 2>/dev/null | awk '{s+=$1} END {print s+0}')
		[ "$rss" -gt "$max" ] && max=$rss
		sleep 0.02
	done
	wait "$pid"
	echo $((max / 1024))
}

: > "$work/t.mkfs"; : > "$work/t.ext4"; : > "$work/t.mksq"; : > "$work/t.sqfs"; : > "$work/mem"
# Each timed run starts after a sync, so none pays for the previous one's
# writeback; imgplan and the direct tool alternate.
i=0
while [ "$i" -lt "$runs" ]; do
	i=$((i + 1))
	rm -f "$work/d.img"; sync
	t0=$(now); mkfs.ext4 -q -F -d "$tree" "$work/d.img" 2G >/dev/null 2>&1; t1=$(now)
	echo "$t1 - $t0" | bc >> "$work/t.mkfs"
	rm -f "$work/d.img"

	rm -rf "$store/v1/objects/$ext4"; sync
	"$imgplan" apply "$work/reference.yaml" --cache-dir "$store" --out "$work/out" -j1 \
		--set 'outputs=[{type: ext4, path: root.img, size: 2GiB}]' >/dev/null 2>&1
	seconds output:root.img >> "$work/t.ext4"
done
# Memory is sampled in runs of its own: the sampler (ps every 20 ms) takes
# CPU the build would otherwise have, so timed runs go without it.
i=0
while [ "$i" -lt 3 ]; do
	i=$((i + 1))
	rm -rf "$store/v1/objects/$ext4"; sync
	peak "$imgplan" apply "$work/reference.yaml" --cache-dir "$store" --out "$work/out" -j1 \
		--set 'outputs=[{type: ext4, path: root.img, size: 2GiB}]' >> "$work/mem"
done
i=0
while [ "$i" -lt "$runs" ]; do
	i=$((i + 1))
	rm -f "$work/d.sqfs"; sync
	t0=$(now); mksquashfs "$tree" "$work/d.sqfs" -comp zstd -b 131072 -noappend -quiet -no-progress >/dev/null 2>&1; t1=$(now)
	echo "$t1 - $t0" | bc >> "$work/t.mksq"
	rm -f "$work/d.sqfs"

	rm -rf "$store/v1/objects/$sqfs"; sync
	"$imgplan" apply "$work/reference.yaml" --cache-dir "$store" --out "$work/out" -j1 \
		--set 'outputs=[{type: squashfs, path: root.squashfs}]' >/dev/null 2>&1
	seconds output:root.squashfs >> "$work/t.sqfs"
done

printf '%-40s %9s %9s %7s\n' "output assembly, $runs runs, medians" imgplan direct ratio
for pair in "ext4 2GiB:ext4:mkfs" "squashfs zstd:sqfs:mksq"; do
	name=${pair%%:*}; rest=${pair#*:}; ours=${rest%%:*}; theirs=${rest#*:}
	b=$(median < "$work/t.$theirs")
	a=$(cut -d' ' -f1 "$work/t.$ours" | median)
	printf '%-40s %8.2fs %8.2fs %6.2fx\n' "$name, built in the sandbox" "$a" "$b" "$(echo "$a / $b" | bc -l)"
	a=$(cut -d' ' -f2 "$work/t.$ours" | median)
	printf '%-40s %8.2fs %8.2fs %6.2fx\n' "$name, and committed to the store" "$a" "$b" "$(echo "$a / $b" | bc -l)"
done
printf '%-40s %8s MiB (peak of 3 runs; target <= 200)\n' "imgplan memory writing 2GiB ext4" "$(sort -n "$work/mem" | tail -1)"
