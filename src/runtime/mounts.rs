//! One OCI mount entry → mount(2) calls inside the container's root, with the
//! destination resolved inside the root (a symlink in the image can never
//! redirect a mount onto the host: CVE-2021-30465) and mounted through
//! `/proc/self/fd/N` of the opened target, so nothing can swap it in between.

use super::{Context, Error, Result};
use crate::inroot;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Mount options split into flags, propagation changes and fs data.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub flags: MsFlags,
    pub clear: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
}

pub fn parse_options(opts: &[String]) -> Result<Options> {
    let mut o = Options {
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
    };
    for opt in opts {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation.push(propagation(opt).expect("listed above"));
                continue;
            }
            // Not mount(2) options: `mount_entry` acts on them (runc's extension).
            "tmpcopyup" | "notmpcopyup" => continue,
            "idmap" | "ridmap" => {
                return Err(Error::Config(format!(
                    "mount option {opt:?} is not supported"
                )));
            }
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.clear |= clear;
    }
    Ok(o)
}

/// Propagation keywords (`rslave`, …) as mount flags.
pub fn propagation(s: &str) -> Option<MsFlags> {
    let rec = s.starts_with('r') && s != "r";
    let base = match s.trim_start_matches('r') {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    };
    Some(if rec { base | MsFlags::MS_REC } else { base })
}

/// `/proc/self/fd/N` for an fd.
pub fn fd_path(fd: BorrowedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Makes sure `dest` (relative to `root`) exists — a file if `file`, else a
/// directory — and opens it O_PATH, everything resolved inside `root`.
pub fn open_target(root: BorrowedFd, dest: &str, file: bool) -> Result<OwnedFd> {
    let dest = dest.trim_start_matches('/');
    let what = || format!("mount target /{dest}");
    if let Ok(fd) = inroot::open(root, dest, OFlag::O_PATH) {
        return Ok(fd);
    }
    let (parent, name) = match dest.rfind('/') {
        Some(i) => (&dest[..i], &dest[i + 1..]),
        None => ("", dest),
    };
    let pfd = inroot::ensure_dir(root, parent).sys(what)?;
    if file {
        match openat(
            &pfd,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        ) {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).sys(what),
        }
    } else {
        match nix::sys::stat::mkdirat(&pfd, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).sys(what),
        }
    }
    inroot::open(root, dest, OFlag::O_PATH).sys(what)
}

/// Performs one OCI mount into the root filesystem opened as `root`; the
/// target is resolved inside it (CVE-2021-30465) and mounted through its fd.
pub fn mount_entry(root: BorrowedFd, m: &Mount, bundle: &Path) -> Result<()> {
    let typ = m.typ().clone().unwrap_or_default();
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]))?;
    let dest = m.destination().to_string_lossy().into_owned();
    let is_bind = opts.flags.contains(MsFlags::MS_BIND) || typ == "bind";
    let source = m.source().clone().map(|s| {
        if s.is_relative() && is_bind {
            bundle.join(s)
        } else {
            s
        }
    });
    let src_is_file = is_bind
        && source
            .as_ref()
            .is_some_and(|s| s.metadata().is_ok_and(|md| !md.is_dir()));
    let target = open_target(root, &dest, src_is_file)?;
    let tpath = fd_path(target.as_fd());
    let what = || {
        format!(
            "mount {} on {dest}",
            source
                .as_ref()
                .map_or(typ.clone(), |s| s.display().to_string())
        )
    };
    match typ.as_str() {
        _ if is_bind => {
            let src = source
                .as_ref()
                .ok_or_else(|| Error::Config(format!("bind mount on {dest} has no source")))?;
            mount_bind(root, src, &tpath, &dest, opts.flags).sys(what)?;
        }
        "cgroup" | "cgroup2" => mount_cgroup(root, &dest, &tpath, &typ, opts.flags)?,
        "sysfs" => mount_sysfs(root, &tpath, &dest, opts.flags).sys(what)?,
        _ => {
            let src = source
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| typ.clone());
            let data = opts.data.join(",");
            let data = (!data.is_empty()).then_some(data.as_str());
            mount(
                Some(src.as_str()),
                &tpath,
                Some(typ.as_str()),
                opts.flags,
                data,
            )
            .sys(what)?;
            if typ == "tmpfs" && wants_copy_up(m) {
                copy_up(target.as_fd(), root, &dest)?;
            }
        }
    }
    if !opts.propagation.is_empty() {
        let top = reopen(root, &dest)?;
        for p in &opts.propagation {
            mount(
                None::<&str>,
                &fd_path(top.as_fd()),
                None::<&str>,
                *p,
                None::<&str>,
            )
            .sys(what)?;
        }
    }
    Ok(())
}

