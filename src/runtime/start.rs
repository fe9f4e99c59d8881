//! `kiln start`: releases a created container's init to exec the process.

use super::container::{Container, EXEC_FIFO};
use super::state::Status;
use super::{Context, Error, Result, hooks};
use nix::fcntl::OFlag;
use std::path::Path;

pub fn start(root: &Path, id: &str) -> Result<()> {
    let mut c = Container::load(root, id)?;
    let _lock = c.lock()?;
    c.require("start", Status::can_start)?;
    let fifo = c.dir.join(EXEC_FIFO);
    // Init holds the fifo open: a non-blocking open for writing succeeds only while it lives.
    let fd = match nix::fcntl::open(
        &fifo,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Err(nix::errno::Errno::ENXIO) => return Err(Error::container(id, "init process is gone")),
        other => other.ctx("open", &fifo)?,
    };
    nix::unistd::write(&fd, b"0").ctx("write", &fifo)?;
    std::fs::remove_file(&fifo).ctx("remove", &fifo)?;
    wait_for_exec(&fd);
    drop(fd);
    c.record.status = Status::Running;
    c.save()?;
    poststart(&c, &c.config()?)
}

/// Waits until init has exec'd the process (or died): its end of the fifo is
/// close-on-exec, and a fifo without readers polls as POLLERR for a writer.
/// So `start` returns once the process runs, and poststart hooks follow it
/// (runtime-spec) instead of racing init's startContainer hooks.
fn wait_for_exec(fd: &std::os::fd::OwnedFd) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// Runs the poststart hooks of `config` for a container whose process has just started.
pub fn poststart(c: &Container, config: &oci_spec::runtime::Spec) -> Result<()> {
    let poststart = hooks::poststart(config);
    if poststart.is_empty() {
        return Ok(());
    }
    // A failing poststart hook is reported, but the container keeps running (runtime-spec).
    if let Err(e) = hooks::run("poststart", poststart, &c.oci_state()) {
        eprintln!("kiln: warning: {e}");
    }
    Ok(())
}
