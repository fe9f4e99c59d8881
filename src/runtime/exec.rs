//! `kiln exec`: a new process in a running container, in all its namespaces
//! and its cgroup, with its capabilities, seccomp filter and no_new_privs.

use super::container::Container;
use super::create::write_pid_file;
use super::process::{self, Launch, Mode};
use super::state::Status;
use super::{Context, Error, Result};
use nix::sys::signal::{SigmaskHow, sigprocmask};
use oci_spec::runtime::Process;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// What to run and how (runc's exec flags).
#[derive(Debug, Default, Clone)]
pub struct ExecOpts {
    pub id: String,
    /// A runtime-spec process JSON (`--process`), replacing the fields below.
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub user: Option<(u32, u32)>,
    pub additional_gids: Vec<u32>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    /// Receives a pidfd of the process (`--pidfd-socket`).
    pub pidfd_socket: Option<PathBuf>,
    /// Exec even in a paused container (the process starts frozen).
    pub ignore_paused: bool,
    /// A sub-cgroup of the container's to run in (`--cgroup`).
    pub sub_cgroup: Option<String>,
}

/// Runs the process; returns its exit status (0 when detached).
pub fn exec(root: &Path, o: &ExecOpts, console_fd: Option<OwnedFd>) -> Result<i32> {
    let c = Container::load(root, &o.id)?;
    let status = c.status();
    let paused_ok = o.ignore_paused && status == Status::Paused;
    if status != Status::Running && !paused_ok {
        return Err(Error::container(
            &o.id,
            format!("cannot exec in a {status} container"),
        ));
    }
    let mut spec = c.config()?;
    let process = build_process(&spec, o)?;
    // Connected here, on the host: the child joins the container's mount
    // namespace before it could reach the socket's path.
    let terminal = process.terminal().unwrap_or(false);
    let mut relay_end = None;
    let console_fd = match (console_fd, &o.console_socket) {
        (Some(fd), _) => Some(fd),
        (None, Some(path)) if terminal => Some(super::console::connect_socket(path)?),
        // No console socket: kiln relays the terminal in the foreground.
        (None, None) if terminal && !o.detach => {
            let (theirs, ours) = super::tty::channel()?;
            relay_end = Some(ours);
            Some(theirs)
        }
        (None, _) => None,
    };
    spec.set_process(Some(process));
    let seccomp = process::seccomp_filter(&spec, root)?;
    let launch = Launch {
        id: o.id.clone(),
        spec: &spec,
        bundle: c.record.bundle.clone(),
        rootfs: c.record.rootfs.clone(),
        fifo: None,
        mode: Mode::Exec { pid: c.record.pid },
        console_socket: o.console_socket.clone(),
        console_fd,
        no_pivot: false,
        preserve_fds: o.preserve_fds,
        kiln_init: false,
        seccomp,
        stdio: None,
    };
    let cgroup = match (c.cgroup(), &o.sub_cgroup) {
        (Some(cg), Some(sub)) => Some(cg.sub(sub)?),
        (None, Some(_)) => return Err(Error::container(&o.id, "has no cgroup for --cgroup")),
        (cg, None) => cg,
    };
    let mask = super::run::forwarded_signals();
    // Blocked before the process exists, so no signal is lost before the wait.
    if !o.detach {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).sys(|| "block signals".into())?;
    }
    let started = process::spawn(&launch, cgroup.as_ref(), |_| Ok(())).and_then(|pid| {
        if let Some(p) = &o.pid_file {
            write_pid_file(p, pid.as_raw())?;
        }
        if let Some(sock) = &o.pidfd_socket {
            super::console::send_pidfd(sock, pid.as_raw())?;
        }
        Ok(pid)
    });
    let pid = match started {
        Ok(pid) if !o.detach => pid,
        other => {
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&mask), None);
            return other.map(|_| 0);
        }
    };
    let waiter = Container {
        dir: c.dir.clone(),
        record: super::state::Record {
            pid: pid.as_raw(),
            ..c.record.clone()
        },
    };
    super::run::foreground(&waiter, &mask, relay_end.as_ref())
}

/// The exec'd process: `--process` JSON, or the container's own process with
/// args, env, cwd, user, terminal and capabilities overridden by flags.
fn build_process(spec: &oci_spec::runtime::Spec, o: &ExecOpts) -> Result<Process> {
    if let Some(file) = &o.process_file {
        let data =
            std::fs::read(file).map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
        return serde_json::from_slice(&data)
            .map_err(|e| Error::Config(format!("{}: {e}", file.display())));
    }
    if o.args.is_empty() {
        return Err(Error::Config("exec needs a command".into()));
    }
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(o.args.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &o.env {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some((uid, gid)) = o.user {
        let mut u = p.user().clone();
        u.set_uid(uid);
        u.set_gid(gid);
        p.set_user(u);
    }
    if !o.additional_gids.is_empty() {
        let mut u = p.user().clone();
        u.set_additional_gids(Some(o.additional_gids.clone()));
        p.set_user(u);
    }
    p.set_terminal(Some(o.tty));
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !o.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &o.caps {
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| Error::Config(format!("unknown capability {name}")))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}