/// A bind mount, then the remount that applies its other flags (ro, nosuid,
/// ...) to the new mount, reopened: `target` still names what lies under it.
fn mount_bind(
    root: BorrowedFd,
    src: &Path,
    target: &Path,
    dest: &str,
    flags: MsFlags,
) -> nix::Result<()> {
    let rec = flags & MsFlags::MS_REC;
    mount(
        Some(src),
        target,
        None::<&str>,
        MsFlags::MS_BIND | rec,
        None::<&str>,
    )?;
    let extra = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if extra.is_empty() {
        return Ok(());
    }
    let top = inroot::open(root, dest.trim_start_matches('/'), OFlag::O_PATH)?;
    remount_bind(&fd_path(top.as_fd()), extra)
}

/// sysfs; without its own network namespace a container may not mount one,
/// so the host's is bound instead, read-only.
fn mount_sysfs(root: BorrowedFd, target: &Path, dest: &str, flags: MsFlags) -> nix::Result<()> {
    match mount(Some("sysfs"), target, Some("sysfs"), flags, None::<&str>) {
        Err(Errno::EPERM) => {
            let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some("/sys"), target, None::<&str>, rec, None::<&str>)?;
            let top = inroot::open(root, dest.trim_start_matches('/'), OFlag::O_PATH)?;
            remount_bind(&fd_path(top.as_fd()), flags | MsFlags::MS_RDONLY)
        }
        other => other,
    }
}

/// runc's `tmpcopyup` (podman asks for it on the tmpfs it mounts over /run,
/// /tmp and /var/tmp of a read-only container): the last of `tmpcopyup` and
/// `notmpcopyup` wins.
fn wants_copy_up(m: &Mount) -> bool {
    let opts = m.options().as_deref().unwrap_or(&[]);
    opts.iter()
        .rev()
        .find(|o| *o == "tmpcopyup" || *o == "notmpcopyup")
        .is_some_and(|o| o == "tmpcopyup")
}

/// Fills the tmpfs just mounted on `dest` with what the directory under it
/// holds: `under` was opened before the mount, so it still names that directory.
fn copy_up(under: BorrowedFd, root: BorrowedFd, dest: &str) -> Result<()> {
    let top = reopen(root, dest)?;
    copy_tree(&fd_path(under), &fd_path(top.as_fd()))
        .ctx("copy up into the tmpfs on", Path::new(dest))
}

/// Copies directories, regular files and symlinks (never followed) with their
/// owners and modes; device nodes, fifos and sockets are left out.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let md = std::fs::symlink_metadata(&src)?;
        let ft = md.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst)?;
        } else {
            continue;
        }
        std::os::unix::fs::lchown(&dst, Some(md.uid()), Some(md.gid()))?;
        if !ft.is_symlink() {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
        }
    }
    Ok(())
}

/// Opens `dest` again after something was mounted on it: an fd opened before
/// the mount still names the directory underneath, not the new mount.
fn reopen(root: BorrowedFd, dest: &str) -> Result<OwnedFd> {
    inroot::open(root, dest.trim_start_matches('/'), OFlag::O_PATH)
        .sys(|| format!("reopen mount target {dest}"))
}

/// Re-applies flags to a bind mount, keeping flags the kernel locked (in a
/// user namespace, nosuid/nodev/noexec/ro of the source cannot be dropped).
pub fn remount_bind(target: &Path, flags: MsFlags) -> nix::Result<()> {
    let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    match mount(
        None::<&str>,
        target,
        None::<&str>,
        base | flags,
        None::<&str>,
    ) {
        Err(Errno::EPERM) => {
            let st = nix::sys::statvfs::statvfs(target)?;
            let locked = MsFlags::from_bits_truncate(st.flags().bits() as libc::c_ulong)
                & (MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOATIME
                    | MsFlags::MS_RELATIME);
            mount(
                None::<&str>,
                target,
                None::<&str>,
                base | flags | locked,
                None::<&str>,
            )
        }
        other => other,
    }
}

