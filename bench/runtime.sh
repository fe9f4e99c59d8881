#!/usr/bin/env bash
# Runtime benchmarks: starting a container, kiln against crun, runc and podman,
# each group timed in ONE hyperfine run so the peers see the same machine.
# Prints markdown tables of ratios (a peer's median over kiln's).
#
#   sudo bench/runtime.sh
#
# This VM shares its host: medians drift by 10% from one minute to the next.
# So each group runs as ROUNDS (5) hyperfine runs of RUNS/ROUNDS runs per
# command, one after another; the ratios are taken within each round (the
# peers saw the same minutes) and the report gives their median and range.
#
# Needs root, hyperfine, runc, crun, podman, busybox-static, python3, mkfs.ext4.
# Group 1 (bundle, /bin/true): kiln run --bundle, crun run, runc run and the
#   floor `unshare -mpui --fork true`, and `kiln run IMAGE true` of the same
#   busybox tree as an image (layers extracted), with the store where
#   KILN_BENCH_DIR is and on a fresh ext4 (a loop-mounted file). crun 1.8 refuses this host's
#   hybrid cgroup layout, so the whole group runs in a private mount
#   namespace with cgroup2 mounted on /sys/fs/cgroup (a cgroup2-only host
#   without delegated controllers), crun with --cgroup-manager=disabled.
# Group 2 (bundle on the host's own cgroups): kiln and runc, v1 fallback.
# Group 3 (image): kiln run IMAGE true with the layers extracted, against the
#   bundle case and `podman run --rm` of the same image (podman driving runc),
#   in a cgroup2 mount namespace as group 1 (podman with pids_limit = 0: that
#   cgroup2 has no controllers to set limits with).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${KILN_BENCH_DIR:-/var/tmp/kiln-bench}/runtime
RUNS=${RUNS:-200}
ROUNDS=${ROUNDS:-5}
PER_ROUND=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
[ "$(id -u)" = 0 ] || { echo "bench/runtime.sh: run as root" >&2; exit 1; }
for t in cargo hyperfine runc crun podman python3 unshare; do
    command -v "$t" >/dev/null || { echo "bench/runtime.sh: $t is not installed" >&2; exit 1; }
done
rm -rf "$BENCH"
mkdir -p "$BENCH/res"

echo "== building kiln (release, static-pie as scripts/lib.sh's build_release)" >&2
. "$ROOT/scripts/lib.sh"
KILN=$(cd "$ROOT" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$BENCH/../target} build_release)

# One busybox bundle, /bin/true as the process; runc's default config.
B="$BENCH/bundle"
mkdir -p "$B"
"$ROOT/rootfs-fixtures/busybox.sh" "$B/rootfs" >/dev/null
( cd "$B" && runc spec )
python3 - "$B/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["readonly"] = False
json.dump(c, open(p, "w"), indent=1)
PY

HF=(hyperfine -N --warmup 20 --runs "$PER_ROUND" --style none)
export KILN_STORE="$BENCH/store"
"$KILN" image from-dir "$B/rootfs" --name bench:img --cmd /bin/true >/dev/null
# The runtimes' state dirs live on a tmpfs, as /run is on real hosts (it is
# not on this VM); each group mounts it in its private mount namespace.
S="$BENCH/state"
mkdir -p "$S"

echo "== group 1: bundle, cgroup2 mount namespace" >&2
cat > "$BENCH/group1.sh" <<EOF
#!/bin/sh
set -e
mount --make-rprivate /
mount -t cgroup2 none /sys/fs/cgroup
mount -t tmpfs none $S
mkdir -p $BENCH/ext4
mount -o loop $BENCH/ext4.img $BENCH/ext4
$KILN --store $BENCH/ext4/store image from-dir $B/rootfs --name bench:img --cmd /bin/true >/dev/null
$KILN --store $BENCH/ext4/store --root $S/k run bench:img true
for i in \$(seq $ROUNDS); do
${HF[*]} --export-json $BENCH/res/bundle-cg2-\$i.json \\
  -n kiln "$KILN --root $S/k run --bundle $B k" \\
  -n crun "crun --cgroup-manager=disabled --root $S/c run --bundle $B c" \\
  -n runc "runc --root $S/r run --bundle $B r" \\
  -n floor "unshare -mpui --fork true" \\
  -n kiln-image "$KILN --root $S/k run bench:img true" \\
  -n kiln-image-fresh-ext4 "$KILN --store $BENCH/ext4/store --root $S/k run bench:img true"
