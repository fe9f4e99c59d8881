//! `kiln run --bundle B ID` (runc's run): create, start and wait in the
//! foreground, forwarding signals, then delete; or detach after starting.

use super::container::Container;
use super::create::{CreateOpts, create};
use super::process::Mode;
use super::{Context, Result, delete};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::path::Path;

/// The signals a foreground kiln passes on to the container.
const FORWARDED: [Signal; 9] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGTSTP,
];

/// Runs the container; returns its exit status (128+N for signal N), or 0 when detached.
pub fn run(
    root: &Path,
    o: &CreateOpts,
    detach: bool,
    keep: bool,
    console_fd: Option<OwnedFd>,
) -> Result<i32> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    let c = create(root, o, Mode::Run, console_fd)?;
    super::start::poststart(&c)?;
    if detach {
        return Ok(0);
    }
    let code = wait_forwarding(&c, &mask);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&mask), None);
    if !keep {
        delete::delete(root, c.id(), true)?;
    }
    code
}

/// Waits for the container's init (our child), passing signals on to it.
pub fn wait_forwarding(c: &Container, mask: &SigSet) -> Result<i32> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(mask), None).sys(|| "block signals".into())?;
    let pid = Pid::from_raw(c.record.pid);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => {}
            Err(e) => return Err(e).sys(|| format!("wait for container {}", c.id())),
        }
        let Ok(sig) = mask.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = kill(pid, sig);
        }
    }
}