/// cgroup mounts: cgroup2 where the host is unified; on hybrid/legacy hosts a
/// tmpfs with each v1 hierarchy (and the unified one) mounted beneath.
fn mount_cgroup(
    root: BorrowedFd,
    dest: &str,
    target: &Path,
    typ: &str,
    flags: MsFlags,
) -> Result<()> {
    mount_cgroup_at(root, dest, target, typ, flags).sys(|| format!("mount cgroup on {dest}"))
}

fn mount_cgroup_at(
    root: BorrowedFd,
    dest: &str,
    target: &Path,
    typ: &str,
    flags: MsFlags,
) -> nix::Result<()> {
    let unified_only = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if typ == "cgroup2" || unified_only {
        return match mount(
            Some("cgroup2"),
            target,
            Some("cgroup2"),
            flags,
            None::<&str>,
        ) {
            Err(Errno::EPERM) if unified_only => {
                bind_own_cgroup("/sys/fs/cgroup", target, flags, |c| c.is_empty())
            }
            other => other,
        };
    }
    let ro = flags & MsFlags::MS_RDONLY;
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        flags & !MsFlags::MS_RDONLY,
        Some("mode=755"),
    )?;
    let top = inroot::open(root, dest.trim_start_matches('/'), OFlag::O_PATH)?;
    let target = &fd_path(top.as_fd());
    for m in super::mountinfo::read() {
        let (fstype, opts) = (m.fstype.as_str(), m.super_opts.as_str());
        let mnt = m.mountpoint.to_string_lossy();
        let Some(name) = mnt.strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        if name.contains('/') {
            continue;
        }
        let sub = target.join(name);
        let _ = std::fs::create_dir(&sub);
        if fstype == "cgroup2" {
            match mount(Some("cgroup2"), &sub, Some("cgroup2"), flags, None::<&str>) {
                Err(Errno::EPERM) => bind_own_cgroup(&mnt, &sub, flags, |c| c.is_empty())?,
                other => other?,
            }
        } else if fstype == "cgroup" {
            let keep: Vec<&str> = opts
                .split(',')
                .filter(|o| {
                    !matches!(
                        *o,
                        "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec"
                    )
                })
                .collect();
            match mount(
                Some("cgroup"),
                &sub,
                Some("cgroup"),
                flags,
                Some(keep.join(",").as_str()),
            ) {
                Err(Errno::EPERM) => bind_own_cgroup(&mnt, &sub, flags, |c| {
                    !c.is_empty() && c.split(',').all(|c| keep.contains(&c))
                })?,
                other => other?,
            }
        }
    }
    if !ro.is_empty() {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | flags | ro,
            Some("mode=755"),
        )?;
    }
    Ok(())
}

/// Where a hierarchy cannot be mounted (a user namespace without a cgroup
/// namespace), binds this process's own cgroup of it from the host mount
/// `host`, as runc does; `ours` picks the /proc/self/cgroup line by its
/// controllers field.
fn bind_own_cgroup(
    host: &str,
    sub: &Path,
    flags: MsFlags,
    ours: impl Fn(&str) -> bool,
) -> nix::Result<()> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let path = own
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            ours(controllers).then_some(path)
        })
        .ok_or(Errno::ENOENT)?;
    let src = Path::new(host).join(path.trim_start_matches('/'));
    let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(&src), sub, None::<&str>, rec, None::<&str>)?;
    remount_bind(sub, flags & !(rec | MsFlags::MS_REMOUNT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = parse_options(&[
            "rbind".into(),
            "ro".into(),
            "rslave".into(),
            "mode=755".into(),
            "rw".into(),
        ])
        .unwrap();
        assert!(o.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC));
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, vec!["mode=755"]);
        assert!(parse_options(&["idmap".into()]).is_err());
    }
}