done
EOF
chmod +x "$BENCH/group1.sh"
"$KILN" --root "$S/k" run bench:img true  # extracts the layer once
# A fresh ext4 for the second store: on this VM's root file system removing
# a directory costs ~0.3 ms, on a fresh ext4 a tenth of that.
truncate -s 1G "$BENCH/ext4.img"
mkfs.ext4 -q -F "$BENCH/ext4.img"
unshare -m "$BENCH/group1.sh" >&2
rm -f "$BENCH/ext4.img"

echo "== group 2: bundle, the host's cgroups (v1 fallback here)" >&2
cat > "$BENCH/group2.sh" <<EOF
#!/bin/sh
set -e
mount --make-rprivate /
mount -t tmpfs none $S
for i in \$(seq $ROUNDS); do
${HF[*]} --export-json $BENCH/res/bundle-host-\$i.json \\
  -n kiln "$KILN --root $S/k run --bundle $B k" \\
  -n runc "runc --root $S/r run --bundle $B r"
done
EOF
chmod +x "$BENCH/group2.sh"
unshare -m "$BENCH/group2.sh" >&2

echo "== group 3: image" >&2
"$KILN" image export bench:img -o "$BENCH/img.tar"
# podman in a private mount namespace on vfs, with this host's quirks.
cat > "$BENCH/containers.conf" <<'EOF'
[containers]
pids_limit = 0
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
EOF
cat > "$BENCH/group3.sh" <<EOF
#!/bin/sh
set -e
mount --make-rprivate /
mount -t cgroup2 none /sys/fs/cgroup
mount -t tmpfs none /var/lib/containers 2>/dev/null || { mkdir -p /var/lib/containers; mount -t tmpfs none /var/lib/containers; }
mount -t tmpfs none /run/containers 2>/dev/null || true
mount -t tmpfs none $S
export CONTAINERS_CONF=$BENCH/containers.conf
P="podman --storage-driver vfs --runtime runc --cgroup-manager cgroupfs --events-backend none"
\$P load -q -i $BENCH/img.tar >/dev/null
for i in \$(seq $ROUNDS); do
hyperfine -N --warmup 3 --runs 10 --style none --export-json $BENCH/res/image-\$i.json \\
  -n kiln-image "$KILN --root $S/k run bench:img true" \\
  -n kiln-bundle "$KILN --root $S/k run --bundle $B k" \\
  -n podman "\$P run --rm --net none localhost/bench:img true"
done
EOF
chmod +x "$BENCH/group3.sh"
unshare -m "$BENCH/group3.sh" >&2

python3 - "$BENCH/res" "$ROUNDS" <<'PY'
import json, os, statistics, sys
res, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    """Per round: command -> median seconds."""
    out = []
    for i in range(1, rounds + 1):
        r = json.load(open(os.path.join(res, f"{name}-{i}.json")))["results"]
        out.append({x["command"]: x["median"] for x in r})
    return out
def ratio(rs, a, b):
    v = sorted(r[a] / r[b] for r in rs)
    return statistics.median(v), v[0], v[-1]
def table(name, title, base):
    rs = load(name)
    print(f"\n### {title}\n\n| command | median of round medians | ratio to {base}: median (range over {rounds} rounds) |\n| --- | ---: | ---: |")
    for cmd in rs[0]:
        m = statistics.median(r[cmd] for r in rs)
        q, lo, hi = ratio(rs, cmd, base)
        f = ".3f" if q < 0.1 else ".2f"
        print(f"| {cmd} | {m*1e3:.2f} ms | {q:{f}} ({lo:{f}}–{hi:{f}}) |")
    return rs
rs = table("bundle-cg2", "Bundle, /bin/true, and the image (cgroup2 mount namespace)", "crun")
for img in ("kiln-image", "kiln-image-fresh-ext4"):
    q, lo, hi = ratio(rs, img, "kiln")
    print(f"\n{img} / kiln (bundle), within each round: {q:.2f} ({lo:.2f}–{hi:.2f})")
table("bundle-host", "Bundle, /bin/true (host cgroups, v1 fallback)", "runc")
rs = table("image", "Image, true (layers already extracted; cgroup2 mount namespace)", "podman")
q, lo, hi = ratio(rs, "kiln-image", "kiln-bundle")
print(f"\nkiln-image / kiln-bundle, within each round: {q:.2f} ({lo:.2f}–{hi:.2f})")
PY
