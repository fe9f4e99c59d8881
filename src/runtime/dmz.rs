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
use libc::c_char;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

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

/// `/proc/self/fd/N` for `fd`: kiln-dmz by path, where an fd cannot be
/// executed directly (std's Command, a profile refusing execveat).
pub fn proc_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The exec of `path` (argv and envp as given) by way of kiln-dmz, prepared:
/// every string and pointer array made up front, so that `exec` allocates
/// nothing and can run in a vfork-like child (reaper.rs).
pub struct Handover {
    helper: RawFd,
    via_proc: CString,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    // What the pointers point into.
    _strings: (CString, Vec<CString>, Vec<CString>),
}

impl Handover {
    pub fn new(helper: &OwnedFd, path: CString, argv: Vec<CString>, envp: Vec<CString>) -> Self {
        let nul = std::iter::once(std::ptr::null());
        let args = std::iter::once(path.as_ptr()).chain(argv.iter().map(|a| a.as_ptr()));
        Handover {
            helper: helper.as_raw_fd(),
            via_proc: CString::new(proc_path(helper)).expect("no NUL"),
            argv: args.chain(nul.clone()).collect(),
            envp: envp.iter().map(|e| e.as_ptr()).chain(nul).collect(),
            _strings: (path, argv, envp),
        }
    }

    /// Replaces this process with kiln-dmz, which execs the process; returns
    /// only the errno when kiln-dmz cannot run (once it runs, it reports a
    /// failing exec of the process itself, 126/127). Raw system calls only.
    pub fn exec(&self) -> Errno {
        // SAFETY: execveat/execve with NUL-terminated strings and
        // NULL-terminated pointer arrays that `self` keeps alive.
        unsafe {
            let (argv, envp) = (self.argv.as_ptr(), self.envp.as_ptr());
            libc::syscall(
                libc::SYS_execveat,
                self.helper,
                c"".as_ptr(),
                argv,
                envp,
                libc::AT_EMPTY_PATH,
            );
            let e = Errno::last_raw();
            if e != libc::ENOSYS && e != libc::EPERM {
                return Errno::from_raw(e);
            }
            // A seccomp profile may allow execve but not execveat: go through /proc.
            libc::syscall(libc::SYS_execve, self.via_proc.as_ptr(), argv, envp);
            Errno::from_raw(Errno::last_raw())
        }
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
        proc_path(fd)
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
