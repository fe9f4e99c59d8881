//! Routes each section of linux.resources to the hierarchy that serves its
//! controller — the v1 hierarchy it is bound to, else the unified one — and
//! applies it there; `linux.resources.unified` goes last so it can override.

use super::{CgroupPaths, Error, Hierarchy, Result, devices, v1, v2};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxNetwork, LinuxResources};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// A new cgroup: device rules are always written (deny by default).
    Create,
    /// `kiln update`: only the sections given are touched.
    Update,
}

/// Where one controller's files are.
enum Route<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// The hierarchy for a controller named `v1` on v1 and `v2` on v2.
fn route<'a>(paths: &'a CgroupPaths, v1: &str, v2: &str) -> Result<Route<'a>> {
    if let Some(d) = paths.v1.get(v1) {
        return Ok(Route::V1(d));
    }
    match &paths.unified {
        Some(d) => Ok(Route::V2(d)),
        None => Err(Error::resource(
            v2,
            "no such cgroup controller on this host",
        )),
    }
}

pub fn memory_set(m: &LinuxMemory) -> bool {
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true)
}

pub fn cpu_set(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_runtime().is_some()
        || c.realtime_period().is_some()
}

pub fn cpuset_set(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

pub fn blkio_set(b: &LinuxBlockIo) -> bool {
    let some = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v| !v.is_empty());
    b.weight().is_some()
        || b.leaf_weight().is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || some(b.throttle_read_bps_device())
        || some(b.throttle_write_bps_device())
        || some(b.throttle_read_iops_device())
        || some(b.throttle_write_iops_device())
}

fn network_set(n: &LinuxNetwork) -> bool {
    n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
}

/// The v2 controllers `r` needs, given the v1 hierarchies already chosen.
/// Errors name a requested resource whose controller the host lacks.
pub fn v2_controllers(
    paths: &CgroupPaths,
    h: &Hierarchy,
    r: &LinuxResources,
) -> Result<Vec<String>> {
    let mut want: Vec<(&str, &str)> = Vec::new(); // (v1 name, v2 name)
    let cpu = r.cpu().as_ref();
    if r.memory().as_ref().is_some_and(memory_set) {
        want.push(("memory", "memory"));
    }
    if cpu.is_some_and(cpu_set) {
        want.push(("cpu", "cpu"));
    }
    if cpu.is_some_and(cpuset_set) {
        want.push(("cpuset", "cpuset"));
    }
    if r.pids().is_some_and(|p| p.limit() != 0) {
        want.push(("pids", "pids"));
    }
    if r.block_io().as_ref().is_some_and(blkio_set) {
        want.push(("blkio", "io"));
    }
    if r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
        want.push(("hugetlb", "hugetlb"));
    }
    if r.rdma().as_ref().is_some_and(|v| !v.is_empty()) {
        want.push(("rdma", "rdma"));
    }
    let mut out: Vec<String> = Vec::new();
    for (c1, c2) in want {
        if paths.v1.contains_key(c1) {
            continue;
        }
        if !h.has(c2) {
            return Err(Error::resource(
                c2,
                "no such cgroup controller on this host",
            ));
        }
        out.push(c2.to_string());
    }
    for key in r.unified().iter().flat_map(|u| u.keys()) {
        let c = v2::unified_controller(key)?;
        if c != "cgroup" && !out.iter().any(|o| o == c) {
            if !h.has(c) {
                return Err(unified_unavailable(paths, key, c));
            }
            out.push(c.to_string());
        }
    }
    Ok(out)
}

fn unified_unavailable(paths: &CgroupPaths, key: &str, c: &str) -> Error {
    let why = if paths.v1.contains_key(c) {
        format!("the {c} controller is on a cgroup v1 hierarchy here, not the unified one")
    } else {
        format!("no {c} controller on the unified hierarchy")
    };
    Error::resource(format!("linux.resources.unified {key:?}"), why)
}

/// Same for `kiln update`, from the recorded paths only.
pub fn v2_controllers_for_update(
    paths: &CgroupPaths,
    dir: &Path,
    r: &LinuxResources,
) -> Result<Vec<String>> {
    let offered = v2::available_above(dir)?;
    let h = Hierarchy {
        mountpoint: dir.to_path_buf(),
        root: "/".into(),
        controllers: offered,
        own: "/".into(),
    };
    v2_controllers(paths, &h, r)
}

