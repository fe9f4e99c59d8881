//! Verb handlers: turn parsed arguments into calls on the library and print
//! results. Errors come back to `main`, which reports them once.

mod features;
mod image;
mod resources;
mod run;
mod runtime;

pub use runtime::log_error;

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
        cmd @ (Command::Create(_)
        | Command::Start(_)
        | Command::State(_)
        | Command::Kill(_)
        | Command::Delete(_)
        | Command::Run(_)
        | Command::Exec(_)
        | Command::Ps(_)
        | Command::List(_)
        | Command::Pause(_)
        | Command::Resume(_)
        | Command::Update(_)
        | Command::Spec(_)
        | Command::Features
        | Command::Events(_)) => engine(g, cmd),
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

/// The runtime verbs.
fn engine(g: &Global, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Create(a) => Ok(runtime::create_cmd(g, a)?),
        Command::Start(a) => {
            crate::runtime::start::start(&runtime::state_root(g), &a.id)?;
            Ok(0)
        }
        Command::State(a) => runtime::state(g, &a.id),
        Command::Kill(a) => {
            let sig = crate::runtime::kill::parse_signal(&a.signal)?;
            crate::runtime::kill::kill(&runtime::state_root(g), &a.id, sig, a.all)?;
            Ok(0)
        }
        Command::Delete(a) => {
            crate::runtime::delete::delete(&runtime::state_root(g), &a.id, a.force)?;
            Ok(0)
        }
        Command::Run(a) => match a.bundle.clone() {
            Some(b) => Ok(runtime::run_bundle(g, a, b)?),
            None => run::run_image(g, a),
        },
        Command::Exec(a) => Ok(runtime::exec_cmd(g, a)?),
        Command::Ps(a) => runtime::ps(g, a),
        Command::List(a) => runtime::list(g, a),
        Command::Pause(a) => {
            crate::runtime::pause::pause(&runtime::state_root(g), &a.id)?;
            Ok(0)
        }
        Command::Resume(a) => {
            crate::runtime::pause::resume(&runtime::state_root(g), &a.id)?;
            Ok(0)
        }
        Command::Update(a) => runtime::update(g, a),
        Command::Spec(a) => runtime::spec(g, a),
        Command::Features => features::print(),
        Command::Events(a) => runtime::events(g, a),
        _ => unreachable!("only runtime verbs are routed here"),
    }
}
