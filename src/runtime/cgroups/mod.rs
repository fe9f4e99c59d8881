//! cgroups: v2 first, v1 per controller where v2 lacks it.
//!
//! A container gets one cgroup in the unified (cgroup2) hierarchy whenever one
//! is mounted, even one without controllers, and one in every mounted v1
//! hierarchy. Each resource goes to the v1 hierarchy its controller is bound
//! to, else to the unified one (see `apply`). The layout is discovered from
//! /proc/self/mountinfo and /proc/self/cgroup (`layout`); every function takes
//! its paths as data so unit tests run against temp dirs of fake files.
//!
//! Policy notes:
//! - The default parent is the caller's own cgroup ("<own>/kiln-<id>").
//! - cgroup v2's "no internal processes" rule: if a required controller cannot
//!   be enabled in the caller's own cgroup because it holds processes, and the
//!   only process there is the caller itself, the caller moves itself into the
//!   leaf "<own>/kiln-init" (a descendant of its own cgroup, never elsewhere)
//!   and retries. Other processes are never moved, and a cgroup that holds
//!   processes never gets controllers otherwise: the threaded ones the kernel
//!   would accept there make it a thread root that refuses processes below.
//! - Mounts hidden by a later mount at or above them (cgroup2 mounted over a
//!   hybrid host's /sys/fs/cgroup in a private mount namespace) are ignored.
//! - Device rules on v1 use devices.allow/deny (deny all, then the rules, then
//!   the standard devices every container needs); on v2 an eBPF device filter
//!   is attached (`bpf`).

mod apply;
mod bpf;
mod devices;
mod fs;
pub mod layout;
pub mod stats;
mod v1;
mod v2;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_root;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use layout::{Hierarchy, Layout};
pub use stats::Stats;

