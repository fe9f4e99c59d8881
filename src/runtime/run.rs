//! `kiln run --bundle B ID` (runc's run): create, start and wait in the
//! foreground, forwarding signals, then delete; or detach after starting.

use super::container::Container;
use super::create::{CreateOpts, create_with};
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

/// The signals a foreground kiln waits for: the forwarded ones and SIGCHLD.
pub fn forwarded_signals() -> SigSet {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    mask
}

/// Runs the container; returns its exit status (128+N for signal N), or 0 when detached.
pub fn run(
    root: &Path,
    o: &CreateOpts,
    detach: bool,
    keep: bool,
    console_fd: Option<OwnedFd>,
) -> Result<i32> {
    let spec = super::spec::load_bundle(&o.bundle)?;
    run_with(root, o, &spec, detach, keep, console_fd, &mut || {})
}

/// `run` with the config in hand (`kiln run IMAGE` makes it), not read
/// from the bundle. `while_running` is called once the process has
/// started, before kiln waits for it: work for time kiln would otherwise
/// spend waiting.
pub fn run_with(
    root: &Path,
    o: &CreateOpts,
    spec: &oci_spec::runtime::Spec,
    detach: bool,
    keep: bool,
    console_fd: Option<OwnedFd>,
    while_running: &mut dyn FnMut(),
) -> Result<i32> {
    let mask = forwarded_signals();
    // A terminal with nowhere to send it: kiln is the terminal, in the foreground.
    let relay_channel = match (&console_fd, &o.console_socket) {
        (None, None) if !detach && wants_terminal(spec) => Some(super::tty::channel()?),
        _ => None,
    };
    let (console_fd, ours) = match relay_channel {
        Some((theirs, ours)) => (Some(theirs), Some(ours)),
        None => (console_fd, None),
    };
    // Signals wait from before the process exists: one that came between its
    // start and the wait would kill kiln and orphan the container.
    if !detach {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).sys(|| "block signals".into())?;
    }
    let created = create_with(root, o, spec, Mode::Run, console_fd)
        .and_then(|c| super::start::poststart(&c, spec).map(|()| c));
    if created.is_ok() {
        while_running();
    }
    let c = match created {
        Ok(c) if !detach => c,
        other => {
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&mask), None);
            return other.map(|_| 0);
        }
    };
    let code = foreground(&c, &mask, ours.as_ref());
    if !keep {
        delete::delete_with(root, c.id(), true, Some(spec))?;
    }
    code
}

/// Waits for the process in the foreground: signals forwarded, and with
/// `relay_end` (the kiln end of a `tty::channel`) its terminal relayed.
pub fn foreground(c: &Container, mask: &SigSet, relay_end: Option<&OwnedFd>) -> Result<i32> {
    // Block the signals before the relay's threads exist, so that they
    // inherit the mask and only the waiting thread takes signals.
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(mask), None).sys(|| "block signals".into())?;
    let code = match relay_end.map(super::tty::Relay::start).transpose() {
        Ok(relay) => {
            let code = wait_forwarding(c, mask, relay.as_ref());
            if let Some(r) = relay {
                r.finish();
            }
            code
        }
        Err(e) => {
            let _ = kill(Pid::from_raw(c.record.pid), Signal::SIGKILL);
            Err(e)
        }
    };
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(mask), None);
    code
}

/// Whether the process asks for a terminal.
fn wants_terminal(spec: &oci_spec::runtime::Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// Waits for the container's init (our child), passing signals on to it;
/// with a terminal relay, window size changes go to the pty instead.
pub fn wait_forwarding(
    c: &Container,
    mask: &SigSet,
    relay: Option<&super::tty::Relay>,
) -> Result<i32> {
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
        match (sig, relay) {
            (Signal::SIGCHLD, _) => {}
            (Signal::SIGWINCH, Some(r)) => r.resize(),
            _ => {
                let _ = kill(pid, sig);
            }
        }
    }
}
