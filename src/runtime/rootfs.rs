//! The root filesystem, in order: propagation, the rootfs mount (a bind, or an
//! overlay of cached layers for `kiln run`), the config's mounts, devices, then
//! pivot_root (chroot where pivot_root cannot work), masked and read-only paths.

use super::mounts::{self, fd_path, open_target};
use super::{Context, Error, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod, mknodat};
use nix::unistd::{chdir, chroot, pivot_root};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// The annotation with which `kiln run` asks for an overlay root:
/// `lowerdir=…:…,upperdir=…,workdir=…` (mounted inside the container's own
/// mount namespace, so nothing is left on the host when it goes away).
pub const OVERLAY_ANNOTATION: &str = "run.kiln.rootfs.overlay";

/// statfs magic of ramfs, which an initramfs root is (pivot_root fails there).
const RAMFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x8584_58f6);

/// The default devices every container gets (OCI runtime-spec "Default Devices").
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Mounts everything under `rootfs` while still seeing the host's filesystem.
pub fn prepare(spec: &Spec, rootfs: &Path, bundle: &Path, mknod_ok: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(mounts::propagation)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    // Nothing the container mounts may propagate back to the host.
    mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
        .sys(|| "set / propagation".into())?;
    // pivot_root refuses a new root whose parent mount is shared (and the
    // bind below must not propagate): make that parent private, as runc does.
    // After a recursive change to anything but shared, nothing is shared.
    if !prop.contains(MsFlags::MS_REC) || prop.contains(MsFlags::MS_SHARED) {
        parent_mount_private(rootfs)?;
    }
    let overlay = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(OVERLAY_ANNOTATION));
    match overlay {
        Some(opts) => mount_overlay(rootfs, opts)?,
        // pivot_root needs the new root to be a mount point.
        None => mount(
            Some(rootfs),
            rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx("bind root", rootfs)?,
    }
    let root = File::open(rootfs).ctx("open root", rootfs)?;
    let mut dev_from_config = false;
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        mounts::mount_entry(root.as_fd(), m, bundle)?;
        dev_from_config |= m.destination() == Path::new("/dev");
    }
    if dev_from_config {
        default_devices(root.as_fd(), mknod_ok)?;
    }
    for d in linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]) {
        device(root.as_fd(), d, mknod_ok)?;
    }
    Ok(())
}

/// /dev/null & co., the /dev/fd links and /dev/ptmx (→ pts/ptmx).
fn default_devices(root: BorrowedFd, mknod_ok: bool) -> Result<()> {
    if mknod_ok {
        default_nodes(root)?;
    }
    for (name, major, minor) in DEFAULT_DEVICES.iter().filter(|_| !mknod_ok) {
        make_device(
            root,
            &format!("dev/{name}"),
            SFlag::S_IFCHR,
            *major,
            *minor,
            0o666,
            0,
            0,
            mknod_ok,
        )?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        let _ = nix::unistd::symlinkat(target, root, format!("dev/{link}").as_str());
    }
    let has_pts = crate::inroot::open(root, "dev/pts/ptmx", OFlag::O_PATH).is_ok();
    if has_pts {
        let _ = nix::unistd::unlinkat(root, "dev/ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir);
        nix::unistd::symlinkat("pts/ptmx", root, "dev/ptmx").sys(|| "create /dev/ptmx".into())?;
    }
    Ok(())
}

/// The default device nodes, made in /dev (resolved once, inside the root)
/// by name: root's own, mode 0666 without a chmod (umask 0 meanwhile), so
/// nothing ever follows a path that could have been swapped for a symlink.
fn default_nodes(root: BorrowedFd) -> Result<()> {
    let dev = crate::inroot::open(root, "dev", OFlag::O_PATH | OFlag::O_DIRECTORY)
        .sys(|| "open /dev of the container".into())?;
    let umask = nix::sys::stat::umask(Mode::empty());
    let made = DEFAULT_DEVICES
        .iter()
        .try_for_each(|&(name, major, minor)| {
            let _ = nix::unistd::unlinkat(&dev, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
            let mode = Mode::from_bits_truncate(0o666);
            mknodat(&dev, name, SFlag::S_IFCHR, mode, makedev(major, minor))
                .sys(|| format!("create device /dev/{name}"))
        });
    nix::sys::stat::umask(umask);
    made
}

fn device(root: BorrowedFd, d: &LinuxDevice, mknod_ok: bool) -> Result<()> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::Config(
                "device type 'a' is for cgroup rules only".into(),
            ));
        }
    };
    let path = d
        .path()
        .to_string_lossy()
        .trim_start_matches('/')
        .to_string();
    let mode = d.file_mode().unwrap_or(0o666);
    make_device(
        root,
        &path,
        kind,
        d.major() as u64,
        d.minor() as u64,
        mode,
        d.uid().unwrap_or(0),
        d.gid().unwrap_or(0),
        mknod_ok,
    )
}

