//! `kiln run IMAGE`: an image config plus the command line → a runtime-spec
//! config.json, with defaults as strict as podman's (capabilities, seccomp,
//! masked paths, no_new_privs) and the root as an overlay of cached layers.

use super::rootfs::OVERLAY_ANNOTATION;
use super::security::DEFAULT_CAPS;
use super::{Error, Result, seccomp};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxIdMappingBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Marks a bundle kiln made for `kiln run IMAGE`: `delete` removes it too.
pub const OWNED_BUNDLE_ANNOTATION: &str = "run.kiln.bundle.owned";

/// The image label holding the Procfile's process types as a JSON object.
pub const PROCESS_TYPES_LABEL: &str = "run.kiln.process-types";

/// What `kiln run` was asked for.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub hostname: String,
    pub process_type: Option<String>,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub volumes: Vec<String>,
    pub memory: Option<i64>,
    pub pids: Option<i64>,
    pub cpus: Option<f64>,
    pub read_only: bool,
    pub host_net: bool,
    /// uid and gid, already resolved against the image's /etc/passwd and /etc/group.
    pub user: Option<(u32, u32)>,
    pub tty: bool,
    /// linux.cgroupsPath (`--cgroup-parent`); none means under kiln's own cgroup.
    pub cgroups_path: Option<String>,
    /// HOME unless the image or the flags set it (the user's home directory).
    pub home: String,
    /// The user's supplementary groups from the image's /etc/group.
    pub additional_gids: Vec<u32>,
    /// A directory whose etc/ holds the container's hostname and hosts (and
    /// resolv.conf), stacked on the image's layers in the overlay; none:
    /// those files come in as volumes.
    pub files_layer: Option<PathBuf>,
}

