//! kiln's minimal init (`kiln run --init`, the default for images): pid 1
//! forks the container's process, forwards every signal to it, reaps every
//! zombie, and exits with the process's status (128+N for a signal).

use super::{Context, Result, init};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use oci_spec::runtime::Spec;
use std::convert::Infallible;
use std::os::fd::OwnedFd;
use std::path::Path;

pub fn exec(exe: &Path, spec: &Spec, dmz: &OwnedFd) -> Result<Infallible> {
    let all = SigSet::all();
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))
        .sys(|| "block signals".into())?;
    // SAFETY: this process is single-threaded (it is the container's init); the child
    // only restores its signal mask and execs.
    match unsafe { fork() }.sys(|| "fork the container process".into())? {
        ForkResult::Child => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            let e = match init::exec(exe, spec, dmz) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            eprintln!("kiln: {e}");
            // SAFETY: _exit ends the forked child without running atexit handlers.
            unsafe { libc::_exit(e.exit_code()) }
        }
        ForkResult::Parent { child } => {
            // kiln's command line (the store path, `-e` values) is no business
            // of the container: pid 1 shows as "kiln-init" inside.
            set_title(c"kiln-init");
            supervise(child, &all)
        }
    }
}

/// Replaces this process's command line (/proc/self/cmdline) and name.
fn set_title(title: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, title.as_ptr(), 0, 0, 0) };
    // Fields 48 and 49 of /proc/self/stat: where argv lives in this process.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some(after_comm) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // after_comm starts at field 3.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<usize>().ok());
    let (Some(start), Some(end)) = (field(48), field(49)) else {
        return;
    };
    let bytes = title.to_bytes_with_nul();
    if end <= start || bytes.len() > end - start {
        return;
    }
    // SAFETY: [start, end) is this process's own argv area (the kernel says so), writable
    // stack memory that nothing else in this single-threaded process reads any more.
    unsafe {
        let area = std::slice::from_raw_parts_mut(start as *mut u8, end - start);
        area.fill(0);
        area[..bytes.len()].copy_from_slice(bytes);
    }
}

fn supervise(child: Pid, all: &SigSet) -> ! {
    loop {
        let Ok(sig) = all.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => exit(code),
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => exit(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends pid 1 (and with it the container) with the process's status.
    unsafe { libc::_exit(code) }
}
