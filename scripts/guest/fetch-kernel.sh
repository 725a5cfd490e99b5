#!/usr/bin/env bash
# Fetches the Debian trixie 6.12 kernel the guest tests boot (Debian 12's own 6.1 kernel cannot
# mount a stitched multi-device EROFS disk) and unpacks it into DEST/kernel:
#   DEST/kernel/vmlinuz, DEST/kernel/lib/modules/<version>/…, DEST/kernel/version
# apt runs with a private state and its own one-line sources list for trixie, so the system's apt
# sources and package database are not changed. Idempotent (skipped when DEST/kernel/version exists).
# Usage: fetch-kernel.sh DEST MIRROR   (MIRROR e.g. http://deb.debian.org/debian)
set -euo pipefail
DEST=$1
MIRROR=$2
if [ -s "$DEST/kernel/version" ]; then echo "guest kernel $(cat "$DEST/kernel/version")"; exit 0; fi
A=$DEST/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" > "$A/sources.list"
AX=(-o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::SourceList="$A/sources.list" -o APT::Architecture=amd64 -o APT::Sandbox::User=root)
apt-get "${AX[@]}" update -q
# linux-image-amd64 is the metapackage; it depends on exactly one versioned 6.12 image package.
PKG=$(apt-cache "${AX[@]}" depends linux-image-amd64 | awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-6\.12\./ {print $2; exit}')
[ -n "$PKG" ] || { echo "fetch-kernel: no linux-image-6.12.* package in trixie at $MIRROR" >&2; exit 1; }
W=$(mktemp -d "$DEST/.fetch.XXXXXX")
trap 'rm -rf "$W"' EXIT
(cd "$W" && apt-get "${AX[@]}" download -q "$PKG")
dpkg -x "$W"/*.deb "$W/root"
# trixie is merged-/usr: modules live in usr/lib/modules.
MODS=$W/root/usr/lib/modules; [ -d "$MODS" ] || MODS=$W/root/lib/modules
VER=$(ls "$MODS")
[ -f "$W/root/boot/vmlinuz-$VER" ] || { echo "fetch-kernel: $PKG has no boot/vmlinuz-$VER" >&2; exit 1; }
mkdir -p "$W/kernel/lib"
mv "$W/root/boot/vmlinuz-$VER" "$W/kernel/vmlinuz"
mv "$MODS" "$W/kernel/lib/modules"
echo "$VER" > "$W/kernel/version"
rm -rf "$DEST/kernel"
mv "$W/kernel" "$DEST/kernel"
rm -rf "$A/cache/archives"/*.deb
echo "guest kernel $VER ($PKG)"
