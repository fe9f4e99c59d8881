//! The OCI image model: digests, the content-addressed store, OCI layouts and
//! archives, the deterministic layer writer, the safe layer extractor, and gc.

pub mod archive;
pub mod create;
pub mod digest;
pub mod extract;
pub mod gc;
pub mod import;
pub mod layer_cache;
pub mod layer_writer;
pub mod layout;
pub mod lock;
pub mod model;
pub mod reference;
pub mod store;
pub mod unpack;

use std::io;
use std::path::{Path, PathBuf};

pub use digest::Digest;
pub use store::Store;

/// Everything that can go wrong with images, each naming the object at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{object}: {source}")]
    Content { object: String, source: io::Error },
    #[error("{object}: {reason}")]
    Invalid { object: String, reason: String },
    #[error("{0}: not found")]
    NotFound(String),
    #[error(transparent)]
    Digest(#[from] digest::DigestParseError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Bad content in `object` (a blob, an entry, a file) for `reason`.
    pub fn invalid(object: impl ToString, reason: impl ToString) -> Self {
        Error::Invalid {
            object: object.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Attaches the operation and path to an `io::Error`.
pub trait IoContext<T> {
    fn ctx(self, what: &'static str, path: &Path) -> Result<T>;
    fn obj(self, object: impl std::fmt::Display) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            what,
            path: path.to_path_buf(),
            source,
        })
    }
    fn obj(self, object: impl std::fmt::Display) -> Result<T> {
        self.map_err(|source| Error::Content {
            object: object.to_string(),
            source,
        })
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx(self, what: &'static str, path: &Path) -> Result<T> {
        self.map_err(io::Error::from).ctx(what, path)
    }
    fn obj(self, object: impl std::fmt::Display) -> Result<T> {
        self.map_err(io::Error::from).obj(object)
    }
}
