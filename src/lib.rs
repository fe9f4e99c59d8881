//! kiln: a daemonless container runtime and image builder for Linux.
//!
//! - `image`: the OCI image model and content-addressed store
//! - `cli`: clap definitions; `cmd`: the verb handlers
//! - `inroot`: filesystem operations confined to a root directory

pub mod cli;
pub mod cmd;
pub mod image;
pub mod inroot;
pub mod runtime;
pub mod units;
