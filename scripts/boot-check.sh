#!/usr/bin/env bash
# Does my image boot? Boots an image's stitched disk as the only disk of a Linux 6.12 guest (qemu,
# emulated CPU) and reports what the guest saw: the disk mounts as EROFS, its tree listing arrives
# intact, the image's /bin/sh runs from it, and an overlayfs over it takes a write and a delete.
#
# Usage: scripts/boot-check.sh [--home DIR] [--platform P] [--insecure] [--listing FILE] REF
#        scripts/boot-check.sh [--listing FILE] --vmdk FILE.vmdk
#   REF            pulled into the msb cache first when it is not there (msb pull, policy if-missing)
#   --listing F    also write the guest's listing of the root (path, type, mode, owner, size, sha256,
#                  link target, device numbers, mtime, xattrs; one line per entry) to F
# The kernel, qemu and build tools come from scripts/setup-system.sh (run once, as root), the CLI
# from `npm run build`. Exit 0 when every check passes. Takes 5-15 s (the CPU is emulated).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MSB=(node "$ROOT/bin/msb.js")
PULL=() VMDK='' LISTING='' REF=''
while [ $# -gt 0 ]; do
  case $1 in
    --home) MSB+=(--home "$2"); shift 2 ;;
    --platform) PULL+=(--platform "$2"); shift 2 ;;
    --insecure) PULL+=(--insecure); shift ;;
    --vmdk) VMDK=$2; shift 2 ;;
    --listing) LISTING=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "boot-check: unknown flag $1" >&2; exit 2 ;;
    *) [ -z "$REF" ] || { echo "boot-check: one REF only" >&2; exit 2; }; REF=$1; shift ;;
  esac
done
[ -n "$REF" ] || [ -n "$VMDK" ] || { echo "usage: boot-check.sh [--home DIR] REF | --vmdk FILE (see --help)" >&2; exit 2; }

if [ -z "$VMDK" ]; then
  [ -f "$ROOT/dist/src/cli/main.js" ] || { echo "boot-check: run \`npm run build\` first" >&2; exit 2; }
  "${MSB[@]}" pull -q "${PULL[@]}" "$REF" >/dev/null
  VMDK=$("${MSB[@]}" image inspect --format json "$REF" | node -e \
    'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].artifacts.vmdkPath))')
fi
H=$(bash "$ROOT/scripts/guest/build.sh" "${MSB_GUEST_CACHE:-/tmp/msb-guest}")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "booting $VMDK"
START=$(date +%s.%N)
set +e
bash "$ROOT/scripts/guest/boot.sh" "$H" "$VMDK" "$T/report" vmdk "${MSB_GUEST_TIMEOUT:-300}" >"$T/console" 2>&1
QEMU=$?
set -e
SECS=$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
tr -d '\r' <"$T/report" >"$T/r"

fails=0
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; fails=$((fails + 1)); }
note() { printf '  -     %s\n' "$*"; }
field() { sed -n "s/^MSB-$1 //p" "$T/r" | head -n1; }

echo "guest: $(field GUEST) (qemu exit $QEMU, ${SECS} s)"
m=$(field MOUNT)
case $m in ok*) ok "mount: ${m#ok }" ;; *) bad "mount: ${m:-no report}" ;; esac
if grep -q '^MSB-LIST-END' "$T/r"; then
  sed -n '/^MSB-LIST-BEGIN$/,/^MSB-LIST-END /p' "$T/r" | sed '1d;$d' >"$T/list"
  want=$(field LIST-END)
  got="lines=$(wc -l <"$T/list") sha256=$(sha256sum <"$T/list" | cut -d' ' -f1)"
  if [ "$want" = "$got" ]; then ok "listing: $(wc -l <"$T/list") entries, checksum matches"; else bad "listing: got $got, the guest wrote $want"; fi
  [ -z "$LISTING" ] || cp "$T/list" "$LISTING"
elif [ -n "$m" ] && [ "${m%% *}" = ok ]; then
  bad "listing: $(field LIST || echo 'none')"
fi
c=$(field CHROOT)
case $c in
  '') [ "${m%% *}" != ok ] || bad "chroot: no report" ;;
  'rc=0 out=hi') ok "chroot /mnt/root /bin/sh -c 'echo hi': hi" ;;
  *'No such file or directory'*) note "chroot: the image has no /bin/sh ($c)" ;;
  *) bad "chroot /mnt/root /bin/sh -c 'echo hi': $c" ;;
esac
o=$(field OVERLAY)
case $o in
  '') [ "${m%% *}" != ok ] || bad "overlay: no report" ;;
  *'write=ok del=none'*) ok "overlay: write ok"; note "overlay: no regular file to delete" ;;
  *'write=ok'*'gone=yes whiteout=character_special_file:0:0'*) ok "overlay: write ok, delete leaves a whiteout ($o)" ;;
  *) bad "overlay: $o" ;;
esac
grep -q '^MSB-DONE' "$T/r" || bad "the guest did not finish (qemu exit $QEMU)"
if [ "$fails" -gt 0 ]; then
  echo "--- guest kernel log (tail) ---"
  tail -n 30 "$T/console"
  exit 1
fi
echo "boots: yes"
