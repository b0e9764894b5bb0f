#!/bin/sh
# Times host B's apply of a variant of bench/reference.yaml with the
# shared stages in a remote cache (pulled from a registry that host A
# pushed them to), against a cold build of the same variant, and prints
# medians and their ratio. The registry is Debian's docker-registry on
# loopback with its storage in the work directory. Both sides start with
# the same .debs cached, so the network is out of the comparison.
#
#   sudo bench/remote-cache.sh [RUNS]        (default 3 runs of each)
#
# Needs root, mmdebstrap, docker-registry and the host's apt sources.
set -eu
runs=${1:-3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
work=$(mktemp -d /var/tmp/imgplan-bench-remote.XXXXXX)
regpid=""
cleanup() {
	if [ -n "$regpid" ]; then
		kill "$regpid" 2>/dev/null || true
		wait "$regpid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/imgplan" "$repo/cmd/imgplan"
imgplan=$work/imgplan

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# The registry on a loopback port; another port if that one is taken.
tries=0
while :; do
	port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
	cat > "$work/registry.yml" <<CONF
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $work/registry}
http:
  addr: 127.0.0.1:$port
CONF
	/usr/bin/docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
	regpid=$!
	i=0
	while kill -0 "$regpid" 2>/dev/null && ! curl -fs "http://127.0.0.1:$port/v2/" >/dev/null; do
		i=$((i + 1)); [ "$i" -lt 100 ] || break
		sleep 0.1
	done
	curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break
	kill "$regpid" 2>/dev/null || true
	regpid=""
	tries=$((tries + 1))
	[ "$tries" -lt 5 ] || { cat "$work/registry.log" >&2; exit 1; }
done

cp -a "$here/reference.yaml" "$here/files" "$work/"
# Host A: the reference image, pushed. Also fills the download cache.
"$imgplan" apply "$work/reference.yaml" --cache-dir "$work/hostA" --out "$work/out-A" \
	--cache-to "http://127.0.0.1:$port/bench/cache" >"$work/a.log" 2>&1 || { cat "$work/a.log" >&2; exit 1; }
debs=$work/hostA/v1/downloads

: > "$work/t.remote"; : > "$work/t.cold"
i=0
while [ "$i" -lt "$runs" ]; do
	i=$((i + 1))
	# A variant of the reference: its own file, the base shared.
	printf 'apiVersion: imgplan/v1\nname: bench-variant\nextends: reference.yaml\nfiles:\n  - {dest: /etc/variant, content: "run %s %s\\n"}\n' "$i" "$(date +%s%N)" > "$work/variant.yaml"
	for case in remote cold; do
		store=$work/store-$case-$i
		mkdir -p "$store/v1"
		cp -al "$debs" "$store/v1/downloads"
		extra=""
		[ "$case" = remote ] && extra="--cache-from http://127.0.0.1:$port/bench/cache"
		t0=$(now)
		# shellcheck disable=SC2086
		"$imgplan" apply "$work/variant.yaml" --cache-dir "$store" --out "$work/out-$case-$i" $extra >"$work/$case.log" 2>&1 || { cat "$work/$case.log" >&2; exit 1; }
		t1=$(now)
		echo "$t1 - $t0" | bc >> "$work/t.$case"
		rm -rf "$store" "$work/out-$case-$i"
	done
	grep -q "pulled [1-9]" "$work/remote.log" || { echo "host B pulled nothing:" >&2; cat "$work/remote.log" >&2; exit 1; }
done

remote=$(median < "$work/t.remote")
cold=$(median < "$work/t.cold")
printf '%-40s %9s %9s %8s\n' "variant of the reference, $runs runs" "host B" cold ratio
printf '%-40s %8.2fs %8.2fs %7.2fx\n' "apply with --cache-from vs cold build" "$remote" "$cold" "$(echo "$remote / $cold" | bc -l)"