/// The process's argv: a Procfile type (run through `sh -c`), the given
/// command (after the entrypoint), the image's Entrypoint + Cmd, or else the
/// image's `web` process type (or its only one), as foreman does.
pub fn argv(cfg: &ImageConfiguration, r: &RunSpec) -> Result<Vec<String>> {
    let c = cfg.config().clone().unwrap_or_default();
    let entry = c.entrypoint().clone().unwrap_or_default();
    let types = process_types(cfg);
    let default_type = || {
        if types.contains_key("web") || types.len() != 1 {
            "web".to_string()
        } else {
            types.keys().next().cloned().unwrap_or_default()
        }
    };
    let no_command = r.command.is_empty() && entry.is_empty() && c.cmd().is_none();
    let process_type = match &r.process_type {
        Some(t) => Some(t.clone()),
        None if no_command && !types.is_empty() => Some(default_type()),
        None => None,
    };
    if let Some(t) = &process_type {
        let cmd = types.get(t).ok_or_else(|| {
            let mut known: Vec<_> = types.keys().cloned().collect();
            known.sort();
            Error::Config(format!(
                "image has no process type {t:?} (it has: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        return Ok(vec!["/bin/sh".into(), "-c".into(), cmd.clone()]);
    }
    let rest = if r.command.is_empty() {
        c.cmd().clone().unwrap_or_default()
    } else {
        r.command.clone()
    };
    let args: Vec<String> = entry.into_iter().chain(rest).collect();
    if args.is_empty() {
        return Err(Error::Config(
            "the image has no Entrypoint or Cmd: give a command".into(),
        ));
    }
    Ok(args)
}

/// The process types recorded in the image (`type → command`).
pub fn process_types(cfg: &ImageConfiguration) -> HashMap<String, String> {
    let labels = cfg
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default();
    labels
        .get(PROCESS_TYPES_LABEL)
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

fn ms(dest: &str, typ: &str, src: &str, opts: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(src)
        .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("static mount is valid")
}

/// runc's default mounts (oci-spec has them), /proc also nosuid, noexec, nodev.
fn default_mounts(rootless: bool) -> Vec<Mount> {
    let mut m = if rootless {
        oci_spec::runtime::get_rootless_mounts()
    } else {
        oci_spec::runtime::get_default_mounts()
    };
    for mount in m
        .iter_mut()
        .filter(|m| m.destination() == Path::new("/proc"))
    {
        mount.set_options(Some(
            ["nosuid", "noexec", "nodev"].map(String::from).to_vec(),
        ));
    }
    m
}

/// podman's masked and read-only paths.
const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/dev/block",
];
const READONLY: [&str; 6] = [
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn volume(v: &str) -> Result<Mount> {
    let parts: Vec<&str> = v.split(':').collect();
    let (host, ctr, ro) = match parts.as_slice() {
        [h, c] => (*h, *c, false),
        [h, c, "ro"] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, false),
        _ => {
            return Err(Error::Config(format!(
                "volume {v:?}: expected HOST:CONTAINER[:ro]"
            )));
        }
    };
    let host = std::fs::canonicalize(host)
        .map_err(|e| Error::Config(format!("volume {v:?}: {host}: {e}")))?;
    if !ctr.starts_with('/') {
        return Err(Error::Config(format!(
            "volume {v:?}: the container path must be absolute"
        )));
    }
    let mut opts = vec!["rbind", "rprivate", "nosuid", "nodev"];
    if ro {
        opts.push("ro");
    }
    Ok(ms(ctr, "bind", &host.to_string_lossy(), &opts))
}

/// Builds the config. `layers` are the cached layer dirs, bottom first;
/// `dir` holds `rootfs/`, `upper/` and `work/`.
pub fn build(
    cfg: &ImageConfiguration,
    r: &RunSpec,
    layers: &[PathBuf],
    dir: &Path,
    overlay: bool,
) -> Result<Spec> {
    let rootless = !nix::unistd::geteuid().is_root();
    let mut mounts = default_mounts(rootless);
    if r.read_only {
        // As podman's --read-only: the places programs expect to write stay
        // writable, in memory.
        for dir in ["/tmp", "/var/tmp", "/run"] {
            mounts.push(ms(dir, "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"]));
        }
    }
    for v in &r.volumes {
        mounts.push(volume(v)?);
    }
    let mut annotations = HashMap::new();
    annotations.insert(OWNED_BUNDLE_ANNOTATION.to_string(), "true".to_string());
    if overlay {
        let lowers: Vec<PathBuf> = layers.iter().chain(&r.files_layer).cloned().collect();
        annotations.insert(
            OVERLAY_ANNOTATION.to_string(),
            overlay_options(&lowers, dir, rootless),
        );
    }
    // As in `linux`: set in place, the builder would copy linux whole.
    let mut spec = SpecBuilder::default()
        .version("1.2.0")
        .root(
            RootBuilder::default()
                .path(dir.join("rootfs"))
                .readonly(r.read_only)
                .build()
                .map_err(cfgerr)?,
        )
        .hostname(r.hostname.clone())
        .build()
        .map_err(cfgerr)?;
    spec.set_process(Some(process(cfg, r)?))
        .set_mounts(Some(mounts))
        .set_linux(Some(linux(r, rootless)?))
        .set_annotations(Some(annotations));
    Ok(spec)
}

/// The image's environment, PATH if it has none, HOSTNAME, TERM with a
/// terminal, then `-e`/`--env-file` values replacing same-named ones.
fn environment(c: &oci_spec::image::Config, r: &RunSpec) -> Vec<String> {
    let mut env: Vec<String> = c.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    env.push(format!("HOSTNAME={}", r.hostname));
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", r.home));
    }
    if r.tty {
        env.push("TERM=xterm".into());
    }
    for kv in &r.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    env
}

/// The process: argv, environment, working dir and user from the image and
/// flags; podman's default capabilities; no_new_privs.
fn process(cfg: &ImageConfiguration, r: &RunSpec) -> Result<oci_spec::runtime::Process> {
    let c = cfg.config().clone().unwrap_or_default();
    let caps: HashSet<Capability> = DEFAULT_CAPS
        .iter()
        .filter_map(|n| serde_json::from_value(serde_json::Value::String(n.to_string())).ok())
        .collect();
    let (uid, gid) = r.user.unwrap_or((0, 0));
    let cwd = c
        .working_dir()
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    ProcessBuilder::default()
        .terminal(r.tty)
        .args(argv(cfg, r)?)
        .env(environment(&c, r))
        .cwd(cwd)
        .user(
            UserBuilder::default()
                .uid(uid)
                .gid(gid)
                .additional_gids(r.additional_gids.clone())
                .build()
                .map_err(cfgerr)?,
        )
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .inheritable(HashSet::new())
                .ambient(HashSet::new())
                .build()
                .map_err(cfgerr)?,
        )
        .no_new_privileges(true)
        .build()
        .map_err(cfgerr)
}

/// Namespaces (a user namespace when rootless, none for the network with
/// `--net host`), masked and read-only paths, seccomp, resources, cgroup.
fn linux(r: &RunSpec, rootless: bool) -> Result<oci_spec::runtime::Linux> {
    let mut ns = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ];
    if !r.host_net {
        ns.push(LinuxNamespaceType::Network);
    }
    if rootless {
        ns.push(LinuxNamespaceType::User);
    }
    let namespaces = ns
        .into_iter()
        .map(|t| {
            LinuxNamespaceBuilder::default()
                .typ(t)
                .build()
                .expect("namespace is valid")
        })
        .collect::<Vec<_>>();
    let cap_names: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    // Set in place, not through the builder: its build() copies every field,
    // and the seccomp profile holds hundreds of names.
    let mut linux = LinuxBuilder::default().build().map_err(cfgerr)?;
    linux
        .set_namespaces(Some(namespaces))
        .set_masked_paths(Some(MASKED.iter().map(|s| s.to_string()).collect()))
        .set_readonly_paths(Some(READONLY.iter().map(|s| s.to_string()).collect()))
        .set_seccomp(Some(seccomp::default_profile(&cap_names)))
        .set_resources(Some(resources(r)?))
        .set_cgroups_path(r.cgroups_path.as_ref().map(PathBuf::from));
    if rootless {
        let map = |host: u32| {
            vec![
                LinuxIdMappingBuilder::default()
                    .container_id(0u32)
                    .host_id(host)
                    .size(1u32)
                    .build()
                    .expect("mapping is valid"),
            ]
        };
        linux
            .set_uid_mappings(Some(map(nix::unistd::geteuid().as_raw())))
            .set_gid_mappings(Some(map(nix::unistd::getegid().as_raw())));
    }
    Ok(linux)
}

