//! CVE-2019-5736: before kiln creates or enters a container, it re-executes
//! itself from a copy of its binary that cannot be written, so no process in a
//! container can overwrite the host's kiln through `/proc/<pid>/exe`.
//!
//! A container's init is a clone of kiln, and a container whose process is
//! `/proc/self/exe` (or a `#!/proc/self/exe` script) runs the kiln binary
//! inside the container. Whatever its `exe` link then points to must not be
//! writable: kiln runs from a read-only bind mount of its own binary (a
//! detached `open_tree` clone, never attached anywhere, so nothing is left
//! behind), or, where that is not allowed (rootless, old kernels), from a
//! sealed memfd copy — the approach runc and crun take.

use super::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, SealFlag, fcntl};
use nix::sys::statvfs::{FsFlags, fstatvfs};
use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

/// Set in the environment of the re-executed kiln, so that a copy which
/// somehow still looks writable fails instead of re-executing forever.
const MARKER: &str = "_KILN_EXESEAL";

/// The binary being run, as the kernel sees it.
const SELF_EXE: &str = "/proc/self/exe";

// <linux/mount.h>, which libc does not carry for glibc targets.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
/// `MFD_EXEC` (Linux 6.3): says the memfd is meant to be executed.
const MFD_EXEC: libc::c_uint = 0x10;

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes sure this process runs from an unwritable copy of kiln, re-executing
/// it with the same arguments and environment if not. Returns only when the
/// binary is sealed; call it before anything else, while single-threaded.
pub fn ensure_sealed() -> Result<()> {
    let reexecuted = std::env::var_os(MARKER).is_some();
    if reexecuted {
        // SAFETY: called first thing in the verb, before kiln starts any thread,
        // so nothing reads the environment concurrently.
        unsafe { std::env::remove_var(MARKER) };
    }
    if is_sealed() {
        return Ok(());
    }
    if reexecuted {
        return Err(seal_error(
            Errno::EROFS,
            "still writable after re-executing",
        ));
    }
    let argv = cstrings(std::env::args_os())?;
    let mut envp = cstrings(std::env::vars_os().map(|(k, v)| {
        let mut kv = k;
        kv.push("=");
        kv.push(v);
        kv
    }))?;
    envp.push(CString::new(format!("{MARKER}=1")).expect("no NUL"));
    let bind_err = match read_only_clone() {
        Ok(fd) => reexec(&fd, &argv, &envp),
        Err(e) => e,
    };
    let memfd_err = match sealed_copy() {
        Ok(fd) => reexec(&fd, &argv, &envp),
        Err(e) => e,
    };
    Err(seal_error(
        memfd_err,
        &format!("read-only bind: {bind_err}; sealed memfd"),
    ))
}

fn seal_error(source: Errno, how: &str) -> Error {
    Error::Sys {
        what: format!("protect the kiln binary (CVE-2019-5736): {how}"),
        source,
    }
}

/// True when `/proc/self/exe` cannot be opened for writing: it sits on a
/// read-only mount, or it is a memfd sealed against writes.
pub fn is_sealed() -> bool {
    let Ok(exe) = File::open(SELF_EXE) else {
        return false;
    };
    if fstatvfs(&exe).is_ok_and(|st| st.flags().contains(FsFlags::ST_RDONLY)) {
        return true;
    }
    fcntl(&exe, FcntlArg::F_GET_SEALS).is_ok_and(|s| {
        SealFlag::from_bits_truncate(s).contains(SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_SEAL)
    })
}

/// A detached, read-only bind mount of the running binary (needs
/// CAP_SYS_ADMIN and Linux 5.12); the mount goes away with its last user.
pub fn read_only_clone() -> Result<OwnedFd, Errno> {
    let path = CString::new(SELF_EXE).expect("no NUL");
    // SAFETY: open_tree takes a NUL-terminated path that outlives the call and
    // integer flags; it returns a new descriptor that we take ownership of.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    let raw = Errno::result(rc)? as libc::c_int;
    // SAFETY: `raw` is a fresh descriptor returned by open_tree, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: `fd` is a live mount descriptor, `empty` a NUL-terminated string
    // and `attr` a properly laid out struct mount_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc)?;
    Ok(fd)
}

/// A memfd holding a copy of the running binary, sealed against every change.
pub fn sealed_copy() -> Result<OwnedFd, Errno> {
    let fd = memfd("kiln", libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)?;
    let mut exe = File::open(SELF_EXE).map_err(io_errno)?;
    let mut copy = File::from(fd);
    // std::io::copy between files uses copy_file_range/sendfile: an in-kernel copy.
    std::io::copy(&mut exe, &mut copy).map_err(io_errno)?;
    let fd = OwnedFd::from(copy);
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&fd, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(fd)
}

/// memfd_create, saying MFD_EXEC where the kernel knows it (it warns otherwise).
fn memfd(name: &str, flags: libc::c_uint) -> Result<OwnedFd, Errno> {
    let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
    for f in [flags | MFD_EXEC, flags] {
        // SAFETY: `name` is NUL-terminated and outlives the call.
        let rc = unsafe { libc::memfd_create(name.as_ptr(), f) };
        match Errno::result(rc) {
            // SAFETY: a fresh descriptor from memfd_create, owned by nobody else.
            Ok(raw) => return Ok(unsafe { OwnedFd::from_raw_fd(raw) }),
            Err(Errno::EINVAL) if f & MFD_EXEC != 0 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EINVAL)
}

/// Executes the file `fd` refers to; returns only the error if that fails.
fn reexec(fd: &impl AsFd, argv: &[CString], envp: &[CString]) -> Errno {
    match nix::unistd::execveat(fd, c"", argv, envp, AtFlags::AT_EMPTY_PATH) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn cstrings(items: impl Iterator<Item = OsString>) -> Result<Vec<CString>> {
    items
        .map(|s| {
            CString::new(s.into_vec())
                .map_err(|_| Error::Config("an argument or variable holds NUL".into()))
        })
        .collect()
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn contents(mut f: File) -> Vec<u8> {
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn sealed_copy_is_the_binary_and_refuses_writes() {
        let fd = sealed_copy().unwrap();
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let copy = contents(File::open(&path).unwrap());
        assert_eq!(copy, contents(File::open(SELF_EXE).unwrap()));
        let w = std::fs::OpenOptions::new().write(true).open(&path);
        let wrote = w.and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(wrote.is_err(), "a sealed copy took a write");
        let seals = fcntl(&fd, FcntlArg::F_GET_SEALS).unwrap();
        assert!(SealFlag::from_bits_truncate(seals).contains(SealFlag::F_SEAL_WRITE));
    }

    #[test]
    fn read_only_clone_refuses_writes() {
        let fd = match read_only_clone() {
            Ok(fd) => fd,
            // Unprivileged (or an old kernel): the memfd copy is used instead.
            Err(Errno::EPERM | Errno::ENOSYS) => return,
            Err(e) => panic!("open_tree: {e}"),
        };
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        // O_TRUNC asks for write access to the mount before the (running,
        // so busy) inode: the mount answers first.
        let err = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS));
        let st = nix::sys::statvfs::statvfs(path.as_str()).unwrap();
        assert!(st.flags().contains(FsFlags::ST_RDONLY));
    }
}
