//! The OCI runtime verbs, with runc's flags (containerd and podman pass them).

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Bundle directory (holding config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is set
    #[arg(long, value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// Write the container's init pid here
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root (e.g. on an initramfs)
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility (kiln never creates a session keyring)
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many file descriptors (from fd 3 on) into the container
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: i32,
    /// Unix socket that receives a pidfd of the container's init
    #[arg(long, value_name = "SOCKET")]
    pub pidfd_socket: Option<PathBuf>,
    /// Container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// Container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal every process in the container, not only its init
    #[arg(short, long)]
    pub all: bool,
    /// Container id
    pub id: String,
    /// Signal name or number
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Kill the container first if it is still running
    #[arg(short, long)]
    pub force: bool,
    /// Container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Unix socket that receives the pty master with --tty
    #[arg(long, value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable K=V (repeatable)
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Give the process a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// uid[:gid] to run as
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group ids (repeatable)
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// A runtime-spec process JSON file to run instead of COMMAND
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Do not wait for the process
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid here
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability (repeatable)
    #[arg(short, long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// Pass this many file descriptors (from fd 3 on) into the process
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: i32,
    /// Unix socket that receives a pidfd of the process
    #[arg(long, value_name = "SOCKET")]
    pub pidfd_socket: Option<PathBuf>,
    /// Allow exec in a paused container (the process starts frozen)
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run the process in this sub-cgroup of the container's (it must exist)
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Accepted for runc compatibility
    #[arg(long, hide = true)]
    pub process_label: Option<String>,
    /// Accepted for runc compatibility
    #[arg(long, hide = true)]
    pub apparmor: Option<String>,
    /// Container id
    pub id: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Print only the ids
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Container id
    pub id: String,
    /// Options passed to ps(1) for the table format
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Bundle directory to write config.json into
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// A runtime-spec linux.resources JSON file (`-` for stdin)
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g)
    #[arg(long)]
    pub memory: Option<String>,
    /// Memory plus swap limit in bytes (-1 for unlimited)
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// Memory soft limit in bytes
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// CPU CFS quota in microseconds per period (-1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU shares (relative weight)
    #[arg(long, alias = "cpu-share")]
    pub cpu_shares: Option<u64>,
    /// CPUs allowed (e.g. 0-1)
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000)
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Print resource statistics once and exit
    #[arg(long)]
    pub stats: bool,
    /// Interval between statistics
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Container id
    pub id: String,
}
