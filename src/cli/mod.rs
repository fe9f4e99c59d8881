//! The command line: clap definitions only, one file per verb group. Handlers
//! live in `crate::cmd`.

pub mod fast;
pub mod image;
pub mod man;
pub mod pending;
pub mod run;
pub mod runtime;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// kiln: a daemonless container runtime and image builder.
///
/// Build app source into OCI images with buildpacks, run them in Linux
/// namespaces and cgroups, supervise Procfile formations — and serve as an OCI
/// runtime with runc's command line for podman and containerd.
#[derive(Parser, Debug)]
#[command(name = "kiln", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb accepts (runc's global flags among them).
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Image store [default: /var/lib/kiln as root, $XDG_DATA_HOME/kiln otherwise]
    #[arg(long, global = true, env = "KILN_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Container state directory [default: /run/kiln as root, $XDG_RUNTIME_DIR/kiln otherwise]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write kiln's own log to this file instead of stderr (as runc)
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format: text or json (as runc)
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text")]
    pub log_format: String,
    /// Manage cgroups through systemd (accepted for runc compatibility)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Verbose logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc compatibility (kiln does not checkpoint)
    #[arg(long, global = true, hide = true, value_name = "PATH")]
    pub criu: Option<String>,
    /// runc's rootless mode (true, false, auto; kiln decides by its user id).
    /// With `spec`: write a config for running without root
    #[arg(
        long,
        global = true,
        value_name = "MODE",
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true
    )]
    pub rootless: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage images in the store: import, export, list, inspect, unpack, remove
    #[command(subcommand)]
    Image(image::ImageCmd),
    /// Remove blobs and extracted layers no image uses
    Gc(image::GcArgs),
    /// Build app source into an image with buildpacks
    Build(pending::Pending),
    /// Run an image (`kiln run app.img`) or an OCI bundle (`kiln run --bundle B ID`)
    Run(run::RunArgs),
    /// Supervise the image's Procfile process types in the foreground
    Up(pending::Pending),
    /// Change the number of instances of a running formation's process types
    Scale(pending::Pending),
    /// Follow the logs of a running formation
    Logs(pending::Pending),
    /// OCI: create a container from a bundle, without starting its process
    Create(runtime::CreateArgs),
    /// OCI: start the process of a created container
    Start(runtime::IdArgs),
    /// OCI: print the state of a container as JSON
    State(runtime::IdArgs),
    /// OCI: send a signal to a container's process
    Kill(runtime::KillArgs),
    /// OCI: delete a container and what it holds
    Delete(runtime::DeleteArgs),
    /// OCI: run a new process in a running container
    Exec(runtime::ExecArgs),
    /// OCI: list the processes in a container
    Ps(runtime::PsArgs),
    /// OCI: list containers
    #[command(visible_alias = "ls")]
    List(runtime::ListArgs),
    /// OCI: freeze all processes of a container
    Pause(runtime::IdArgs),
    /// OCI: thaw a paused container
    Resume(runtime::IdArgs),
    /// OCI: change the resource limits of a running container
    Update(runtime::UpdateArgs),
    /// OCI: write a default config.json for a bundle
    Spec(runtime::SpecArgs),
    /// OCI: describe what this runtime supports, as JSON
    Features,
    /// OCI: print container events and resource statistics
    Events(runtime::EventsArgs),
    /// Print a shell completion script
    Completion(CompletionArgs),
}

#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
