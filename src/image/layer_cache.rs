//! Extracted layers cached per diffID under `<store>/layers/sha256/<hex>`, in
//! overlayfs form (whiteouts as 0/0 devices or xattrs), extracted once and shared
//! by every image and container. A layer directory appears there only complete:
//! it is extracted under `tmp/`, synced, then renamed into place.

use super::extract::{self, Whiteouts};
use super::lock::{FileLock, Mode};
use super::model::Layer;
use super::unpack::layer_reader;
use super::{IoContext, Result, Store};
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode as FMode, SFlag, makedev, mknodat};
use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

/// The directory of an extracted layer (which may not exist yet).
pub fn layer_path(store: &Store, layer: &Layer) -> PathBuf {
    store.root().join("layers/sha256").join(layer.diff_id.hex())
}

/// Returns the extracted directory of `layer`, extracting it first if no
/// complete copy exists. Concurrent callers wait for one extraction.
pub fn ensure(store: &Store, layer: &Layer) -> Result<PathBuf> {
    let dest = layer_path(store, layer);
    if dest.is_dir() {
        return Ok(dest);
    }
    let hex = layer.diff_id.hex();
    let _lock = FileLock::acquire(
        &store.root().join(format!("layers/sha256/{hex}.lock")),
        Mode::Exclusive,
    )?;
    if dest.is_dir() {
        return Ok(dest);
    }
    let tmp = store.root().join("tmp").join(format!("layer-{hex}"));
    // A leftover from a killed extraction of this layer: only the lock holder writes here.
    if tmp.exists() {
        fs::remove_dir_all(&tmp).ctx("remove stale", &tmp)?;
    }
    fs::create_dir(&tmp).ctx("create", &tmp)?;
    let result = (|| {
        let opts = extract::Options::new(Whiteouts::Overlay);
        extract::extract(
            layer_reader(store, layer)?,
            &tmp,
            &opts,
            &format!("layer {}", layer.digest),
        )?;
        let dir = fs::File::open(&tmp).ctx("open", &tmp)?;
        nix::unistd::syncfs(&dir).ctx("sync", &tmp)?;
        fs::rename(&tmp, &dest).ctx("rename into", &dest)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| dest)
}

fn xattr_prefix() -> &'static str {
    if nix::unistd::geteuid().is_root() {
        "trusted.overlay."
    } else {
        "user.overlay."
    }
}

/// Records `name` in `dir` as deleted: a 0/0 character device (overlayfs's
/// whiteout), or where mknod is refused (rootless), an empty file carrying
/// the `user.overlay.whiteout` xattr (overlayfs with `userxattr`, Linux 6.7+).
pub fn make_whiteout(dir: BorrowedFd, name: &str) -> nix::Result<()> {
    match mknodat(dir, name, SFlag::S_IFCHR, FMode::empty(), makedev(0, 0)) {
        Err(Errno::EPERM) => {}
        other => return other,
    }
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let f = openat(dir, name, flags, FMode::from_bits_truncate(0o644))?;
    crate::inroot::set_xattr(f.as_fd(), "user.overlay.whiteout", b"y")?;
    let d = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        FMode::empty(),
    )?;
    crate::inroot::set_xattr(d.as_fd(), "user.overlay.whiteouts", b"y")
}

/// Marks `dir` opaque: lower layers' contents do not show through it.
pub fn mark_opaque(dir: BorrowedFd) -> nix::Result<()> {
    let d = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        FMode::empty(),
    )?;
    crate::inroot::set_xattr(d.as_fd(), &format!("{}opaque", xattr_prefix()), b"y")
}
