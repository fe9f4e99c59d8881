#!/bin/sh
# Assembles a minimal busybox root filesystem in $1 from the host's busybox-static.
# Usage: rootfs-fixtures/busybox.sh DIR
set -eu
dest=${1:?usage: busybox.sh DIR}
bb=$(command -v busybox || true)
[ -n "$bb" ] || { echo "busybox.sh: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
if ldd "$bb" >/dev/null 2>&1; then echo "busybox.sh: $bb is not static (apt-get install busybox-static)" >&2; exit 1; fi
mkdir -p "$dest/bin" "$dest/etc" "$dest/tmp" "$dest/proc" "$dest/sys" "$dest/dev" "$dest/root" "$dest/var/empty"
chmod 1777 "$dest/tmp"
cp "$bb" "$dest/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dest/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/var/empty:/bin/false\n' > "$dest/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dest/etc/group"
echo kiln-fixture > "$dest/etc/hostname"
