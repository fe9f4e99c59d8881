//! `kiln create`: everything but running the user process — state dir, cgroup,
//! namespaces, root filesystem, hooks — leaving init waiting on the exec fifo.

use super::cgroups::Cgroup;
use super::container::{CONFIG_FILE, Container, EXEC_FIFO, now_rfc3339, validate_id};
use super::process::{self, Launch, Mode};
use super::state::{Record, Status, process_start};
use super::{Context, Error, Result, hooks, spec};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The flags of `create` (and of `run`, which adds starting and waiting).
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    pub systemd_cgroup: bool,
    pub kiln_init: bool,
    /// The process's stdout and stderr append here, its stdin is /dev/null
    /// (a detached `kiln run IMAGE`); none: kiln's own stdio is inherited.
    pub output: Option<PathBuf>,
}

/// Creates the container; in `Mode::Run` its process is already running on return.
pub fn create(
    root: &Path,
    o: &CreateOpts,
    mode: Mode,
    console_fd: Option<std::os::fd::OwnedFd>,
) -> Result<Container> {
    let spec = spec::load_bundle(&o.bundle)?;
    create_with(root, o, &spec, mode, console_fd)
}

/// `create` with the bundle's config already loaded (by `run`, which needs
/// it too).
pub fn create_with(
    root: &Path,
    o: &CreateOpts,
    spec: &oci_spec::runtime::Spec,
    mode: Mode,
    console_fd: Option<std::os::fd::OwnedFd>,
) -> Result<Container> {
    validate_id(&o.id)?;
    let bundle = fs::canonicalize(&o.bundle).ctx("open bundle", &o.bundle)?;
    let rootfs = spec::rootfs_path(spec, &bundle);
    // Others may pass through (a user-namespaced init opens its exec fifo
    // here) but not list: config.json, mode 0600, names the environment,
    // which may hold secrets (`-e`).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .ctx("create state root", root)?;
    let dir = Container::dir_for(root, &o.id);
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::container(&o.id, "already exists"));
        }
        other => other.ctx("create", &dir)?,
    }
    let mut c = Container {
        dir: dir.clone(),
        record: Record {
            oci_version: spec.version().clone(),
            id: o.id.clone(),
            pid: 0,
            pid_start: 0,
            status: Status::Creating,
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            created: now_rfc3339(),
            owner: nix::unistd::geteuid().to_string(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            cgroup: None,
            kiln_init: o.kiln_init,
        },
    };
    let result = create_in(&mut c, spec, o, mode, console_fd);
    if result.is_err() {
        if let Some(cg) = c.cgroup() {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.destroy();
        }
        let _ = fs::remove_dir_all(&dir);
    }
    result.map(|()| c)
}

