//! kiln's minimal init (`kiln run --init`, the default for images): pid 1
//! forks the container's process, forwards every signal to it, reaps every
//! zombie, and exits with the process's status (128+N for a signal).

use super::{Context, Result, init};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use oci_spec::runtime::Spec;
use std::convert::Infallible;
use std::path::Path;

pub fn exec(exe: &Path, spec: &Spec) -> Result<Infallible> {
    let all = SigSet::all();
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))
        .sys(|| "block signals".into())?;
    // SAFETY: this process is single-threaded (it is the container's init); the child
    // only restores its signal mask and execs.
    match unsafe { fork() }.sys(|| "fork the container process".into())? {
        ForkResult::Child => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            let e = match init::exec(exe, spec) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            eprintln!("kiln: {e}");
            // SAFETY: _exit ends the forked child without running atexit handlers.
            unsafe { libc::_exit(e.exit_code()) }
        }
        ForkResult::Parent { child } => supervise(child, &all),
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
