//! Advisory file locks (flock) that let many kiln processes share one store.

use super::{IoContext, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// A held flock; released when dropped.
pub struct FileLock {
    _lock: Flock<File>,
}

/// Shared (many holders) or exclusive (one holder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

impl FileLock {
    /// Blocks until the lock on `path` (created if missing) is held.
    pub fn acquire(path: &Path, mode: Mode) -> Result<Self> {
        let file = open(path)?;
        let arg = match mode {
            Mode::Shared => FlockArg::LockShared,
            Mode::Exclusive => FlockArg::LockExclusive,
        };
        let lock = Flock::lock(file, arg)
            .map_err(|(_, e)| e)
            .ctx("lock", path)?;
        Ok(Self { _lock: lock })
    }

    /// Takes the lock without waiting; `None` if another process holds it.
    pub fn try_acquire(path: &Path, mode: Mode) -> Result<Option<Self>> {
        let file = open(path)?;
        let arg = match mode {
            Mode::Shared => FlockArg::LockSharedNonblock,
            Mode::Exclusive => FlockArg::LockExclusiveNonblock,
        };
        match Flock::lock(file, arg) {
            Ok(lock) => Ok(Some(Self { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(e).ctx("lock", path),
        }
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .ctx("open lock file", path)
}
