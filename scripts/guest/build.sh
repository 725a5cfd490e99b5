#!/usr/bin/env bash
# Builds the guest-test harness once per input state and prints its directory:
#   <CACHE>/<key>/vmlinux          the Debian trixie 6.12 kernel (fetched by fetch-kernel.sh),
#                                  uncompressed: qemu boots its ELF through the PVH entry, which
#                                  saves decompressing a 12 MB bzImage under TCG at every boot
#   <CACHE>/<key>/initramfs.gz     busybox-static + msb-tree + the init script + the modules the
#                                  guest needs (virtio-mmio disk, EROFS, overlayfs), cpio + gzip
#   <CACHE>/<key>/msb-tree         the same static listing program, for the host side
# <key> hashes every input (this script, init, msb-tree.c, the kernel version, busybox), so editing
# one of them builds a new harness; builds are serialised with flock and published by rename.
# Usage: build.sh [CACHE]   (default /tmp/msb-guest; the kernel from $MSB_TOOLS/guest/kernel)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${1:-/tmp/msb-guest}
KDIR=${MSB_GUEST_KERNEL:-${MSB_TOOLS:-/opt/msb-tools}/guest/kernel}
BUSYBOX=/bin/busybox
# Module roots. crc32c_generic comes first: erofs needs libcrc32c, whose crc32c transform is a
# soft dependency (`softdep pre: crc32c`) that modinfo's `depends` does not list.
ROOTS=(crc32c_generic virtio_mmio virtio_blk erofs overlay)

fail() { echo "guest build: $*" >&2; exit 1; }
[ -s "$KDIR/version" ] || fail "no guest kernel in $KDIR: run scripts/setup-system.sh"
for t in gcc cpio gzip xz zstd od modinfo flock; do command -v "$t" >/dev/null || fail "$t missing: run scripts/setup-system.sh"; done
# The guest has no libc: busybox must be Debian's static build.
dpkg -s busybox-static >/dev/null 2>&1 && [ -x "$BUSYBOX" ] || fail "busybox-static missing: run scripts/setup-system.sh"
VER=$(cat "$KDIR/version")
KEY=$( { cat "$0" "$HERE/init" "$HERE/msb-tree.c"; echo "$VER"; sha256sum "$BUSYBOX"; } | sha256sum | cut -c1-16)
OUT=$CACHE/$KEY
if [ -f "$OUT/READY" ]; then echo "$OUT"; exit 0; fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$OUT/READY" ]; then echo "$OUT"; exit 0; fi

W=$(mktemp -d "$CACHE/.build.XXXXXX")
chmod 755 "$W"
trap 'rm -rf "$W"' EXIT
R=$W/root
mkdir -p "$R/bin" "$R/lib/modules"
gcc -static -O2 -Wall -Werror -o "$W/msb-tree" "$HERE/msb-tree.c"
cp "$W/msb-tree" "$R/bin/msb-tree"
cp "$BUSYBOX" "$R/bin/busybox"
install -m 755 "$HERE/init" "$R/init"

# Module closure through `modinfo -F depends`, dependencies before dependents.
MODS=$KDIR/lib/modules/$VER
declare -A seen=()
order=()
modfile() { find "$MODS/kernel" -name "$1.ko*" -print -quit; }
visit() {
  local m=${1//-/_} f d
  [ -n "${seen[$m]:-}" ] && return 0
  seen[$m]=1
  f=$(modfile "$m")
  if [ -z "$f" ]; then
    grep -q "/$m.ko\$" "$MODS/modules.builtin" && return 0   # built into the kernel
    fail "module $m not found in $MODS"
  fi
  for d in $(modinfo -F depends "$f" | tr ',' ' '); do visit "$d"; done
  case "$f" in
    *.xz) xz -dc "$f" >"$R/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" >"$R/lib/modules/$m.ko" ;;
    *) cp "$f" "$R/lib/modules/$m.ko" ;;
  esac
  order+=("$m")
}
for m in "${ROOTS[@]}"; do visit "$m"; done
printf '%s\n' "${order[@]}" >"$R/lib/modules/order"

(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$W/initramfs.gz"
# The bzImage's payload (x86 boot protocol: setup_sects @0x1f1, payload_offset @0x248,
# payload_length @0x24c) is the compressed ELF followed by its uncompressed size (u32 LE).
BZ=$KDIR/vmlinuz
rd() { od -An -t "u$2" -j "$1" -N "$2" "$BZ" | tr -d ' '; }
START=$(( ($(rd $((0x1f1)) 1) + 1) * 512 + $(rd $((0x248)) 4) ))
dd if="$BZ" of="$W/payload" bs=1M iflag=skip_bytes,count_bytes skip="$START" count="$(rd $((0x24c)) 4)" status=none
SIZE=$(od -An -t u4 -j $(( $(stat -c %s "$W/payload") - 4 )) -N 4 "$W/payload" | tr -d ' ')
case $(od -An -t x1 -N 4 "$W/payload" | tr -d ' ') in
  28b52ffd) DEC=(zstd -qdc) ;;
  fd377a58) DEC=(xz -qdc --single-stream) ;;
  1f8b*) DEC=(gzip -qdc) ;;
  *) fail "$BZ: unknown payload compression" ;;
esac
# The decompressor complains about the trailing size word; the size check below is what counts.
"${DEC[@]}" "$W/payload" >"$W/vmlinux" 2>/dev/null || true
[ "$(stat -c %s "$W/vmlinux")" = "$SIZE" ] && [ "$(od -An -c -j 1 -N 3 "$W/vmlinux" | tr -d ' ')" = ELF ] ||
  fail "$BZ: could not extract the kernel ELF"
rm "$W/payload"
printf 'kernel=%s\nmodules=%s\n' "$VER" "${order[*]}" >"$W/READY"
rm -rf "$R"
rm -rf "$OUT"
mv "$W" "$OUT"
# Harnesses of other inputs (older checkouts) go after a day unused.
find "$CACHE" -mindepth 1 -maxdepth 1 -name '[0-9a-f]*' ! -name "$KEY" -mmin +1440 -exec rm -rf {} +
trap - EXIT
echo "$OUT"
