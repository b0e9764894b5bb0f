#!/bin/sh
# Runs inside the image at the post-files phase. The working directory is
# the manifest's directory, read-only.
set -eu
cp files/debian-minimal/hooks/release-note.txt /etc/imgplan-release-note
echo "phase=$IMGPLAN_PHASE" >> /etc/imgplan-release-note
# The manifest's directory cannot be written to from the image.
if touch "$IMGPLAN_MANIFEST_DIR/written-by-hook" 2>/dev/null; then
	echo "the manifest directory is writable" >&2
	exit 1
fi