/// Everything that can go wrong with cgroups, naming the file or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("read {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("cgroups path {path:?}: {reason}")]
    Path { path: String, reason: String },
    #[error("{resource}: {reason}")]
    Resource { resource: String, reason: String },
    #[error("no cgroup hierarchy is mounted (see /proc/self/mountinfo)")]
    NoHierarchy,
    #[error("cgroup {} already holds processes (another container's?)", path.display())]
    InUse { path: PathBuf },
    #[error("{}: {what} did not finish within {timeout:?}", path.display())]
    Timeout {
        path: PathBuf,
        what: &'static str,
        timeout: Duration,
    },
    #[error("signal {signal} to pid {pid}: {source}")]
    Signal {
        pid: i32,
        signal: i32,
        source: nix::Error,
    },
    #[error("device filter {}: {what}: {source}", path.display())]
    Bpf {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn resource(resource: impl ToString, reason: impl ToString) -> Self {
        Error::Resource {
            resource: resource.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Serializable record of where a container's cgroups are (kept in state.json).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CgroupPaths {
    /// The container's directory in the unified (cgroup2) hierarchy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<PathBuf>,
    /// Its directory in each v1 hierarchy, by controller ("memory", "cpu",
    /// "name=systemd"); co-mounted controllers share one directory.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub v1: BTreeMap<String, PathBuf>,
}

impl CgroupPaths {
    /// Every distinct directory: the v1 ones, then the unified one.
    pub fn dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for d in self.v1.values().chain(self.unified.iter()) {
            if !out.contains(&d.as_path()) {
                out.push(d);
            }
        }
        out
    }
}

/// A container's cgroup(s).
#[derive(Clone, Debug, PartialEq)]
pub struct Cgroup {
    paths: CgroupPaths,
}

impl Cgroup {
    /// Creates the container's cgroup(s) and applies `resources`, on the live
    /// layout. See `create_with`.
    pub fn create(
        id: &str,
        cgroups_path: Option<&str>,
        resources: Option<&LinuxResources>,
        systemd: bool,
    ) -> Result<Cgroup> {
        Cgroup::create_with(&Layout::discover()?, id, cgroups_path, resources, systemd)
    }

    /// Creates the container's cgroup(s) in `layout` and applies `resources`
    /// but an eBPF device program (`restrict_devices`, once the init exists).
    /// `cgroups_path` is linux.cgroupsPath: absolute (from each hierarchy's
    /// root), relative (under the caller's own cgroup), or with `systemd`
    /// "slice:prefix:name"; none means "<own cgroup>/kiln-<id>". On failure
    /// every directory this call made is removed again.
    pub fn create_with(
        layout: &Layout,
        id: &str,
        cgroups_path: Option<&str>,
        resources: Option<&LinuxResources>,
        systemd: bool,
    ) -> Result<Cgroup> {
        let target = layout::Target::resolve(id, cgroups_path, systemd)?;
        if layout.unified.is_none() && layout.v1.is_empty() {
            return Err(Error::NoHierarchy);
        }
        let empty = LinuxResources::default();
        let resources = resources.unwrap_or(&empty);
        let mut created = Vec::new();
        let result = Cgroup::build(layout, &target, resources, &mut created);
        if result.is_err() {
            for dir in created.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        result
    }

    fn build(
        layout: &Layout,
        target: &layout::Target,
        resources: &LinuxResources,
        created: &mut Vec<PathBuf>,
    ) -> Result<Cgroup> {
        let mut paths = CgroupPaths::default();
        for h in &layout.v1 {
            let dir = v1::make_path(h, &target.cgroup_in(h), created)?;
            for c in &h.controllers {
                paths.v1.insert(c.clone(), dir.clone());
            }
        }
        if let Some(h) = &layout.unified {
            let dir = h.dir(&target.cgroup_in(h));
            let required = apply::v2_controllers(&paths, h, resources)?;
            v2::make_path(h, &dir, &required, created)?;
            paths.unified = Some(dir);
        }
        let cg = Cgroup { paths };
        if !cg.pids()?.is_empty() {
            let path = cg.main_dir().map(Path::to_path_buf).unwrap_or_default();
            return Err(Error::InUse { path });
        }
        apply::apply(&cg.paths, resources, apply::Mode::Create)?;
        Ok(cg)
    }

    /// Puts a new cgroup's eBPF device program in place (`resources.devices`,
    /// deny by default): `create` leaves it out so that it can load while the
    /// container's init sets up (v1 rules `create` writes itself).
    pub fn restrict_devices(&self, resources: Option<&LinuxResources>) -> Result<()> {
        apply::new_devices(&self.paths, resources.unwrap_or(&LinuxResources::default()))
    }

    /// The cgroup(s) recorded in `paths`, as created earlier.
    pub fn open(paths: &CgroupPaths) -> Cgroup {
        Cgroup {
            paths: paths.clone(),
        }
    }

    /// The existing sub-cgroup `rel` of this one, in every hierarchy (runc's
    /// `exec --cgroup`); it may not climb out with `..`.
    pub fn sub(&self, rel: &str) -> Result<Cgroup> {
        let rel = Path::new(rel.trim_start_matches('/'));
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::Path {
                path: rel.display().to_string(),
                reason: "must name a sub-cgroup".into(),
            });
        }
        let join = |d: &PathBuf| -> Result<PathBuf> {
            let p = d.join(rel);
            if p.is_dir() {
                Ok(p)
            } else {
                Err(Error::Path {
                    path: p.display().to_string(),
                    reason: "no such sub-cgroup".into(),
                })
            }
        };
        let mut paths = CgroupPaths {
            unified: self.paths.unified.as_ref().map(join).transpose()?,
            ..CgroupPaths::default()
        };
        for (c, d) in &self.paths.v1 {
            paths.v1.insert(c.clone(), join(d)?);
        }
        Ok(Cgroup { paths })
    }

    pub fn paths(&self) -> &CgroupPaths {
        &self.paths
    }

    /// Moves `pid` into the container's cgroup in every hierarchy; with
    /// `in_unified`, it is there already (born there with CLONE_INTO_CGROUP).
    pub fn add_process(&self, pid: i32, in_unified: bool) -> Result<()> {
        for dir in self.paths.dirs() {
            if in_unified && self.paths.unified.as_deref() == Some(dir) {
                continue;
            }
            fs::write(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Every process in the container's cgroup and below it.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let Some(dir) = self.main_dir() else {
            return Ok(Vec::new());
        };
        let mut pids = fs::procs_recursive(dir)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// The hierarchy that lists the container's processes: the unified one,
    /// else a v1 one (pids, freezer, memory, or any).
    fn main_dir(&self) -> Option<&Path> {
        let v1 = &self.paths.v1;
        self.paths
            .unified
            .as_deref()
            .or_else(|| {
                ["pids", "freezer", "memory"]
                    .iter()
                    .find_map(|c| v1.get(*c).map(PathBuf::as_path))
            })
            .or_else(|| v1.values().next().map(PathBuf::as_path))
    }

    /// Freezes every process: the v1 freezer where it is bound to a v1
    /// hierarchy, else cgroup.freeze; returns once the kernel reports frozen.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        match (self.paths.v1.get("freezer"), &self.paths.unified) {
            (Some(d), _) => v1::set_frozen(d, frozen),
            (None, Some(d)) => v2::set_frozen(d, frozen),
            (None, None) => Err(Error::resource("freezer", "no freezer on this host")),
        }
    }

    /// True when the container is frozen (a gone cgroup is not).
    pub fn is_frozen(&self) -> Result<bool> {
        match (self.paths.v1.get("freezer"), &self.paths.unified) {
            (Some(d), _) => v1::is_frozen(d),
            (None, Some(d)) => v2::is_frozen(d),
            (None, None) => Ok(false),
        }
    }

    /// Sends `signal` to every process in the container. SIGKILL uses
    /// cgroup.kill where the kernel has it; otherwise the processes are
    /// signalled one by one (frozen first on v1 so none can fork meanwhile),
    /// and for SIGKILL repeatedly until none is left.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        if signal == libc::SIGKILL
            && let Some(d) = &self.paths.unified
            && d.join("cgroup.kill").exists()
        {
            fs::write(d, "cgroup.kill", "1")?;
            // A task frozen by the v1 freezer does not die until thawed (a
            // v2-frozen one does); thawed after the kill, nothing runs on.
            if let Some(f) = self.paths.v1.get("freezer") {
                v1::set_frozen(f, false)?;
            }
            return self.wait_empty(Duration::from_secs(5));
        }
        let freezer = self
            .paths
            .v1
            .get("freezer")
            .filter(|_| signal == libc::SIGKILL);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if let Some(f) = freezer {
                v1::set_frozen(f, true)?;
            }
            let sent = signal_all(&pids, signal);
            if let Some(f) = freezer {
                v1::set_frozen(f, false)?;
            }
            sent?;
            if signal != libc::SIGKILL {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return self.wait_empty(Duration::ZERO);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until no process is left, up to `timeout`.
    fn wait_empty(&self, timeout: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.pids()?.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    path: self.main_dir().unwrap_or(Path::new("")).to_path_buf(),
                    what: "killing every process",
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Applies new limits (`kiln update`); sections left out stay as they are.
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        if let Some(u) = &self.paths.unified {
            let required = apply::v2_controllers_for_update(&self.paths, u, resources)?;
            v2::enable_above(u, &required)?;
        }
        apply::apply(&self.paths, resources, apply::Mode::Update)
    }

    /// Usage and limits, shaped like runc's `events --stats` "data".
    pub fn stats(&self) -> Result<Stats> {
        stats::collect(&self.paths)
    }

    /// Removes the container's cgroups (and any below them), retrying briefly
    /// while exiting tasks keep them busy; already gone is fine.
    pub fn destroy(&self) -> Result<()> {
        for dir in self.paths.dirs() {
            fs::rmdir_tree(dir)?;
        }
        Ok(())
    }
}

fn signal_all(pids: &[i32], signal: i32) -> Result<()> {
    for &pid in pids {
        // SAFETY: kill(2) with a pid read from cgroup.procs; no memory involved.
        if unsafe { libc::kill(pid, signal) } != 0 {
            let e = nix::Error::last();
            if e != nix::Error::ESRCH {
                return Err(Error::Signal {
                    pid,
                    signal,
                    source: e,
                });
            }
        }
    }
    Ok(())
}

/// Which cgroup version serves each controller on this host.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Where the unified hierarchy is mounted, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unified: Option<PathBuf>,
    /// "memory" → "v1" or "v2".
    pub controllers: BTreeMap<String, &'static str>,
    /// "v2" (unified only), "hybrid" or "v1".
    pub mode: &'static str,
}

/// Which hierarchy each controller uses, for `kiln features`.
pub fn version_summary() -> Result<Summary> {
    Ok(summary_of(&Layout::discover()?))
}

pub fn summary_of(layout: &Layout) -> Summary {
    let mode = match (&layout.unified, layout.v1.is_empty()) {
        (Some(_), true) => "v2",
        (Some(_), false) => "hybrid",
        (None, _) => "v1",
    };
    Summary {
        unified: layout.unified.as_ref().map(|h| h.mountpoint.clone()),
        controllers: layout.controller_versions(),
        mode,
    }
}
