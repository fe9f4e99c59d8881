#!/bin/sh
# Boots the cgroup v2 VM test's initramfs with the host's Debian kernel under
# plain TCG (no KVM needed) and copies the serial console to stdout. qemu is
# killed after TIMEOUT seconds (default 240) if the guest has not powered off.
# KILN_VM_KERNEL overrides the kernel (default: the newest /boot/vmlinuz-*).
# Usage: tests/vm/boot.sh INITRAMFS [TIMEOUT]
set -eu
initrd=${1:?usage: boot.sh INITRAMFS [TIMEOUT]}
limit=${2:-240}
kernel=${KILN_VM_KERNEL:-$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[ -r "$kernel" ] || { echo "boot.sh: no readable kernel (apt-get install linux-image-amd64)" >&2; exit 1; }
exec timeout -k 5 "$limit" qemu-system-x86_64 \
  -machine q35,accel=tcg -smp 2 -m 512 \
  -nographic -monitor none -no-reboot \
  -kernel "$kernel" -initrd "$initrd" \
  -append 'console=ttyS0 panic=-1 quiet' </dev/null