/// The overlay mount options for the root: the cached layers (top first), the
/// container's upper and work dirs. volatile: no syncfs of the upper dir's
/// file system when the overlay goes away (a journal commit, ~100 ms);
/// containers do not outlive a reboot.
fn overlay_options(layers: &[PathBuf], dir: &Path, rootless: bool) -> String {
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let extra = if rootless {
        ",userxattr,volatile"
    } else {
        ",volatile"
    };
    format!(
        "lowerdir={},upperdir={},workdir={}{extra}",
        lower.join(":"),
        dir.join("upper").display(),
        dir.join("work").display()
    )
}

fn resources(r: &RunSpec) -> Result<oci_spec::runtime::LinuxResources> {
    let mut b = LinuxResourcesBuilder::default();
    if let Some(m) = r.memory {
        b = b.memory(
            LinuxMemoryBuilder::default()
                .limit(m)
                .build()
                .map_err(cfgerr)?,
        );
    }
    if let Some(p) = r.pids {
        b = b.pids(
            LinuxPidsBuilder::default()
                .limit(p)
                .build()
                .map_err(cfgerr)?,
        );
    }
    if let Some(c) = r.cpus {
        let period = 100_000u64;
        b = b.cpu(
            LinuxCpuBuilder::default()
                .quota((c * period as f64) as i64)
                .period(period)
                .build()
                .map_err(cfgerr)?,
        );
    }
    b.build().map_err(cfgerr)
}

fn cfgerr(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("generate config: {e}"))
}

/// The image's /etc/`name` from the topmost layer that has it.
fn image_file(layers: &[PathBuf], name: &str) -> String {
    layers
        .iter()
        .rev()
        .map(|l| l.join("etc").join(name))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

/// The user's groups, as Docker sets them: its primary group `gid`, then
/// those of /etc/group that list the user `uid` (by its name in /etc/passwd).
pub fn groups_of(uid: u32, gid: u32, layers: &[PathBuf]) -> Vec<u32> {
    let passwd = image_file(layers, "passwd");
    let Some(name) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f[0].to_string())
    }) else {
        return vec![gid];
    };
    let mut gids: Vec<u32> = image_file(layers, "group")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let members = f.get(3)?;
            let g = f.get(2)?.parse::<u32>().ok()?;
            (g != gid && members.split(',').any(|m| m.trim() == name)).then_some(g)
        })
        .collect();
    gids.sort_unstable();
    gids.dedup();
    gids.insert(0, gid);
    gids
}

/// The home directory of `uid` in the image's /etc/passwd, "/" without one
/// (as Docker and podman set HOME).
pub fn home_of(uid: u32, layers: &[PathBuf]) -> String {
    layers
        .iter()
        .rev()
        .map(|l| l.join("etc/passwd"))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|passwd| {
            passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f.get(5).map(|h| h.to_string()))?
            })
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// Resolves `user[:group]` (names or numbers) with the image's /etc/passwd
/// and /etc/group, read from the topmost layer that has them.
pub fn resolve_user(spec: &str, layers: &[PathBuf]) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let find = |file: &str| {
        layers
            .iter()
            .rev()
            .map(|l| l.join(file))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let passwd = find("etc/passwd");
    let (uid, default_gid) = match user.parse::<u32>() {
        Ok(n) => (
            n,
            passwd
                .lines()
                .find(|l| l.split(':').nth(2) == Some(user))
                .and_then(|l| l.split(':').nth(3)?.parse().ok())
                .unwrap_or(n),
        ),
        Err(_) => {
            let line = passwd
                .lines()
                .find(|l| l.split(':').next() == Some(user))
                .ok_or_else(|| {
                    Error::Config(format!("user {user:?} is not in the image's /etc/passwd"))
                })?;
            let f: Vec<&str> = line.split(':').collect();
            (
                f.get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
                f.get(3).and_then(|v| v.parse().ok()).unwrap_or(0),
            )
        }
    };
    let gid = match group {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => find("etc/group")
                .lines()
                .find(|l| l.split(':').next() == Some(g))
                .and_then(|l| l.split(':').nth(2)?.parse().ok())
                .ok_or_else(|| {
                    Error::Config(format!("group {g:?} is not in the image's /etc/group"))
                })?,
        },
    };
    Ok((uid, gid))
}
