//! The container's init: the child's half of starting a container, as a list
//! of named steps from "joined the namespaces" to "exec'd the process".

use super::namespaces::Plan;
use super::process::{Launch, Mode};
use super::sync::{Channel, Msg};
use super::{Context, Error, Result, console, dmz, hooks, rootfs, security};
use nix::fcntl::OFlag;
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::Mode as FMode;
use oci_spec::runtime::Spec;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Runs every step; returns only on failure.
pub fn run(l: &Launch<'_>, plan: &Plan, chan: &Channel) -> Result<Infallible> {
    // The caller may block signals it waits for; the container starts with none blocked.
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .sys(|| "reset the signal mask".into())?;
    default_signal_dispositions();
    if let Some([input, output]) = &l.stdio {
        for (from, to) in [(input, 0), (output, 1), (output, 2)] {
            // SAFETY: dup2 onto a stdio number from a descriptor the Launch owns.
            let rc = unsafe { libc::dup2(from.as_raw_fd(), to) };
            nix::errno::Errno::result(rc).sys(|| "set the process's stdio".into())?;
        }
    }
    chan.expect(Msg::Go)?;
    // Until it execs, this process is the kiln binary inside the container:
    // non-dumpable, its /proc/PID/exe cannot be opened from in there
    // (CVE-2019-5736). Only now: a rootless parent has just written our
    // uid_map and setgroups, which needs our /proc files to be its own.
    // SAFETY: prctl(PR_SET_DUMPABLE) takes plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    enter_namespaces(plan)?;
    // The hand-over to every process run inside (see dmz.rs).
    let dmz = dmz::helper()?;
    if matches!(l.mode, Mode::Exec { .. }) {
        return run_exec(l, plan, chan, &dmz);
    }
    set_hostname(l.spec)?;
    let console = match (&l.console_fd, &l.console_socket) {
        (Some(fd), _) => Some(fd.try_clone().sys(|| "dup console socket".into())?),
        (None, Some(path)) => Some(console::connect_socket(path)?),
        (None, None) => None,
    };
    let fifo = open_fifo(l)?;
    set_up_root(l, plan, chan, &dmz)?;
    if process(l.spec).terminal().unwrap_or(false) {
        let sock = console
            .as_ref()
            .ok_or_else(|| Error::Config("process.terminal needs --console-socket".into()))?;
        console::setup(Some(sock), console_size(l.spec))?;
    }
    drop(console);
    let nnp = confine(l, plan)?;
    // No host fd may be open while the container's cwd is looked up (CVE-2024-21626).
    let own: Vec<RawFd> = [
        Some(chan.raw()),
        fifo.as_ref().map(|f| f.as_raw_fd()),
        Some(dmz.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    .collect();
    close_inherited_fds(l.preserve_fds, &own)?;
    change_dir(l.spec)?;
    let exe = find_executable(l.spec)?;
    chan.send(&Msg::Ready)?;
    chan.expect(Msg::Proceed)?;
    // The fifo stays open until exec closes it: `start` waits for that.
    if let Some(fifo) = &fifo {
        wait_for_start(fifo)?;
    }
    let state = serde_json::json!({"ociVersion": "1.2.0", "id": l.id, "status": "running", "pid": std::process::id(), "bundle": l.bundle});
    hooks::run_inside(
        "startContainer",
        hooks_of(l.spec, |h| h.start_container().clone()).as_slice(),
        &state,
        &dmz,
    )?;
    confine_last(l, nnp)?;
    if l.kiln_init {
        super::reaper::exec(&exe, l.spec, &dmz)
    } else {
        exec(&exe, l.spec, &dmz)
    }
}

/// Signals kiln ignores (Rust's runtime ignores SIGPIPE; a caller may ignore
/// more) would stay ignored across exec: the container's processes start
/// with every signal at its default, so `yes | head -1` ends `yes` with
/// SIGPIPE as it should. The raw system call: glibc refuses to touch the
/// real-time signals it reserves (32 and 33), which a caller may still ignore.
fn default_signal_dispositions() {
    /// The kernel's `struct sigaction` for rt_sigaction(2) on x86_64/aarch64.
    #[repr(C)]
    #[derive(Default)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut old = KernelSigaction::default();
        // SAFETY: a null new action only reads the disposition into `old`, a
        // valid kernel sigaction; the mask size is the kernel's (8 bytes).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<KernelSigaction>(),
                &mut old,
                8,
            )
        };
        if rc == 0 && old.handler == libc::SIG_IGN {
            let dfl = KernelSigaction::default(); // handler 0 is SIG_DFL
            // SAFETY: sets the default disposition from a valid kernel sigaction.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8,
                )
            };
        }
    }
}

