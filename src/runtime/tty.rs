//! The foreground terminal of `kiln run -t`: kiln receives the pty master
//! from the container's init (over a socketpair, the way a console socket
//! would), puts its own terminal in raw mode, and relays bytes both ways
//! until the container's side closes; window size changes follow SIGWINCH.

use super::sync::recv_fd;
use super::{Context, Result};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;

/// The two ends of the channel the pty master travels over: the first goes
/// to the container's init as its console socket, the second stays here.
pub fn channel() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .sys(|| "create console socketpair".into())
}

/// A running relay between kiln's stdio and the container's pty.
pub struct Relay {
    master: OwnedFd,
    saved: Option<Termios>,
    output: Option<JoinHandle<()>>,
}

impl Relay {
    /// Receives the master over `ours` and starts relaying.
    pub fn start(ours: &OwnedFd) -> Result<Relay> {
        let master = recv_fd(ours.as_raw_fd()).sys(|| "receive the pty master".into())?;
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
                .sys(|| "put the terminal in raw mode".into())?;
        }
        let relay = Relay {
            output: Some(spawn_copy(&master, Direction::Out)?),
            master,
            saved,
        };
        relay.resize();
        // stdin → master: this thread blocks in read(0) and is never joined;
        // it ends with the process.
        drop(spawn_copy(&relay.master, Direction::In)?);
        Ok(relay)
    }

    /// Gives the container's terminal the size of ours (on start and SIGWINCH).
    pub fn resize(&self) {
        let mut ws: libc::winsize = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ fills the winsize struct we pass; fd 0 may be any file.
        if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
            // SAFETY: TIOCSWINSZ reads the winsize struct; master is an open pty.
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
    }

    /// Waits until the container's output is drained, then restores the terminal.
    pub fn finish(mut self) {
        if let Some(h) = self.output.take() {
            let _ = h.join();
        }
        self.restore();
    }

    fn restore(&mut self) {
        if let Some(t) = self.saved.take() {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &t);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.restore();
    }
}

enum Direction {
    /// kiln's stdin to the pty master.
    In,
    /// The pty master to kiln's stdout.
    Out,
}

fn spawn_copy(master: &OwnedFd, dir: Direction) -> Result<JoinHandle<()>> {
    let fd = master.try_clone().sys(|| "dup pty master".into())?;
    std::thread::Builder::new()
        .name("tty-relay".into())
        .spawn(move || match dir {
            Direction::In => copy(std::io::stdin().lock(), FdWriter(fd.as_fd())),
            Direction::Out => copy(FdReader(fd.as_fd()), std::io::stdout().lock()),
        })
        .sys(|| "start the terminal relay".into())
}

/// Copies until end of input or an error (EIO on the master once the
/// container's side of the pty is closed).
fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

struct FdReader<'a>(BorrowedFd<'a>);

impl Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        nix::unistd::read(self.0, buf).map_err(std::io::Error::from)
    }
}

struct FdWriter<'a>(BorrowedFd<'a>);

impl Write for FdWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        nix::unistd::write(self.0, buf).map_err(std::io::Error::from)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
