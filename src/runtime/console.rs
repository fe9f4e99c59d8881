//! Terminals: the container's pty is created inside it (on its devpts), and
//! the master end goes to the caller over `--console-socket` (SCM_RIGHTS), as runc does;
//! `--pidfd-socket` gets a pidfd of the process the same way.

use super::sync::send_fd;
use super::{Context, Result};
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Connects to the console socket (done before pivot_root, while its path is visible).
pub fn connect_socket(path: &Path) -> Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .sys(|| "create console socket".into())?;
    let addr = UnixAddr::new(path).ctx("console socket", path)?;
    connect(fd.as_raw_fd(), &addr).ctx("connect console socket", path)?;
    Ok(fd)
}

/// Opens a new pty inside the container, hands the master to `sock` (or keeps
/// it, for `kiln run -t`, when `sock` is None), and makes the slave the
/// controlling terminal and stdio of this process. Returns the master if kept.
pub fn setup(sock: Option<&OwnedFd>, size: Option<(u16, u16)>) -> Result<Option<OwnedFd>> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .sys(|| "open /dev/ptmx".into())?;
    grantpt(&master).sys(|| "grantpt".into())?;
    unlockpt(&master).sys(|| "unlockpt".into())?;
    let name = ptsname_r(&master).sys(|| "ptsname".into())?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .sys(|| format!("open {name}"))?;
    // /dev/console is the pty too.
    let console = Path::new("/dev/console");
    if console.exists() {
        let _ = nix::mount::mount(
            Some(name.as_str()),
            console,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        );
    }
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we pass; `slave` is an open terminal.
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    nix::unistd::setsid().sys(|| "setsid".into())?;
    // SAFETY: TIOCSCTTY takes an int argument; `slave` is an open terminal fd.
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    nix::errno::Errno::result(rc).sys(|| "make the pty the controlling terminal".into())?;
    for target in 0..3 {
        // SAFETY: dup2 onto stdio numbers; `slave` stays open until the end of this function.
        let rc = unsafe { libc::dup2(slave.as_raw_fd(), target) };
        nix::errno::Errno::result(rc).sys(|| "dup pty onto stdio".into())?;
    }
    let master: OwnedFd = master.into();
    match sock {
        Some(s) => {
            send_fd(s.as_raw_fd(), master.as_raw_fd())
                .sys(|| "send pty master to console socket".into())?;
            Ok(None)
        }
        None => Ok(Some(master)),
    }
}

/// Sends a pidfd of `pid` to the unix socket at `path` (runc's
/// `--pidfd-socket`): the receiver can then signal and wait for the process
/// without racing pid reuse.
pub fn send_pidfd(path: &Path, pid: i32) -> Result<()> {
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let raw = nix::errno::Errno::result(raw).sys(|| format!("open a pidfd for pid {pid}"))?;
    // SAFETY: pidfd_open just returned this descriptor; nothing else owns it.
    let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw as i32) };
    let sock = connect_socket(path)?;
    send_fd(sock.as_raw_fd(), pidfd.as_raw_fd()).ctx("send pidfd to", path)
}