/// The root file system: mounts, the createRuntime/createContainer hooks,
/// pivot_root (or chroot), sysctls, then masked and read-only paths.
fn set_up_root(l: &Launch<'_>, plan: &Plan, chan: &Channel, dmz: &OwnedFd) -> Result<()> {
    let mknod_ok = !plan.new_user()
        && !plan
            .join
            .iter()
            .any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER);
    rootfs::prepare(l.spec, &l.rootfs, &l.bundle, mknod_ok)?;
    run_create_hooks(l, chan, dmz)?;
    rootfs::enter(&l.rootfs, l.no_pivot)?;
    rootfs::apply_propagation(l.spec)?;
    // A working directory the image lacks is made, as runc does: in the new
    // root, before it may turn read-only (a failure shows at the chdir).
    let cwd = process(l.spec).cwd().clone();
    if !cwd.exists() {
        let _ = std::fs::create_dir_all(&cwd);
    }
    // Sysctls go in before /proc/sys becomes read-only (a readonlyPath).
    set_sysctls(l.spec)?;
    rootfs::finish(l.spec)
}

/// rlimits, oom_score_adj and umask, the user, groups and capabilities; and
/// the seccomp filter when it must be loaded while CAP_SYS_ADMIN is still
/// held (without no_new_privs). Returns whether no_new_privs is asked for.
fn confine(l: &Launch<'_>, plan: &Plan) -> Result<bool> {
    process_settings(l.spec)?;
    let nnp = process(l.spec).no_new_privileges().unwrap_or(false);
    if !nnp && let Some(f) = &l.seccomp {
        f.load()?;
    }
    drop_privileges(l.spec, plan)?;
    Ok(nnp)
}

/// Right before exec: no_new_privs, then the seccomp filter (so that it
/// filters as little of kiln's own work as possible).
fn confine_last(l: &Launch<'_>, nnp: bool) -> Result<()> {
    if nnp {
        security::set_no_new_privs()?;
        if let Some(f) = &l.seccomp {
            f.load()?;
        }
    }
    Ok(())
}

/// `kiln exec`: already inside the container's namespaces (and, through the
/// parent, its cgroup); confine the process exactly like the container's own.
fn run_exec(l: &Launch<'_>, plan: &Plan, chan: &Channel, dmz: &OwnedFd) -> Result<Infallible> {
    if process(l.spec).terminal().unwrap_or(false) {
        let sock = match (&l.console_fd, &l.console_socket) {
            (Some(fd), _) => fd.try_clone().sys(|| "dup console socket".into())?,
            (None, Some(path)) => console::connect_socket(path)?,
            (None, None) => return Err(Error::Config("a terminal needs --console-socket".into())),
        };
        console::setup(Some(&sock), console_size(l.spec))?;
    }
    let nnp = confine(l, plan)?;
    close_inherited_fds(l.preserve_fds, &[chan.raw(), dmz.as_raw_fd()])?;
    change_dir(l.spec)?;
    let exe = find_executable(l.spec)?;
    chan.send(&Msg::Ready)?;
    chan.expect(Msg::Proceed)?;
    confine_last(l, nnp)?;
    exec(&exe, l.spec, dmz)
}

/// process.consoleSize as (rows, columns), for the terminal's first size.
fn console_size(spec: &Spec) -> Option<(u16, u16)> {
    let b = process(spec).console_size()?;
    Some((b.height().try_into().ok()?, b.width().try_into().ok()?))
}

/// process, or an empty one (no copy: it holds the environment and the
/// capability sets).
fn process(spec: &Spec) -> &oci_spec::runtime::Process {
    static NONE: std::sync::LazyLock<oci_spec::runtime::Process> =
        std::sync::LazyLock::new(Default::default);
    spec.process().as_ref().unwrap_or(&NONE)
}

fn hooks_of(
    spec: &Spec,
    pick: impl Fn(&oci_spec::runtime::Hooks) -> Option<Vec<oci_spec::runtime::Hook>>,
) -> Vec<oci_spec::runtime::Hook> {
    spec.hooks().as_ref().and_then(pick).unwrap_or_default()
}

