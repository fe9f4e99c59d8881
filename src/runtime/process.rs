//! Starting a container's init: the parent's half. Clones the child into its
//! new user and pid namespaces, writes its id maps, puts it in its cgroup,
//! runs the hooks it asks for, and waits until it is ready.

use super::cgroups::Cgroup;
use super::init;
use super::namespaces::{Plan, Restore, time_offsets};
use super::sync::{Channel, Msg};
use super::{Context, Error, Result};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Whether init waits for `start` or runs the process at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `create`: set up, then block until `start` writes to the exec fifo.
    Create,
    /// `run`: set up and exec straight away.
    Run,
    /// `exec`: join the namespaces of the running container with init `pid`, then exec.
    Exec { pid: i32 },
}

/// Everything the container's init needs (the child gets a copy by cloning).
pub struct Launch<'a> {
    pub id: String,
    pub spec: &'a Spec,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub fifo: Option<PathBuf>,
    pub mode: Mode,
    pub console_socket: Option<PathBuf>,
    /// An already connected console socket (kiln run -t keeps the master itself).
    pub console_fd: Option<OwnedFd>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// Stay as pid 1, reaping zombies and forwarding signals (`kiln run --init`).
    pub kiln_init: bool,
    /// linux.seccomp, compiled before the clone (see `seccomp_filter`).
    pub seccomp: Option<super::seccomp::Filter>,
    /// stdin and stdout+stderr for the process, instead of kiln's own.
    pub stdio: Option<[OwnedFd; 2]>,
}

/// The container's seccomp filter, compiled here rather than in the init (a
/// profile takes libseccomp ~15 ms) and cached under the state root, keyed by
/// the profile: every container with the same profile reuses the BPF. The
/// cache's name is not a valid container id, so `list` never sees it.
pub fn seccomp_filter(spec: &Spec, state_root: &Path) -> Result<Option<super::seccomp::Filter>> {
    let Some(cfg) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let cache = state_root.join("@seccomp-cache");
    Ok(Some(super::seccomp::compile_cached(cfg, &cache)?))
}

