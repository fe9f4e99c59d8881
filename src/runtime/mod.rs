//! The engine: an OCI runtime (runtime-spec 1.x) behind runc's command line,
//! and the library that `kiln run`, the builder and the supervisor drive.
//!
//! One file per lifecycle verb (`create`, `start`, `kill`, `delete`, …) over a
//! `Container` whose `state` says which transitions are legal; `process` holds
//! the parent/child halves of starting a container, `init` the child's steps.

pub mod bundle_pool;
pub mod cgroups;
pub mod console;
pub mod container;
pub mod create;
pub mod delete;
pub mod dmz;
pub mod exec;
pub mod hooks;
pub mod image_spec;
pub mod init;
pub mod kill;
pub mod list;
pub mod mountinfo;
pub mod mounts;
pub mod namespaces;
pub mod pause;
pub mod process;
pub mod reaper;
pub mod rootfs;
pub mod run;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod start;
pub mod state;
pub mod sync;
pub mod tty;

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the engine, naming the object at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("container {id}: {reason}")]
    Container { id: String, reason: String },
    #[error("container {0}: does not exist")]
    NotFound(String),
    #[error("{0}")]
    Config(String),
    /// The container's process could not be executed: 126 (not executable) or 127 (not found).
    #[error("{message}")]
    Exec { code: i32, message: String },
    #[error(transparent)]
    Cgroup(#[from] cgroups::Error),
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
    #[error(transparent)]
    Image(#[from] crate::image::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The exit status kiln reports for this error (podman's convention).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { code, .. } => *code,
            _ => 125,
        }
    }

    pub fn container(id: &str, reason: impl ToString) -> Self {
        Error::Container {
            id: id.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Attaches context to system call errors.
pub trait Context<T> {
    fn ctx(self, what: &'static str, path: &Path) -> Result<T>;
    fn sys(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::Io {
            what,
            path: path.to_path_buf(),
            source: e.into(),
        })
    }
    fn sys(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            what: what(),
            source,
        })
    }
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            what,
            path: path.to_path_buf(),
            source,
        })
    }
    fn sys(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Sys {
            what: what(),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })
    }
}

/// The default state directory: `/run/kiln` as root, else `$XDG_RUNTIME_DIR/kiln`.
pub fn default_state_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/kiln");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("kiln"),
        None => std::env::temp_dir().join(format!("kiln-{}", nix::unistd::geteuid())),
    }
}