/// Joins namespaces by path (user first), becomes root in a new user
/// namespace, then unshares the remaining new namespaces.
fn enter_namespaces(plan: &Plan) -> Result<()> {
    // Open every namespace first: after joining a mount namespace, /proc is the container's.
    let files = plan
        .join
        .iter()
        .map(|(f, path)| Ok((*f, std::fs::File::open(path).ctx("open namespace", path)?)))
        .collect::<Result<Vec<_>>>()?;
    for (f, file) in &files {
        nix::sched::setns(file, *f).sys(|| format!("join namespace {f:?}"))?;
    }
    if plan.new_user()
        || plan
            .join
            .iter()
            .any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER)
    {
        let root = nix::unistd::Uid::from_raw(0);
        let rootg = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(rootg, rootg, rootg)
            .sys(|| "become gid 0 in the user namespace".into())?;
        nix::unistd::setresuid(root, root, root)
            .sys(|| "become uid 0 in the user namespace".into())?;
    }
    if !plan.unshare.is_empty() {
        unshare(plan.unshare).sys(|| format!("unshare {:?}", plan.unshare))?;
    }
    Ok(())
}

fn set_hostname(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname() {
        nix::unistd::sethostname(h).sys(|| format!("set hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname() {
        let c =
            CString::new(d.as_str()).map_err(|_| Error::Config("domainname holds NUL".into()))?;
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        let rc = unsafe { libc::setdomainname(c.as_ptr(), d.len()) };
        nix::errno::Errno::result(rc).sys(|| format!("set domainname {d:?}"))?;
    }
    Ok(())
}

/// The exec fifo, opened read-write before pivot_root while its host path is visible.
fn open_fifo(l: &Launch<'_>) -> Result<Option<OwnedFd>> {
    match (&l.fifo, l.mode) {
        (Some(path), Mode::Create) => {
            let fd = nix::fcntl::open(
                path.as_path(),
                OFlag::O_RDWR | OFlag::O_CLOEXEC,
                FMode::empty(),
            )
            .ctx("open", path)?;
            Ok(Some(fd))
        }
        _ => Ok(None),
    }
}

/// Asks the parent to run prestart/createRuntime hooks, then runs
/// createContainer hooks here, in the container's namespaces, before pivot_root.
fn run_create_hooks(l: &Launch<'_>, chan: &Channel, dmz: &OwnedFd) -> Result<()> {
    let h = l.spec.hooks().clone().unwrap_or_default();
    if hooks::in_parent(l.spec) {
        chan.send(&Msg::RunHooks)?;
        chan.expect(Msg::HooksDone)?;
    }
    let state = serde_json::json!({"ociVersion": "1.2.0", "id": l.id, "status": "creating", "pid": std::process::id(), "bundle": l.bundle});
    hooks::run_inside(
        "createContainer",
        h.create_container().as_deref().unwrap_or(&[]),
        &state,
        dmz,
    )
}

fn set_sysctls(spec: &Spec) -> Result<()> {
    let sysctl = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().clone())
        .unwrap_or_default();
    for (k, v) in sysctl {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, &v).ctx("write sysctl", &path)?;
    }
    Ok(())
}

fn process_settings(spec: &Spec) -> Result<()> {
    let p = process(spec);
    security::set_rlimits(p.rlimits().as_deref().unwrap_or(&[]))?;
    if let Some(v) = p.oom_score_adj() {
        security::set_oom_score_adj(v)?;
    }
    let umask = p.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(FMode::from_bits_truncate(umask));
    if let Some(io) = p.io_priority() {
        security::set_io_priority(io)?;
    }
    if let Some(sch) = p.scheduler() {
        security::set_scheduler(sch)?;
    }
    if let Some(per) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        security::set_personality(per.domain())?;
    }
    Ok(())
}

fn drop_privileges(spec: &Spec, plan: &Plan) -> Result<()> {
    let p = process(spec);
    let setgroups_allowed = !plan.new_user()
        || nix::unistd::getuid().is_root()
            && std::fs::read_to_string("/proc/self/setgroups")
                .map(|s| s.trim() == "allow")
                .unwrap_or(true);
    // The bounding set shrinks only with CAP_SETPCAP: before leaving root.
    if let Some(c) = p.capabilities() {
        security::drop_bounding(c)?;
    }
    security::switch_user(p.user(), setgroups_allowed)?;
    if let Some(c) = p.capabilities() {
        security::apply_caps(c)?;
    }
    Ok(())
}