/// mknod inside the root; where that is not allowed (user namespaces), bind
/// the host's node over an empty file instead, as runc does.
#[allow(clippy::too_many_arguments)]
fn make_device(
    root: BorrowedFd,
    path: &str,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mknod_ok: bool,
) -> Result<()> {
    let what = || format!("create device /{path}");
    let target = open_target(root, path, true)?;
    let tpath = fd_path(target.as_fd());
    if mknod_ok {
        // Replace the placeholder file open_target made with the node itself.
        let parent_rel = path.rsplit_once('/').map_or("", |(p, _)| p);
        let name = path.rsplit_once('/').map_or(path, |(_, n)| n);
        let pfd =
            crate::inroot::open(root, parent_rel, OFlag::O_PATH | OFlag::O_DIRECTORY).sys(what)?;
        drop(target);
        let _ = nix::unistd::unlinkat(&pfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        let dev = makedev(major, minor);
        let pdir = fd_path(pfd.as_fd());
        let full = pdir.join(name);
        mknod(&full, kind, Mode::from_bits_truncate(mode), dev).sys(what)?;
        nix::unistd::chown(&full, Some(uid.into()), Some(gid.into())).sys(what)?;
        nix::sys::stat::fchmodat(
            &pfd,
            name,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .sys(what)?;
        return Ok(());
    }
    let host = format!("/dev/{}", path.trim_start_matches("dev/"));
    mount(
        Some(host.as_str()),
        &tpath,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .sys(what)
}

/// Makes `rootfs` the container's `/`: pivot_root, or chroot when asked
/// (`--no-pivot`) or when the root sits on the initramfs where pivot_root fails.
pub fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    let on_ramfs = on_initial_rootfs();
    chdir(rootfs).ctx("chdir to", rootfs)?;
    if no_pivot || on_ramfs {
        // Move the root mount over / and chroot into it.
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .ctx("move root of", rootfs)?;
        chroot(".").ctx("chroot to", rootfs)?;
        return chdir("/").ctx("chdir to", Path::new("/"));
    }
    // pivot_root(".", ".") stacks the old root on top of the new one…
    pivot_root(".", ".").ctx("pivot_root to", rootfs)?;
    // …keep its unmount from propagating to the host…
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .sys(|| "make old root a slave".into())?;
    // …and detach it, leaving only the new root.
    umount2(".", MntFlags::MNT_DETACH).sys(|| "detach old root".into())?;
    chdir("/").ctx("chdir to", Path::new("/"))
}

/// Whether "/" is the kernel's initial rootfs (an initramfs: ramfs, or tmpfs
/// when the kernel has it), which pivot_root cannot leave.
fn on_initial_rootfs() -> bool {
    match nix::sys::statfs::statfs("/").map(|s| s.filesystem_type()) {
        Ok(RAMFS_MAGIC) => return true,
        // Any other file system is a real root (and reading mountinfo to
        // tell a tmpfs initramfs from a tmpfs root costs 50 µs).
        Ok(t) if t != nix::sys::statfs::TMPFS_MAGIC => return false,
        _ => {}
    }
    // In /proc/self/mountinfo the initial root is the file system type "rootfs".
    let mounts = super::mountinfo::read();
    super::mountinfo::holding(&mounts, Path::new("/")).is_some_and(|m| m.fstype == "rootfs")
}

/// linux.rootfsPropagation on the container's own root, once it is "/":
/// applied before pivot_root it would reach the host's mount.
pub fn apply_propagation(spec: &Spec) -> Result<()> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(mounts::propagation)
    {
        Some(prop) => mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .sys(|| "set the root's propagation".into()),
        None => Ok(()),
    }
}

/// Makes the mount holding `path` private when it is shared.
fn parent_mount_private(path: &Path) -> Result<()> {
    let mounts = super::mountinfo::read();
    match super::mountinfo::holding(&mounts, path) {
        Some(m) if m.is_shared() => mount(
            None::<&str>,
            &m.mountpoint,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .ctx("make private", &m.mountpoint),
        _ => Ok(()),
    }
}

/// After entering the root: hide masked paths, make read-only paths and
/// (if asked) the root itself read-only.
pub fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or(&[])
    {
        mask(Path::new(p))?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or(&[])
    {
        readonly(Path::new(p))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        mounts::remount_bind(Path::new("/"), MsFlags::MS_RDONLY)
            .sys(|| "make / read-only".into())?;
    }
    Ok(())
}

/// Masks a path: /dev/null over a file, an empty read-only tmpfs over a directory.
fn mask(path: &Path) -> Result<()> {
    let what = || format!("mask {}", path.display());
    match std::fs::metadata(path) {
        Err(_) => Ok(()),
        Ok(md) if md.is_dir() => mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0"),
        )
        .sys(what),
        Ok(_) => match mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            Err(Errno::ENOENT) => Ok(()),
            other => other.sys(what),
        },
    }
}

fn readonly(path: &Path) -> Result<()> {
    let what = || format!("make {} read-only", path.display());
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Err(Errno::ENOENT) => return Ok(()),
        other => other.sys(what)?,
    }
    mounts::remount_bind(
        path,
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
    )
    .sys(what)
}

/// Mounts the overlay root; kernels before 5.10 do not know `volatile`.
fn mount_overlay(rootfs: &Path, opts: &str) -> Result<()> {
    let try_mount = |o: &str| {
        mount(
            Some("overlay"),
            rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(o),
        )
    };
    match try_mount(opts) {
        Err(nix::errno::Errno::EINVAL) if opts.contains(",volatile") => {
            try_mount(&opts.replace(",volatile", ""))
        }
        other => other,
    }
    .ctx("mount overlay root on", rootfs)
}
