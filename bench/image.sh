#!/usr/bin/env bash
# Image-layer benchmarks: kiln's layer extractor and layer writer against the
# tools people would otherwise use, each group timed in ONE hyperfine run so
# the peers see the same machine state. Prints markdown tables of ratios.
#
#   sudo bench/image.sh            # warm page cache (the default)
#   sudo DROP_CACHES=1 bench/image.sh   # also drop the page cache before every run
#
# Needs root (device nodes in the tree, umoci unpack with real owners, and
# drop_caches), debootstrap, hyperfine, umoci, python3. Everything it makes is
# cached under $KILN_BENCH_DIR (default /var/tmp/kiln-bench), so reruns only
# rebuild kiln and the store.
set -euo pipefail

BENCH=${KILN_BENCH_DIR:-/var/tmp/kiln-bench}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=${DEBIAN_SUITE:-bookworm}
# minbase alone is ~200 MB, a third of it apt caches we delete; these bring
# the cleaned tree to ~235 MB and ~11,000 entries, like a real base image.
INCLUDE=${DEBIAN_INCLUDE:-perl,python3,locales}
RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" = 0 ] || { echo "bench/image.sh: run as root" >&2; exit 1; }
for t in cargo debootstrap hyperfine umoci python3 mkfs.ext4; do
    command -v "$t" >/dev/null || { echo "bench/image.sh: $t is not installed" >&2; exit 1; }
done
mkdir -p "$BENCH"

echo "== building kiln (release)" >&2
# Its own target dir, so the release build does not wait for (or block) debug
# builds in the checkout. One target dir per checkout: cargo goes by mtimes and
# would take another checkout's older files for built already.
TARGET=${CARGO_TARGET_DIR:-$BENCH/target}
CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
KILN="$TARGET/release/kiln"

TREE="$BENCH/debian"
if [ ! -d "$TREE" ]; then
    echo "== debootstrap $SUITE (minbase + $INCLUDE) into $TREE" >&2
    rm -rf "$TREE.tmp"
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$TREE.tmp" "$MIRROR" >&2
    # What `apt-get clean` and image builders drop: downloaded .debs and lists.
    rm -rf "$TREE.tmp"/var/cache/apt/archives/*.deb "$TREE.tmp"/var/lib/apt/lists/*_*
    mv "$TREE.tmp" "$TREE"
fi

STORE="$BENCH/store"
LAYOUT="$BENCH/layout"
RES="$BENCH/results"
rm -rf "$STORE" "$LAYOUT"
mkdir -p "$RES"

# Outputs go to a scratch ext4 filesystem (a loop-mounted sparse file) made
# afresh before every timed run. Deleting and recreating ~11,000 files on one
# filesystem run after run makes ext4's inode allocator skip the recently
# deleted inodes (recently_deleted() in ialloc.c), which costs seconds of
# system time that vary from run to run; a fresh filesystem removes that
# noise without favouring any contender.
SCRATCH="$BENCH/scratch.img"
OUT="$BENCH/mnt"
mkdir -p "$OUT"
umount "$OUT" 2>/dev/null || true
trap 'umount "$OUT" 2>/dev/null || true' EXIT
truncate -s 4G "$SCRATCH"
FRESH="umount $OUT 2>/dev/null; mkfs.ext4 -q -F $SCRATCH && mount -o loop,noinit_itable $SCRATCH $OUT"

echo "== writing the layer: kiln image from-dir" >&2
"$KILN" --store "$STORE" image from-dir "$TREE" --name deb >&2
LAYER=$("$KILN" --store "$STORE" image inspect deb |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"].split(":")[1])')
BLOB="$STORE/blobs/sha256/$LAYER"
"$KILN" --store "$STORE" image export deb -o "$BENCH/deb.img"
mkdir -p "$LAYOUT"
tar -xf "$BENCH/deb.img" -C "$LAYOUT"
rm -f "$BENCH/deb.img"

PREP="sync"
if [ "${DROP_CACHES:-0}" = 1 ]; then
    PREP="sync; echo 3 > /proc/sys/vm/drop_caches"
fi

echo "== unpack: kiln vs tar -xzf vs umoci unpack" >&2
# Every run starts with no output dirs and the previous run's writeback done.
hyperfine --warmup 1 --runs "$RUNS" --style basic \
    --prepare "$FRESH && mkdir $OUT/tar && $PREP" \
    --export-json "$RES/unpack.json" \
    -n "kiln image unpack" "$KILN --store $STORE image unpack deb $OUT/kiln" \
    -n "tar -xzf" "tar -xzf $BLOB -C $OUT/tar" \
    -n "umoci unpack" "umoci unpack --image $LAYOUT:deb:latest $OUT/umoci" >&2

echo "== write: kiln image from-dir vs tar -c | gzip" >&2
# kiln's store is on the scratch filesystem too, and kiln fsyncs the blob
# into it; the peers only write to /dev/null.
hyperfine --warmup 1 --runs "$RUNS" --style basic \
    --prepare "$FRESH && $PREP" \
    --export-json "$RES/write.json" \
    -n "kiln image from-dir" "$KILN --store $OUT/store image from-dir $TREE --name x" \
    -n "tar -c | gzip -6" "tar -cf - -C $TREE . | gzip -6 > /dev/null" >&2
umount "$OUT"

REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
python3 - "$RES/unpack.json" "$RES/write.json" "$TREE" "$BLOB" "${DROP_CACHES:-0}" "$REV" <<'EOF'
import json, os, subprocess, sys

unpack, write, tree, blob, drop, rev = sys.argv[1:7]
tree_bytes = int(subprocess.check_output(["du", "-sb", tree]).split()[0])
entries = int(subprocess.check_output(f"find {tree} | wc -l", shell=True))
print(f"Tree: {tree_bytes / 1e6:.0f} MB in {entries} entries; layer blob "
      f"{os.path.getsize(blob) / 1e6:.0f} MB (gzip -6). "
      f"Page cache: {'dropped before every run' if drop == '1' else 'warm'}. "
      f"CPUs: {os.cpu_count()}. kiln {rev}.\n")

def table(path, title):
    results = json.load(open(path))["results"]
    kiln = results[0]["median"]
    print(f"| {title} | mean ± σ (s) | median (s) | user + sys (s) | median ÷ kiln's |")
    print("|---|---|---|---|---|")
    for r in results:
        name = r["command"].replace("|", "\\|")
        print(f"| `{name}` | {r['mean']:.3f} ± {r['stddev']:.3f} | {r['median']:.3f} | "
              f"{r['user']:.2f} + {r['system']:.2f} | {r['median'] / kiln:.2f}× |")
    print()

table(unpack, "unpack")
table(write, "write a layer")
EOF
