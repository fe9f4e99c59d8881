//! SCMP_ACT_NOTIFY: handing the listener fd to the seccomp agent at
//! `linux.seccomp.listenerPath`, as the runtime spec describes: one message
//! on a unix stream socket carrying the container process state as JSON and
//! the fd as SCM_RIGHTS, named "seccompFd" in the state's `fds`.

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use oci_spec::runtime::{ContainerProcessState, SECCOMP_FD_NAME, State};

use super::{Error, Result};

/// Sends the listener `fd` of the container process `pid` to the agent
/// listening at `listener_path`, with the container `state` and the
/// profile's `listenerMetadata`.
pub fn send_listener(
    listener_path: &Path,
    fd: BorrowedFd<'_>,
    pid: i32,
    state: &State,
    metadata: Option<&str>,
) -> Result<()> {
    let err = |source: std::io::Error| Error::Listener {
        path: listener_path.to_path_buf(),
        source,
    };
    let mut msg = ContainerProcessState::default();
    msg.set_version(state.version().clone())
        .set_fds(vec![SECCOMP_FD_NAME.to_string()])
        .set_pid(pid)
        .set_metadata(metadata.map(str::to_string))
        .set_state(state.clone());
    let json = serde_json::to_vec(&msg).map_err(|e| err(e.into()))?;
    let mut sock = UnixStream::connect(listener_path).map_err(err)?;
    let fds = [fd.as_raw_fd()];
    let sent = sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&json)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| err(e.into()))?;
    // The fd travelled with the first byte; a short send only leaves JSON to write.
    sock.write_all(&json[sent..]).map_err(err)
}
