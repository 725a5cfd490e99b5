#!/usr/bin/env bash
# Boots a disk image as the only disk of a Linux guest. The kernel's log (serial console) goes to
# stdout, the guest init's report (a virtio console, see init) to REPORT.
# Usage: boot.sh HARNESS_DIR DISK REPORT [FORMAT] [TIMEOUT_SECONDS]
#   HARNESS_DIR  what build.sh printed (vmlinux + initramfs.gz)
#   DISK         a stitched VMDK (FORMAT vmdk, the default) or a raw EROFS disk (FORMAT raw)
# MSB_GUEST_APPEND adds kernel parameters (e.g. `loglevel=7` to see the whole boot log).
# Exit status: qemu's (0 when the guest powered itself off), 124 when TIMEOUT (default 300) ran out.
#
# Why these flags: /dev/kvm on this kind of host is a paravirtual KVM that hangs a stock kernel, so
# the CPU is emulated (TCG). Under TCG on a loaded host the guest's PIT-based TSC calibration can
# fail and the boot then hangs; telling the kernel the TSC frequency (the host's, from
# /proc/cpuinfo) and skipping the timer check avoids that. The disk is read-only to the guest.
# Kernel work the checks do not need is skipped, because every emulated second counts (about
# 3.5 s of a 8 s boot): the jitter-entropy RNG's start-up timing loop (no randomness is needed),
# the BPF struct_ops/kfunc BTF registrations (no BPF), the kmalloc bucket sets of memdup_user and
# msg_msg (a hardening measure; allocation falls back to plain kmalloc), the crypto self-tests
# and the KDF108 one, and ftrace's enum maps (no tracing).
set -euo pipefail
H=$1
DISK=$2
REPORT=$3
FORMAT=${4:-vmdk}
TIMEOUT=${5:-300}
[ -f "$H/vmlinux" ] && [ -f "$H/initramfs.gz" ] || { echo "boot.sh: $H is not a harness (run build.sh)" >&2; exit 2; }
[ -f "$DISK" ] || { echo "boot.sh: $DISK: no such file" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "boot.sh: qemu-system-x86_64 missing: run scripts/setup-system.sh" >&2; exit 2; }
KHZ=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
TSC=${KHZ:+tsc_early_khz=$KHZ no_timer_check}
SKIP="initcall_blacklist=jent_mod_init,bpf_tcp_ca_kfunc_init,bpf_dummy_struct_ops_init,init_user_buckets,init_msg_buckets,crypto_kdf108_init,trace_eval_init cryptomgr.notests"
# qemu's option parser splits on commas; a literal comma in a path is written twice.
FILE=${DISK//,/,,}
: >"$REPORT"
exec timeout --kill-after=5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -M microvm -m 512 -smp 1 \
  -nographic -nic none -no-reboot \
  -kernel "$H/vmlinux" -initrd "$H/initramfs.gz" \
  -append "console=ttyS0 panic=-1 quiet $TSC $SKIP ${MSB_GUEST_APPEND:-}" \
  -drive "file=$FILE,format=$FORMAT,if=none,id=d0,readonly=on" -device virtio-blk-device,drive=d0 \
  -chardev "file,id=report,path=${REPORT//,/,,}" -device virtio-serial-device -device virtconsole,chardev=report
