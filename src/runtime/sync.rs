//! The parent ↔ container-init channel: a SOCK_SEQPACKET socketpair carrying
//! one JSON message per packet (and, for the console, a file descriptor).

use super::{Context, Error, Result};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What the two sides tell each other while a container is set up.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    /// Parent → child: id maps written, cgroup joined; carry on.
    Go,
    /// Child → parent: run the prestart and createRuntime hooks now.
    RunHooks,
    /// Parent → child: hooks done.
    HooksDone,
    /// Child → parent: set up and waiting for `start` (or about to exec).
    Ready,
    /// Parent → child: the cgroup's device rules, applied while the child
    /// set up (process::spawn), are in place; the child waits for it after
    /// Ready (it is sent early unless hooks messages come in between).
    Proceed,
    /// Child → parent: setting up failed; `code` is the exit status to report.
    Failed { code: i32, message: String },
}

/// One end of the channel.
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair, both close-on-exec.
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .sys(|| "create sync socketpair".into())?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, msg: &Msg) -> Result<()> {
        let data = serde_json::to_vec(msg).expect("messages serialize");
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(&data)],
            &[],
            MsgFlags::empty(),
            None,
        )
        .sys(|| format!("send {msg:?} to the container's init"))?;
        Ok(())
    }

    /// Receives a message; the other end closing gives `None`.
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = [0u8; 16 << 10];
        let mut reset_seen = false;
        let n = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(self.fd.as_raw_fd(), &mut iov, None, MsgFlags::empty()) {
                Ok(m) => break m.bytes,
                Err(nix::errno::Errno::EINTR) => continue,
                // The other end closed with a message of ours unread: the
                // kernel reports that once, ahead of what it sent before
                // closing (say, Failed), which the next read returns.
                Err(nix::errno::Errno::ECONNRESET) if !reset_seen => reset_seen = true,
                Err(e) => return Err(e).sys(|| "receive from the container's init".into()),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| Error::Config(format!("bad message on sync socket: {e}")))
    }

    /// Expects exactly `want`, turning `Failed` and EOF into errors.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Failed { code, message }) => Err(Error::Exec { code, message }),
            Some(other) => Err(Error::Config(format!(
                "sync: expected {want:?}, got {other:?}"
            ))),
            None => Err(Error::Config(format!(
                "sync: the other side went away while waiting for {want:?}"
            ))),
        }
    }
}

/// Sends `fd` over a unix socket (SCM_RIGHTS) with a one-byte payload.
pub fn send_fd(sock: RawFd, fd: RawFd) -> nix::Result<()> {
    let fds = [fd];
    sendmsg::<()>(
        sock,
        &[IoSlice::new(b"\0")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// Receives one fd sent with `send_fd`.
pub fn recv_fd(sock: RawFd) -> nix::Result<OwnedFd> {
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor in our table; we take sole ownership.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    Err(nix::errno::Errno::EBADMSG)
}
