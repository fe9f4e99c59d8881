#!/bin/sh
# Builds the initramfs of the cgroup v2 VM test (tests/it/limits.rs):
# busybox-static, the kiln binary and the shared libraries it loads, a busybox
# rootfs for the containers (/rootfs), the OCI bundles of the checks
# (/bundles/<check>/config.json), and the two init stages (init, checks.sh).
# Runs unprivileged.
# Usage: tests/vm/initramfs.sh OUT.cpio.gz KILN BUNDLES_DIR
set -eu
out=${1:?usage: initramfs.sh OUT.cpio.gz KILN BUNDLES_DIR}
kiln=${2:?kiln binary}
bundles=${3:?bundles dir}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
for tool in busybox cpio gzip ldd; do
  command -v "$tool" >/dev/null || { echo "initramfs.sh: $tool not found" >&2; exit 1; }
done
stage=$(mktemp -d "${TMPDIR:-/tmp}/kiln-vm-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM

# busybox for both init stages and the checks (the rootfs fixture script
# makes the same tree the containers get: bin/ with every applet, etc/).
"$repo/rootfs-fixtures/busybox.sh" "$stage"
"$repo/rootfs-fixtures/busybox.sh" "$stage/rootfs"
mkdir -p "$stage/proc" "$stage/sys" "$stage/dev" "$stage/run" "$stage/newroot"

# kiln without its debug info (a fifth of the size), and its libraries at
# the paths the dynamic loader looks in.
strip --strip-debug -o "$stage/bin/kiln" "$kiln" 2>/dev/null || cp "$kiln" "$stage/bin/kiln"
ldd "$kiln" | awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }' | while read -r lib; do
  [ -n "$lib" ] && cp -L --parents "$lib" "$stage"
done

cp -r "$bundles" "$stage/bundles"
cp "$here/init" "$stage/init"
cp "$here/checks.sh" "$stage/checks.sh"
chmod 755 "$stage/init" "$stage/checks.sh"
# busybox init runs the checks, reaps orphans (containers started with -d
# outlive kiln) and powers off when they are done.
cat > "$stage/etc/inittab" <<'TAB'
::sysinit:/bin/sh /checks.sh
::wait:/bin/sh -c 'sleep 1; poweroff -f'
TAB

(cd "$stage" && find . | cpio -o -H newc --quiet) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
