//! `kiln kill`: sends a signal to the container's init, or with `--all` to
//! every process in its cgroup.

use super::container::Container;
use super::state::Status;
use super::{Context, Error, Result};
use nix::sys::signal::{Signal, kill as send};
use nix::unistd::Pid;
use std::path::Path;
use std::str::FromStr;

/// Parses `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::Config(format!("unknown signal {s:?}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map_err(|_| Error::Config(format!("unknown signal {s:?}")))
}

pub fn kill(root: &Path, id: &str, sig: Signal, all: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    let status = c.status();
    if !status.can_kill() {
        // runc's words: podman and containerd's shim match on them to tell
        // "already exited" from a real failure.
        return Err(Error::container(
            id,
            format!("cannot kill a {status} container: container not running"),
        ));
    }
    match (all, c.cgroup()) {
        (true, Some(cg)) => cg.kill_all(sig as i32)?,
        _ => send(Pid::from_raw(c.record.pid), sig)
            .sys(|| format!("signal {sig} to container {id}"))?,
    }
    // Frozen processes only die once thawed.
    if status == Status::Paused
        && sig == Signal::SIGKILL
        && let Some(cg) = c.cgroup()
    {
        cg.thaw()?;
    }
    Ok(())
}

/// Waits (up to `timeout`) for a process that is not our child to be gone.
pub fn wait_gone(c: &Container, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while c.init_alive() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGHUP").unwrap(), Signal::SIGHUP);
        assert!(parse_signal("nope").is_err());
    }
}