fn create_in(
    c: &mut Container,
    spec: &oci_spec::runtime::Spec,
    o: &CreateOpts,
    mode: Mode,
    console_fd: Option<std::os::fd::OwnedFd>,
) -> Result<()> {
    let _lock = c.lock()?;
    let fifo = c.dir.join(EXEC_FIFO);
    if mode == Mode::Create {
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .ctx("create", &fifo)?;
        // Init opens it from inside its user namespace, as the container's root.
        if let Some((uid, gid)) = host_root(spec) {
            nix::unistd::chown(
                &fifo,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .ctx("chown", &fifo)?;
        }
    }
    let cgroup = make_cgroup(c.id(), spec, o.systemd_cgroup)?;
    c.record.cgroup = cgroup.as_ref().map(|cg| cg.paths().clone());
    c.save()?;
    let launch = Launch {
        id: o.id.clone(),
        spec,
        bundle: c.record.bundle.clone(),
        rootfs: c.record.rootfs.clone(),
        fifo: (mode == Mode::Create).then_some(fifo),
        mode,
        console_socket: o.console_socket.clone(),
        console_fd,
        no_pivot: o.no_pivot,
        preserve_fds: o.preserve_fds,
        kiln_init: o.kiln_init,
        seccomp: process::seccomp_filter(spec, c.dir.parent().unwrap_or(Path::new(".")))?,
        stdio: o.output.as_deref().map(open_stdio).transpose()?,
    };
    let record = c.record.clone();
    let pid = process::spawn(&launch, cgroup.as_ref(), |pid| {
        let mut state = Container {
            dir: c.dir.clone(),
            record: record.clone(),
        }
        .oci_state();
        state["pid"] = pid.as_raw().into();
        state["status"] = "creating".into();
        let h = spec.hooks().clone().unwrap_or_default();
        #[allow(deprecated)]
        hooks::run("prestart", h.prestart().as_deref().unwrap_or(&[]), &state)?;
        hooks::run(
            "createRuntime",
            h.create_runtime().as_deref().unwrap_or(&[]),
            &state,
        )
    })?;
    c.record.pid = pid.as_raw();
    c.record.pid_start = process_start(pid.as_raw()).unwrap_or(0);
    c.record.status = if mode == Mode::Create {
        Status::Created
    } else {
        Status::Running
    };
    c.save()?;
    // Only now, while the container's process starts: nothing reads it
    // before `create` returns.
    save_private(spec, &c.dir.join(CONFIG_FILE))?;
    if let Some(p) = &o.pid_file {
        write_pid_file(p, pid.as_raw())?;
    }
    Ok(())
}

/// The container's cgroup; a rootless kiln without a delegated cgroup runs without one.
fn make_cgroup(id: &str, spec: &oci_spec::runtime::Spec, systemd: bool) -> Result<Option<Cgroup>> {
    let linux = spec.linux().as_ref();
    let path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let resources = linux.and_then(|l| l.resources().as_ref());
    match Cgroup::create(id, path.as_deref(), resources, systemd) {
        Ok(cg) => Ok(Some(cg)),
        // Rootless without a delegated cgroup: fine unless the config asks for limits.
        Err(e) if !nix::unistd::geteuid().is_root() && !linux.is_some_and(asks_for_limits) => {
            eprintln!("kiln: warning: running without a cgroup: {e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether linux.resources limits anything (device rules alone do not count:
/// a rootless container cannot create device nodes anyway).
fn asks_for_limits(linux: &oci_spec::runtime::Linux) -> bool {
    linux.resources().as_ref().is_some_and(|r| {
        r.memory().is_some()
            || r.cpu().is_some()
            || r.pids().is_some()
            || r.block_io().is_some()
            || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
            || r.unified().as_ref().is_some_and(|u| !u.is_empty())
    })
}

/// The host uid and gid of the container's root, when its user namespace maps them.
fn host_root(spec: &oci_spec::runtime::Spec) -> Option<(u32, u32)> {
    let linux = spec.linux().as_ref()?;
    let root_of = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.as_deref()?
            .iter()
            .find(|m| m.container_id() == 0 && m.size() > 0)
            .map(|m| m.host_id())
    };
    Some((
        root_of(linux.uid_mappings())?,
        root_of(linux.gid_mappings())?,
    ))
}

/// /dev/null and `log` (append, owner-only) for the process's stdin and output.
fn open_stdio(log: &Path) -> Result<[std::os::fd::OwnedFd; 2]> {
    use std::os::unix::fs::OpenOptionsExt;
    let null = fs::File::open("/dev/null").ctx("open", Path::new("/dev/null"))?;
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .ctx("open", log)?;
    Ok([null.into(), out.into()])
}

/// Writes config.json readable by its owner only.
fn save_private(spec: &oci_spec::runtime::Spec, path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let data = serde_json::to_vec(spec).map_err(|e| Error::Config(format!("config: {e}")))?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(&data))
        .ctx("write", path)
}

/// Writes the pid file atomically (containerd and podman read it).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("kiln-tmp");
    fs::write(&tmp, pid.to_string()).ctx("write", &tmp)?;
    fs::rename(&tmp, path).ctx("rename", path)
}
