//! Filesystem operations confined to a root directory: every path is resolved
//! with `openat2(RESOLVE_IN_ROOT)`, so `..` and symlinks (absolute or relative)
//! can never reach outside the root — the way the container itself will see them.

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Opens `path` (relative, already cleaned) under `root` with `flags`,
/// resolving every component inside the root.
pub fn open(root: BorrowedFd, path: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    let path = if path.is_empty() { "." } else { path };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    loop {
        match openat2(root, path, how) {
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Opens the directory at `path` (components separated by '/'), creating missing
/// directories with mode 0755 on the way, each resolved inside the root.
pub fn ensure_dir(root: BorrowedFd, path: &str) -> nix::Result<OwnedFd> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    match open(root, path, dir_flags) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let mut cur = open(root, "", dir_flags)?;
    let mut prefix = String::new();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(comp);
        cur = match open(root, &prefix, dir_flags) {
            Err(Errno::ENOENT) => {
                match mkdirat(cur.as_fd(), comp, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                open(root, &prefix, dir_flags)?
            }
            other => other?,
        };
    }
    Ok(cur)
}

/// Removes `name` in `dir` and, for a directory, everything under it, never
/// following symlinks. A missing entry is not an error.
pub fn remove_all_at(dir: BorrowedFd, name: &str) -> nix::Result<()> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {}
        Err(e) => return Err(e),
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let child = match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    clear_dir(child.as_fd(), |_| true)?;
    match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes every entry of the directory `dir` for which `pick(name)` is true.
pub fn clear_dir(dir: BorrowedFd, mut pick: impl FnMut(&str) -> bool) -> nix::Result<()> {
    for name in list_dir(dir)? {
        if pick(&name) {
            remove_all_at(dir, &name)?;
        }
    }
    Ok(())
}

/// The names in directory `dir`, without `.` and `..`.
pub fn list_dir(dir: BorrowedFd) -> nix::Result<Vec<String>> {
    let fd = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Sets an extended attribute on an open (non-O_PATH) file descriptor.
pub fn set_xattr(fd: BorrowedFd, name: &str, value: &[u8]) -> nix::Result<()> {
    let cname = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: fd is a live descriptor borrowed for the call, `cname` is a
    // NUL-terminated string and `value` is a live slice of `value.len()` bytes.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// Reads an extended attribute of an open file descriptor (`None` if absent).
pub fn get_xattr(fd: BorrowedFd, name: &str) -> nix::Result<Option<Vec<u8>>> {
    let cname = CString::new(name).map_err(|_| Errno::EINVAL)?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: fd is live, `cname` is NUL-terminated and `buf` is a writable
    // buffer of `buf.len()` bytes owned by this frame.
    let rc = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match Errno::result(rc) {
        Ok(n) => {
            buf.truncate(n as usize);
            Ok(Some(buf))
        }
        Err(Errno::ENODATA) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("dotdot")).unwrap();
        let rfd = fs::File::open(&root).unwrap();
        ensure_dir(rfd.as_fd(), "up/made").unwrap();
        ensure_dir(rfd.as_fd(), "dotdot/also").unwrap();
        assert!(root.join("made").is_dir());
        assert!(root.join("also").is_dir());
        assert_eq!(fs::read_dir(outer.path()).unwrap().count(), 1);
    }

    #[test]
    fn remove_all_does_not_follow_links() {
        let outer = tempfile::tempdir().unwrap();
        let keep = outer.path().join("keep");
        fs::create_dir(&keep).unwrap();
        fs::write(keep.join("f"), "x").unwrap();
        let root = outer.path().join("root");
        fs::create_dir_all(root.join("d/e")).unwrap();
        std::os::unix::fs::symlink(&keep, root.join("d/link")).unwrap();
        let rfd = fs::File::open(&root).unwrap();
        remove_all_at(rfd.as_fd(), "d").unwrap();
        assert!(!root.join("d").exists());
        assert!(keep.join("f").exists());
    }
}
