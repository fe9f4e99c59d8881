//! CVE-2019-5736: no process in a container may reach a writable kiln binary
//! through `/proc/<pid>/exe`.
//!
//! A container's init (and a `kiln exec` process) is a clone of kiln, so
//! while it sets the container up its exe is the host's kiln. Two things keep
//! that binary out of reach:
//!
//! - Until it execs, that process is non-dumpable (init.rs), so no process in
//!   the container can open its `/proc/<pid>/exe` (that takes CAP_SYS_PTRACE
//!   in the host's user namespace).
//! - It does not exec the container's process itself: it execs kiln-dmz
//!   (src/runtime/dmz/kiln-dmz.rs, a 1 KiB freestanding program built by
//!   build.rs and embedded here) from a memfd sealed against writes, and
//!   kiln-dmz execs the container's process. So whatever a container process
//!   reaches as `/proc/self/exe` at that moment — a container whose process is
//!   `/proc/self/exe`, or a `#!/proc/self/exe` script — is that sealed copy.
//!
//! The cost is one exec of a 1 KiB static program (about 60 µs), where
//! re-executing kiln itself from a sealed copy cost 0.5 ms per container, and
//! the memfd copy a rootless kiln needed cost 8 ms.

use super::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, SealFlag, fcntl};
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// kiln-dmz, as build.rs compiled it for this target.
const DMZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kiln-dmz"));

/// `MFD_EXEC` (Linux 6.3): says the memfd is meant to be executed.
const MFD_EXEC: libc::c_uint = 0x10;

/// A memfd holding kiln-dmz, sealed against every change (close-on-exec).
/// Made before the seccomp filter is loaded, which may forbid memfds.
pub fn helper() -> Result<OwnedFd> {
    let fd = memfd(libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING).map_err(|e| sys(e, "memfd"))?;
    let mut written = 0;
    while written < DMZ.len() {
        match nix::unistd::write(&fd, &DMZ[written..]) {
            Ok(n) => written += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys(e, "write")),
        }
    }
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).map_err(|e| sys(e, "seal"))?;
    Ok(fd)
}

fn sys(source: Errno, how: &str) -> Error {
    Error::Sys {
        what: format!("{how} kiln-dmz (CVE-2019-5736 guard)"),
        source,
    }
}

/// memfd_create, saying MFD_EXEC where the kernel knows it (it warns otherwise).
fn memfd(flags: libc::c_uint) -> std::result::Result<OwnedFd, Errno> {
    for f in [flags | MFD_EXEC, flags] {
        // SAFETY: the name is a NUL-terminated literal.
        let rc = unsafe { libc::memfd_create(c"kiln-dmz".as_ptr(), f) };
        match Errno::result(rc) {
            // SAFETY: a fresh descriptor from memfd_create, owned by nobody else.
            Ok(raw) => return Ok(unsafe { OwnedFd::from_raw_fd(raw) }),
            Err(Errno::EINVAL) if f & MFD_EXEC != 0 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EINVAL)
}

/// Replaces this process with `path` (argv and envp as given), by way of
/// kiln-dmz in `helper`. Returns only the error when kiln-dmz cannot run;
/// once it runs, it reports a failing exec of `path` itself (126/127).
pub fn exec(helper: &OwnedFd, path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
    let mut args: Vec<&CStr> = Vec::with_capacity(argv.len() + 1);
    args.push(path);
    args.extend(argv.iter().map(CString::as_c_str));
    let e = match nix::unistd::execveat(helper, c"", &args, envp, AtFlags::AT_EMPTY_PATH) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if !matches!(e, Errno::ENOSYS | Errno::EPERM) {
        return e;
    }
    // A seccomp profile may allow execve but not execveat: go through /proc.
    let Ok(via_proc) = CString::new(format!("/proc/self/fd/{}", helper.as_raw_fd())) else {
        return e;
    };
    match nix::unistd::execve(&via_proc, &args, envp) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    fn path_of(fd: &OwnedFd) -> String {
        format!("/proc/self/fd/{}", fd.as_raw_fd())
    }

    #[test]
    fn the_helper_is_sealed_against_writes() {
        let fd = helper().unwrap();
        let mut copy = Vec::new();
        File::open(path_of(&fd))
            .unwrap()
            .read_to_end(&mut copy)
            .unwrap();
        assert_eq!(copy, DMZ);
        let w = std::fs::OpenOptions::new().write(true).open(path_of(&fd));
        let wrote = w.and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(wrote.is_err(), "the sealed helper took a write");
        let seals = SealFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GET_SEALS).unwrap());
        assert!(seals.contains(SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_SEAL));
    }

    /// kiln-dmz PATH ARGV0 ARGS... runs PATH with ARGV0 ARGS... and the
    /// environment untouched.
    #[test]
    fn the_helper_runs_the_program_with_its_argv_and_env() {
        let fd = helper().unwrap();
        let out = Command::new(path_of(&fd))
            .arg0("/bin/sh")
            .args(["my-sh", "-c", "echo \"$0|$1|$DMZ_TEST\"", "zero", "one"])
            .env("DMZ_TEST", "env ok")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "zero|one|env ok\n");
        assert!(out.status.success());
        let out = Command::new(path_of(&fd))
            .arg0("/bin/cat")
            .args(["my-cat", "/proc/self/cmdline"])
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"my-cat\0/proc/self/cmdline\0");
    }

    #[test]
    fn the_helper_reports_a_failed_exec_with_kilns_codes() {
        let fd = helper().unwrap();
        let missing = Command::new(path_of(&fd))
            .arg0("/no/such/program")
            .arg("x")
            .output()
            .unwrap();
        assert_eq!(missing.status.code(), Some(127));
        assert_eq!(
            String::from_utf8_lossy(&missing.stderr),
            "kiln: exec /no/such/program: no such file or directory\n"
        );
        let dir = Command::new(path_of(&fd))
            .arg0("/")
            .arg("x")
            .output()
            .unwrap();
        assert_eq!(dir.status.code(), Some(126));
        assert!(String::from_utf8_lossy(&dir.stderr).contains("permission denied"));
        let bare = Command::new(path_of(&fd)).output().unwrap();
        assert_eq!(bare.status.code(), Some(127));
        assert!(String::from_utf8_lossy(&bare.stderr).starts_with("kiln-dmz: usage"));
    }
}
