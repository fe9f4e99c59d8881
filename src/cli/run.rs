//! `kiln run`: an image (`kiln run app.img`) or, with `--bundle`, an OCI bundle as runc runs it.

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// OCI bundle to run (runc's form: TARGET is then the container id)
    #[arg(short, long)]
    pub bundle: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is set (bundle form)
    #[arg(long, value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// Write the container's init pid here
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Accepted for runc compatibility
    #[arg(long)]
    pub no_subreaper: bool,
    /// Keep the stopped container instead of deleting it (bundle form)
    #[arg(long)]
    pub keep: bool,
    /// Pass this many file descriptors (from fd 3 on) into the container
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: i32,
    /// Start and return at once instead of waiting
    #[arg(short, long)]
    pub detach: bool,
    /// Process type from the image's Procfile (image form)
    #[arg(long, value_name = "TYPE")]
    pub process: Option<String>,
    /// Container name [default: generated]
    #[arg(long)]
    pub name: Option<String>,
    /// Environment variable K=V (repeatable)
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Read environment variables from a file of K=V lines
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Bind mount HOST:CONTAINER[:ro] (repeatable)
    #[arg(short, long = "volume", value_name = "HOST:CTR[:ro]")]
    pub volume: Vec<String>,
    /// Memory limit (e.g. 256m)
    #[arg(long)]
    pub memory: Option<String>,
    /// Maximum number of processes
    #[arg(long)]
    pub pids: Option<i64>,
    /// CPU limit in CPUs (e.g. 0.5)
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Mount the root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Network: host (share the host's) or none (a private loopback only)
    #[arg(long, default_value = "none")]
    pub net: String,
    /// User to run as (uid[:gid])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Give the process a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits (the default unless --detach)
    #[arg(long)]
    pub rm: bool,
    /// Put the container's cgroup under this cgroup (absolute, or relative to kiln's own)
    #[arg(long, value_name = "CGROUP")]
    pub cgroup_parent: Option<String>,
    /// Run the process directly as pid 1, without kiln's reaping init
    #[arg(long)]
    pub no_init: bool,
    /// The image (file, layout dir or store name), or with --bundle the container id
    pub target: String,
    /// Command and arguments, replacing the image's
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}
