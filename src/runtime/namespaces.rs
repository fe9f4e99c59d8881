//! Which namespaces a container gets: new ones, ones joined by path, and who
//! creates each (clone for user and pid, the parent for time, the child for
//! the rest once its user namespace is set up).

use super::{Context, Error, Result};
use nix::sched::{CloneFlags, setns};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(0x80);

/// The namespace set-up a config asks for.
#[derive(Debug, Clone)]
pub struct Plan {
    /// New namespaces created by the clone itself (user, pid).
    pub clone: CloneFlags,
    /// New namespaces the child unshares after joining (mount, uts, ipc, net, cgroup).
    pub unshare: CloneFlags,
    /// Namespaces the child joins by path, user first.
    pub join: Vec<(CloneFlags, PathBuf)>,
    /// Namespaces the parent enters for its children only (pid, time) before cloning.
    pub parent_join: Vec<(CloneFlags, PathBuf)>,
    /// A new time namespace (created by the parent for its children).
    pub new_time: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            clone: CloneFlags::empty(),
            unshare: CloneFlags::empty(),
            join: Vec::new(),
            parent_join: Vec::new(),
            new_time: false,
        }
    }
}

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(t as i32)
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Self> {
        let mut plan = Plan::default();
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut seen = CloneFlags::empty();
        for ns in &namespaces {
            let f = flag(ns.typ());
            if seen.contains(f) {
                return Err(Error::Config(format!(
                    "namespace {:?} listed twice",
                    ns.typ()
                )));
            }
            seen |= f;
            match (ns.typ(), ns.path()) {
                (LinuxNamespaceType::Pid | LinuxNamespaceType::Time, Some(p)) => {
                    plan.parent_join.push((f, p.clone()))
                }
                (LinuxNamespaceType::User, Some(p)) => plan.join.insert(0, (f, p.clone())),
                (_, Some(p)) => plan.join.push((f, p.clone())),
                (LinuxNamespaceType::User | LinuxNamespaceType::Pid, None) => plan.clone |= f,
                (LinuxNamespaceType::Time, None) => plan.new_time = true,
                (_, None) => plan.unshare |= f,
            }
        }
        Ok(plan)
    }

    /// Joining every namespace of the running container whose init is `pid`.
    pub fn joining(pid: i32, spec: &Spec) -> Self {
        let mut plan = Plan::default();
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for ns in namespaces {
            let name = match ns.typ() {
                LinuxNamespaceType::Mount => "mnt",
                LinuxNamespaceType::Cgroup => "cgroup",
                LinuxNamespaceType::Uts => "uts",
                LinuxNamespaceType::Ipc => "ipc",
                LinuxNamespaceType::User => "user",
                LinuxNamespaceType::Pid => "pid",
                LinuxNamespaceType::Network => "net",
                LinuxNamespaceType::Time => "time",
            };
            let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
            let f = flag(ns.typ());
            match ns.typ() {
                LinuxNamespaceType::Pid | LinuxNamespaceType::Time => {
                    plan.parent_join.push((f, path))
                }
                LinuxNamespaceType::User => plan.join.insert(0, (f, path)),
                _ => plan.join.push((f, path)),
            }
        }
        plan
    }

    pub fn new_user(&self) -> bool {
        self.clone.contains(CloneFlags::CLONE_NEWUSER)
    }

    pub fn has(&self, f: CloneFlags) -> bool {
        self.clone.contains(f)
            || self.unshare.contains(f)
            || self.join.iter().any(|(g, _)| *g == f)
            || self.parent_join.iter().any(|(g, _)| *g == f)
    }
}

/// Joins the namespace at `path`.
pub fn join(f: CloneFlags, path: &std::path::Path) -> Result<()> {
    let file = File::open(path).ctx("open namespace", path)?;
    setns(file.as_fd(), f).ctx("join namespace", path)
}

/// The parent's own pid/time "for children" namespaces, to return to after cloning.
pub struct Restore {
    saved: Vec<(CloneFlags, OwnedFd)>,
}

impl Restore {
    /// Enters the namespaces the child must be born into (pid/time by path,
    /// or a new time namespace with `offsets`), remembering the current ones.
    pub fn enter(plan: &Plan, offsets: &str) -> Result<Self> {
        let mut saved = Vec::new();
        let mut save = |f: CloneFlags, name: &str| -> Result<()> {
            let p = PathBuf::from(format!("/proc/self/ns/{name}"));
            let fd: OwnedFd = File::open(&p).ctx("open namespace", &p)?.into();
            saved.push((f, fd));
            Ok(())
        };
        for (f, path) in &plan.parent_join {
            save(
                *f,
                if *f == CLONE_NEWTIME {
                    "time_for_children"
                } else {
                    "pid_for_children"
                },
            )?;
            join(*f, path)?;
        }
        if plan.new_time {
            save(CLONE_NEWTIME, "time_for_children")?;
            nix::sched::unshare(CLONE_NEWTIME).sys(|| "create time namespace".into())?;
            if !offsets.is_empty() {
                let p = std::path::Path::new("/proc/self/timens_offsets");
                std::fs::write(p, offsets).ctx("write", p)?;
            }
        }
        Ok(Self { saved })
    }

    /// Goes back to the saved namespaces.
    pub fn leave(self) -> Result<()> {
        for (f, fd) in self.saved {
            setns(fd.as_fd(), f).sys(|| "return to kiln's own namespace".into())?;
        }
        Ok(())
    }
}

/// `linux.timeOffsets` as /proc/self/timens_offsets wants it.
pub fn time_offsets(spec: &Spec) -> String {
    let Some(offsets) = spec.linux().as_ref().and_then(|l| l.time_offsets().clone()) else {
        return String::new();
    };
    let mut out = String::new();
    for (clock, off) in offsets {
        out.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    out
}