/// Clones the container's init and drives it until it is ready. `hooks` runs
/// the prestart/createRuntime hooks when init asks (it gets init's pid).
pub fn spawn(
    l: &Launch<'_>,
    cgroup: Option<&Cgroup>,
    mut hooks: impl FnMut(Pid) -> Result<()>,
) -> Result<Pid> {
    let plan = match l.mode {
        Mode::Exec { pid } => Plan::joining(pid, l.spec),
        _ => Plan::from_spec(l.spec)?,
    };
    let (parent, child) = Channel::pair()?;
    let restore = Restore::enter(&plan, &time_offsets(l.spec))?;
    // On cgroup2 the init is born in its cgroup (CLONE_INTO_CGROUP): it never
    // runs, nor is charged, in kiln's, and the migration is saved.
    let unified = cgroup
        .and_then(|cg| cg.paths().unified.as_deref())
        .and_then(|dir| {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            nix::fcntl::open(dir, flags, nix::sys::stat::Mode::empty()).ok()
        });
    let (pid, placed) = match clone_process(plan.clone, unified.as_ref())? {
        (None, _) => {
            drop(parent);
            let code = match init::run(l, &plan, &child) {
                Ok(never) => match never {},
                Err(e) => {
                    // Before Ready the parent reports it; after, nobody listens but stderr.
                    if child
                        .send(&Msg::Failed {
                            code: e.exit_code(),
                            message: e.to_string(),
                        })
                        .is_err()
                    {
                        eprintln!("kiln: container {}: {e}", l.id);
                    }
                    e.exit_code()
                }
            };
            // SAFETY: _exit ends this cloned child at once, without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        (Some(pid), placed) => (pid, placed),
    };
    drop(child);
    drop(unified);
    let result = (|| {
        restore.leave()?;
        if plan.new_user() {
            write_id_maps(pid, l.spec)?;
        }
        if let Some(cg) = cgroup {
            cg.add_process(pid.as_raw(), placed)?;
        }
        parent.send(&Msg::Go)?;
        // The device rules of a new cgroup (an eBPF program to load and
        // verify on cgroup2: the costliest step of all) while the child sets
        // up; it waits for Proceed before it goes on to exec.
        if let (Some(cg), false) = (cgroup, matches!(l.mode, Mode::Exec { .. })) {
            let linux = l.spec.linux().as_ref();
            cg.restrict_devices(linux.and_then(|x| x.resources().as_ref()))?;
        }
        // Proceed right away unless hook messages are still to come: the
        // child then finds it waiting, without a round trip.
        let early = !super::hooks::in_parent(l.spec) || matches!(l.mode, Mode::Exec { .. });
        // (A child that already failed has closed its end: its Failed
        // message still waits below, so a failed send here says nothing.)
        if early {
            let _ = parent.send(&Msg::Proceed);
        }
        loop {
            match parent.recv()? {
                Some(Msg::RunHooks) => {
                    hooks(pid)?;
                    parent.send(&Msg::HooksDone)?;
                }
                Some(Msg::Ready) if early => return Ok(()),
                Some(Msg::Ready) => return parent.send(&Msg::Proceed),
                Some(Msg::Failed { code, message }) => return Err(Error::Exec { code, message }),
                Some(other) => {
                    return Err(Error::Config(format!("unexpected {other:?} from init")));
                }
                None => return Err(Error::Config("container init exited during set-up".into())),
            }
        }
    })();
    // poststart hooks run after the process is executed (runtime-spec): with
    // some to run, wait until init's end of the channel closes at its exec.
    let result = result.and_then(|()| match l.mode {
        Mode::Run if !super::hooks::poststart(l.spec).is_empty() => wait_for_exec(&parent),
        _ => Ok(()),
    });
    if let Err(e) = result {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        return Err(e);
    }
    Ok(pid)
}

/// Waits until init has exec'd the process (its end of the channel, close-on-exec,
/// closes), or reports its failure on the way there (a startContainer hook, exec).
fn wait_for_exec(parent: &Channel) -> Result<()> {
    match parent.recv()? {
        None => Ok(()),
        Some(Msg::Failed { code, message }) => Err(Error::Exec { code, message }),
        Some(other) => Err(Error::Config(format!("unexpected {other:?} from init"))),
    }
}

/// A fork-like clone into new namespaces: `None` in the child, its pid in
/// the parent; and whether the child was born in the cgroup `cgroup2_dir`
/// (clone3 with CLONE_INTO_CGROUP, Linux 5.7+; else a plain clone).
fn clone_process(flags: CloneFlags, cgroup2_dir: Option<&OwnedFd>) -> Result<(Option<Pid>, bool)> {
    if let Some(dir) = cgroup2_dir {
        let args = CloneArgs {
            flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: dir.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        // SAFETY: as for clone below: no CLONE_VM and no stack, so the child
        // continues on a copy of this stack like after fork; `args` is a valid
        // clone_args of the size passed, living for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match nix::errno::Errno::result(rc) {
            Ok(0) => return Ok((None, true)),
            Ok(pid) => return Ok((Some(Pid::from_raw(pid as i32)), true)),
            // Older kernels, or a cgroup the kernel will not place into directly:
            // a plain clone, then the migration.
            Err(_) => {}
        }
    }
    // SAFETY: a clone without CLONE_VM and without a new stack behaves like fork: the
    // child continues on a copy of this stack. kiln is single-threaded here, so no lock
    // is held by another thread; the child only runs init's steps and then execs or _exits.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match nix::errno::Errno::result(rc).sys(|| format!("clone with {flags:?}"))? {
        0 => Ok((None, false)),
        pid => Ok((Some(Pid::from_raw(pid as i32)), false)),
    }
}

/// `struct clone_args` of clone3(2) (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3's flag: start the child in the cgroup2 directory `clone_args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes uid_map/gid_map of the new user namespace. As root, directly; as a
/// user, directly for a single mapping of one's own id (setgroups denied),
/// else through the setuid helpers newuidmap/newgidmap.
fn write_id_maps(pid: Pid, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uids = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or(&[]);
    let gids = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or(&[]);
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let own = |maps: &[LinuxIdMapping], id: u32| {
        maps.len() == 1 && maps[0].size() == 1 && maps[0].host_id() == id
    };
    let root = nix::unistd::geteuid().is_root();
    if root
        || (own(uids, nix::unistd::geteuid().as_raw())
            && own(gids, nix::unistd::getegid().as_raw()))
    {
        if !root {
            std::fs::write(proc.join("setgroups"), "deny").ctx("write", &proc.join("setgroups"))?;
        }
        std::fs::write(proc.join("uid_map"), map_text(uids)).ctx("write", &proc.join("uid_map"))?;
        std::fs::write(proc.join("gid_map"), map_text(gids)).ctx("write", &proc.join("gid_map"))?;
        return Ok(());
    }
    for (tool, maps) in [("newuidmap", uids), ("newgidmap", gids)] {
        let mut cmd = std::process::Command::new(tool);
        cmd.arg(pid.to_string());
        for m in maps.iter() {
            cmd.args([
                m.container_id().to_string(),
                m.host_id().to_string(),
                m.size().to_string(),
            ]);
        }
        let out = cmd
            .output()
            .map_err(|e| Error::Config(format!("{tool}: {e}")))?;
        if !out.status.success() {
            return Err(Error::Config(format!(
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}
