#!/usr/bin/env bash
# The peer of a cold `msb pull`: `skopeo copy` of the image to an OCI dir (verifies blob digests),
# then one erofs-utils 1.9.4 `mkfs.erofs --tar=f` per layer, two at a time (xargs -P2) as a fair
# peer would on 2 cores. mkfs.erofs 1.9.4 filters gzip (--ungzip) and xz but cannot read a zstd
# tar stream, so zstd layers go through `zstd -dc |` into its stdin.
# Usage: peer-pull.sh MKFS REGISTRY/REPO:TAG OUTDIR
set -euo pipefail
MKFS=$1 REF=$2 OUT=$3
mkdir -p "$OUT"
skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$OUT/oci:x"
B=$OUT/oci/blobs/sha256
M=$(jq -r '.manifests[0].digest' "$OUT/oci/index.json")
jq -r '.layers[] | "\(.mediaType) \(.digest)"' "$B/${M#sha256:}" |
  xargs -P2 -n2 env MKFS="$MKFS" B="$B" OUT="$OUT" bash -c '
    set -eo pipefail
    blob=$B/${2#sha256:}; img=$OUT/${2#sha256:}.erofs
    case $1 in
      *zstd) zstd -dc "$blob" | "$MKFS" --quiet --tar=f "$img" ;;
      *gzip) "$MKFS" --quiet --tar=f --ungzip "$img" "$blob" ;;
      *) "$MKFS" --quiet --tar=f "$img" "$blob" ;;
    esac' _