/// chdir to process.cwd, and make sure it is inside the container's root:
/// a cwd that resolves outside (through a leaked fd, CVE-2024-21626) is refused.
fn change_dir(spec: &Spec) -> Result<()> {
    let p = process(spec);
    let cwd = p.cwd();
    nix::unistd::chdir(cwd.as_path()).ctx("chdir to", cwd)?;
    match nix::unistd::getcwd() {
        Ok(dir) if dir.is_absolute() => Ok(()),
        _ => Err(Error::Config(format!(
            "working directory {} is outside the container",
            cwd.display()
        ))),
    }
}

/// Looks up args[0] in the container's PATH: 127 if missing, 126 if not executable.
fn find_executable(spec: &Spec) -> Result<PathBuf> {
    let p = process(spec);
    let args = p.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::Config("process.args is empty".into()))?;
    let env = p.env().clone().unwrap_or_default();
    let path_var = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let candidates: Vec<PathBuf> = if arg0.contains('/') {
        vec![PathBuf::from(arg0)]
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(arg0))
            .collect()
    };
    let mut denied = false;
    for c in candidates {
        match nix::unistd::access(c.as_path(), nix::unistd::AccessFlags::X_OK) {
            Ok(()) if c.is_file() => return Ok(c),
            Ok(()) | Err(nix::errno::Errno::EACCES) => denied |= c.exists(),
            Err(_) => {}
        }
    }
    if denied {
        Err(Error::Exec {
            code: 126,
            message: format!("exec {arg0:?}: permission denied"),
        })
    } else {
        Err(Error::Exec {
            code: 127,
            message: format!("exec {arg0:?}: executable file not found in $PATH"),
        })
    }
}

/// Closes every fd from 3 + preserve_fds up except `keep` (init's own channel
/// and exec fifo), then marks what is left close-on-exec: no host fd stays
/// open into the container, not even for a lookup through /proc/self/fd.
fn close_inherited_fds(preserve: i32, keep: &[RawFd]) -> Result<()> {
    let first = 3 + preserve.max(0) as u32;
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= first && fd < u32::MAX)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = first;
    for k in keep {
        if k > from {
            close_range(from, k - 1, 0)?;
        }
        from = k + 1;
    }
    close_range(from, u32::MAX, 0)?;
    close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC)
}

/// close_range(2): closes (or with CLOSE_RANGE_CLOEXEC, marks) fds `first..=last`.
fn close_range(first: u32, last: u32, flags: libc::c_uint) -> Result<()> {
    // SAFETY: close_range takes plain integers; the fds it closes are owned by
    // nothing that runs afterwards in this process (init execs or exits).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    nix::errno::Errno::result(rc)
        .map(drop)
        .sys(|| format!("close inherited fds {first}..={last}"))
}

/// Blocks until `kiln start` writes to the exec fifo.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(fifo, &mut b) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).sys(|| "wait for start on exec fifo".into()),
        }
    }
}

/// Replaces this process with the container's process, handing over
/// through kiln-dmz (`dmz`, made by `dmz::helper` before seccomp).
pub fn exec(exe: &Path, spec: &Spec, dmz: &OwnedFd) -> Result<Infallible> {
    let (path, argv, envp) = exec_args(exe, spec)?;
    let e = dmz::Handover::new(dmz, path, argv, envp).exec();
    Err(Error::Exec {
        code: 126,
        message: format!("exec {} through kiln-dmz: {e}", exe.display()),
    })
}

/// The path, argv and environment the container's process is exec'd with.
pub fn exec_args(exe: &Path, spec: &Spec) -> Result<(CString, Vec<CString>, Vec<CString>)> {
    let p = process(spec);
    let cstr = |s: &str| CString::new(s).map_err(|_| Error::Config(format!("{s:?} holds NUL")));
    let argv: Vec<CString> = p
        .args()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<_>>()?;
    let envp: Vec<CString> = p
        .env()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<_>>()?;
    let path = cstr(&exe.to_string_lossy())?;
    Ok((path, argv, envp))
}
