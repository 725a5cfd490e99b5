#!/usr/bin/env bash
# Installs everything msb-image's tests and benchmarks need on Debian 12, as root:
# the real peers (CNCF distribution registry, skopeo, umoci, qemu-img, erofs-utils, zstd, …) from
# Debian's archive, and erofs-utils 1.9.4 built from Debian's source package into a private prefix
# ($MSB_TOOLS, default /opt/msb-tools) for fsck/extract checks and the mkfs.erofs benchmark peer,
# and the guest tests' Debian trixie 6.12 kernel into $MSB_TOOLS/guest (scripts/guest/).
# Idempotent: each step is skipped when already done.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
TOOLS=${MSB_TOOLS:-/opt/msb-tools}

debian_mirror() {
  { awk '/^URIs:/{print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null
    awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /^https?:/){print $i; break}}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
  } | grep -v -- '-security' | head -n1
}

need=(docker-registry skopeo umoci erofs-utils qemu-utils zstd jq curl apache2-utils openssl busybox-static
      attr libcap2-bin acl xxd python3 ca-certificates debootstrap sqlite3 util-linux e2fsprogs
      time qemu-system-x86 cpio kmod xz-utils gcc libc6-dev)
# time: GNU /usr/bin/time, the benchmarks' peak-RSS probe; qemu, cpio, kmod (modinfo), gcc: the guest harness
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$TOOLS/erofs-utils-1.9.4/bin/mkfs.erofs" ]; then
  apt-get install -y -q --no-install-recommends build-essential autoconf automake libtool pkg-config dpkg-dev \
    liblz4-dev liblzma-dev libzstd-dev libdeflate-dev libxxhash-dev uuid-dev zlib1g-dev libfuse3-dev
  A=$TOOLS/apt-src; mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) sid main" > "$A/sources.list"
  AX=(-o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache" -o Dir::Etc::SourceParts=/dev/null -o Dir::Etc::SourceList="$A/sources.list")
  apt-get "${AX[@]}" update -q
  mkdir -p "$TOOLS/src" && cd "$TOOLS/src"
  apt-get "${AX[@]}" source --download-only erofs-utils=1.9.4-1
  rm -rf erofs-utils-1.9.4 && dpkg-source -x erofs-utils_1.9.4-1.dsc >/dev/null && cd erofs-utils-1.9.4
  ./autogen.sh >/dev/null 2>&1
  ./configure --prefix="$TOOLS/erofs-utils-1.9.4" --enable-lzma --with-libdeflate --with-libzstd --with-xxhash >/dev/null
  make -j"$(nproc)" >/dev/null && make install >/dev/null
fi
"$TOOLS/erofs-utils-1.9.4/bin/mkfs.erofs" --version | head -1
bash "$(dirname "$0")/guest/fetch-kernel.sh" "$TOOLS/guest" "$(debian_mirror)"
modprobe erofs 2>/dev/null || true
grep -qw erofs /proc/filesystems || { echo "the kernel has no erofs support" >&2; exit 1; }
echo "system ready"