/// Writes every section of `r` to its hierarchy.
pub fn apply(paths: &CgroupPaths, r: &LinuxResources, mode: Mode) -> Result<()> {
    apply_memory_cpu(paths, r)?;
    if let Some(p) = r.pids().filter(|p| p.limit() != 0) {
        let value = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        let dir = match route(paths, "pids", "pids")? {
            Route::V1(d) | Route::V2(d) => d,
        };
        super::fs::write(dir, "pids.max", &value)?;
    }
    if let Some(b) = r.block_io().as_ref().filter(|b| blkio_set(b)) {
        match route(paths, "blkio", "io")? {
            Route::V1(d) => v1::blkio(d, b)?,
            Route::V2(d) => v2::io(d, b)?,
        }
    }
    if let Some(limits) = r.hugepage_limits().as_ref().filter(|v| !v.is_empty()) {
        match route(paths, "hugetlb", "hugetlb")? {
            Route::V1(d) => v1::hugetlb(d, limits)?,
            Route::V2(d) => v2::hugetlb(d, limits)?,
        }
    }
    if let Some(rdma) = r.rdma().as_ref().filter(|v| !v.is_empty()) {
        let (Route::V1(d) | Route::V2(d)) = route(paths, "rdma", "rdma")?;
        v2::rdma(d, rdma)?;
    }
    if let Some(n) = r.network().as_ref().filter(|n| network_set(n)) {
        v1::network(&paths.v1, n)?;
    }
    // A new cgroup's eBPF device program waits for new_devices; v1 rules
    // go in now (see there).
    if mode == Mode::Update || paths.v1.contains_key("devices") {
        apply_devices(paths, r, mode)?;
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        let dir = paths.unified.as_ref().ok_or_else(|| {
            Error::resource(
                "linux.resources.unified",
                "no unified (cgroup2) hierarchy is mounted",
            )
        })?;
        v2::unified(dir, u)?;
    }
    Ok(())
}

fn apply_memory_cpu(paths: &CgroupPaths, r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory().as_ref().filter(|m| memory_set(m)) {
        match route(paths, "memory", "memory")? {
            Route::V1(d) => v1::memory(d, m)?,
            Route::V2(d) => v2::memory(d, m)?,
        }
    }
    let Some(c) = r.cpu().as_ref() else {
        return Ok(());
    };
    if cpu_set(c) {
        match route(paths, "cpu", "cpu")? {
            Route::V1(d) => v1::cpu(d, c)?,
            Route::V2(d) => v2::cpu(d, c)?,
        }
    }
    if cpuset_set(c) {
        let (Route::V1(d) | Route::V2(d)) = route(paths, "cpuset", "cpuset")?;
        v2::cpuset(d, c)?;
    }
    Ok(())
}

/// Device rules: deny all, then the config's rules in order, then the devices
/// every container needs. A new cgroup always gets them; an update only when
/// it names devices.
/// A new cgroup's eBPF device program (deny by default, then what `r`
/// allows): kept out of `apply` so that loading it overlaps the container
/// init's set-up, which it replaces atomically. v1 rules are a series of
/// writes, deny-all first, which the init's mknods must not see half done:
/// `apply` writes them before the init exists.
pub fn new_devices(paths: &CgroupPaths, r: &LinuxResources) -> Result<()> {
    if paths.v1.contains_key("devices") {
        return Ok(());
    }
    apply_devices(paths, r, Mode::Create)
}

fn apply_devices(paths: &CgroupPaths, r: &LinuxResources, mode: Mode) -> Result<()> {
    if mode == Mode::Update && r.devices().is_none() {
        return Ok(());
    }
    let rules = devices::effective_rules(r.devices().as_deref().unwrap_or_default());
    if let Some(d) = paths.v1.get("devices") {
        return v1::devices(d, &rules);
    }
    match &paths.unified {
        Some(d) => super::bpf::attach_device_filter(d, &rules),
        None => Ok(()),
    }
}
