//! Verb handlers: turn parsed arguments into calls on the library and print
//! results. Errors come back to `main`, which reports them once.

mod image;

use crate::cli::{Cli, Command, Global};
use anyhow::{Result, bail};
use std::path::PathBuf;

/// kiln's own failure (podman's convention).
pub const EXIT_FAILURE: i32 = 125;

/// Runs the parsed command; returns the process exit status.
pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Image(cmd) => image::run(g, cmd),
        Command::Gc(args) => image::gc(g, args),
        Command::Completion(args) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut cmd, "kiln", &mut std::io::stdout());
            Ok(0)
        }
        other => {
            let verb = format!("{other:?}");
            let verb = verb.split('(').next().unwrap_or("").to_ascii_lowercase();
            bail!(
                "kiln {verb}: not implemented yet in kiln {}",
                env!("CARGO_PKG_VERSION")
            )
        }
    }
}

/// The image store directory the flags and environment select.
pub fn store_root(g: &Global) -> PathBuf {
    g.store
        .clone()
        .unwrap_or_else(crate::image::Store::default_root)
}
