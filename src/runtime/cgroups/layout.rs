//! Where the cgroup hierarchies are: the cgroup (v1) and cgroup2 mounts from
//! /proc/self/mountinfo, their controllers, and the caller's own cgroup in each
//! from /proc/self/cgroup; and how a container's cgroups path maps onto them.

use super::{Error, Result};
use crate::runtime::mountinfo::{self, Mount};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One mounted hierarchy.
#[derive(Clone, Debug, PartialEq)]
pub struct Hierarchy {
    /// Where it is mounted (under the test root for fake trees).
    pub mountpoint: PathBuf,
    /// The cgroup shown at the mountpoint (mountinfo's root field), usually "/".
    pub root: PathBuf,
    /// v1: the controllers bound to it ("cpu", "cpuacct", "name=systemd");
    /// v2: those its root offers (cgroup.controllers).
    pub controllers: Vec<String>,
    /// The caller's own cgroup in it (from /proc/self/cgroup), e.g. "/user.slice".
    pub own: PathBuf,
}

impl Hierarchy {
    /// The directory of `cgroup` (a path from the hierarchy's root).
    pub fn dir(&self, cgroup: &Path) -> PathBuf {
        let rel = cgroup.strip_prefix(&self.root).unwrap_or(cgroup);
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        if rel.as_os_str().is_empty() {
            self.mountpoint.clone()
        } else {
            self.mountpoint.join(rel)
        }
    }

    /// The caller's own cgroup directory.
    pub fn own_dir(&self) -> PathBuf {
        self.dir(&self.own)
    }

    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The discovered layout: a cgroup2 hierarchy (if mounted) and the v1 ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    pub unified: Option<Hierarchy>,
    pub v1: Vec<Hierarchy>,
}

const MOUNTINFO: &str = "/proc/self/mountinfo";
const PROC_CGROUP: &str = "/proc/self/cgroup";

impl Layout {
    /// The live layout of the calling process.
    pub fn discover() -> Result<Layout> {
        let read = |p: &str| {
            std::fs::read_to_string(p).map_err(|source| Error::Io {
                what: "read",
                path: p.into(),
                source,
            })
        };
        Layout::parse(Path::new("/"), &read(MOUNTINFO)?, &read(PROC_CGROUP)?)
    }

    /// Builds the layout from the text of /proc/self/mountinfo and
    /// /proc/self/cgroup, with every mountpoint taken under `fs_root` (a temp
    /// dir in unit tests, "/" for real).
    pub fn parse(fs_root: &Path, mountinfo: &str, proc_cgroup: &str) -> Result<Layout> {
        let own = parse_proc_cgroup(proc_cgroup)?;
        let mut layout = Layout::default();
        for m in visible_cgroup_mounts(mountinfo) {
            let mountpoint = fs_root.join(m.mountpoint.strip_prefix("/").unwrap_or(&m.mountpoint));
            if m.fstype == "cgroup2" {
                if layout.unified.is_some() {
                    continue; // a second mount (bind) of the same hierarchy
                }
                let Some(own) = own.get("") else { continue };
                let controllers = super::fs::read_opt(&mountpoint, "cgroup.controllers")?
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                layout.unified = Some(Hierarchy {
                    mountpoint,
                    root: m.root,
                    controllers,
                    own: PathBuf::from(own),
                });
            } else if m.fstype == "cgroup" {
                let opts: Vec<&str> = m.super_opts.split(',').collect();
                // The /proc/self/cgroup line whose controllers are all among the mount options.
                let Some((names, own)) = own.iter().find(|(names, _)| {
                    !names.is_empty() && names.split(',').all(|n| opts.contains(&n))
                }) else {
                    continue;
                };
                if layout.v1.iter().any(|h| h.controllers.join(",") == *names) {
                    continue;
                }
                layout.v1.push(Hierarchy {
                    mountpoint,
                    root: m.root,
                    controllers: names.split(',').map(String::from).collect(),
                    own: PathBuf::from(own),
                });
            }
        }
        Ok(layout)
    }

    /// The v1 hierarchy `controller` is bound to, if any.
    pub fn v1_for(&self, controller: &str) -> Option<&Hierarchy> {
        self.v1.iter().find(|h| h.has(controller))
    }

    /// Which hierarchy each controller is used from: "v1" where it is bound to
    /// a v1 hierarchy, else "v2" where the unified hierarchy offers it.
    pub fn controller_versions(&self) -> BTreeMap<String, &'static str> {
        let mut out = BTreeMap::new();
        if let Some(u) = &self.unified {
            for c in &u.controllers {
                out.insert(c.clone(), "v2");
            }
        }
        for h in &self.v1 {
            for c in h.controllers.iter().filter(|c| !c.starts_with("name=")) {
                out.insert(c.clone(), "v1");
            }
        }
        out
    }
}

/// /proc/self/cgroup: "id:controllers:path" lines, keyed by the controller
/// list ("" for the cgroup2 line).
fn parse_proc_cgroup(text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(names), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Parse {
                path: PROC_CGROUP.into(),
                reason: format!("bad line {line:?}"),
            });
        };
        out.insert(names.to_string(), path.to_string());
    }
    Ok(out)
}

/// The cgroup and cgroup2 mounts of `mountinfo` that path lookup can reach,
/// in mountinfo order. A mount is hidden when a mount listed after it sits at
/// or above its mountpoint without being one of its ancestors: cgroup2
/// mounted over a hybrid host's /sys/fs/cgroup in a private mount namespace
/// hides the v1 mounts below it, which mountinfo still lists.
fn visible_cgroup_mounts(mountinfo: &str) -> Vec<Mount> {
    let mut all = mountinfo::parse(mountinfo);
    let parents: BTreeMap<u64, u64> = all.iter().map(|m| (m.id, m.parent)).collect();
    let is_ancestor = |a: u64, m: &Mount| {
        let mut cur = m.parent;
        // Bounded walk: a malformed mountinfo must not loop forever.
        for _ in 0..=parents.len() {
            if cur == a {
                return true;
            }
            match parents.get(&cur) {
                Some(&p) if p != cur => cur = p,
                _ => return false,
            }
        }
        false
    };
    let hidden: Vec<bool> = all
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.fstype.starts_with("cgroup")
                && all[i + 1..]
                    .iter()
                    .any(|n| m.mountpoint.starts_with(&n.mountpoint) && !is_ancestor(n.id, m))
        })
        .collect();
    let mut keep = hidden.into_iter();
    all.retain(|m| !keep.next().unwrap_or(false) && m.fstype.starts_with("cgroup"));
    all
}

/// Where a container's cgroup goes in every hierarchy.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A cgroup path from each hierarchy's root.
    Absolute(PathBuf),
    /// A path under the caller's own cgroup.
    UnderOwn(PathBuf),
}

/// The leaf the caller moves itself into when the v2 "no internal processes"
/// rule stops it enabling controllers in its own cgroup; later kiln processes
/// found there nest their containers beside it, not below it.
pub const INIT_LEAF: &str = "kiln-init";

impl Target {
    /// Resolves linux.cgroupsPath: absolute, relative, or (with `systemd`)
    /// "slice:prefix:name"; none means "kiln-<id>" under the caller's cgroup.
    pub fn resolve(id: &str, cgroups_path: Option<&str>, systemd: bool) -> Result<Target> {
        let bad = |reason: &str| Error::Path {
            path: cgroups_path.unwrap_or(id).to_string(),
            reason: reason.to_string(),
        };
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(bad("the container id cannot name a cgroup"));
        }
        let path = match (cgroups_path.filter(|p| !p.is_empty()), systemd) {
            (None, false) => return Ok(Target::UnderOwn(format!("kiln-{id}").into())),
            (None, true) => {
                systemd_path(&format!("system.slice:kiln:{id}")).ok_or_else(|| bad("bad id"))?
            }
            (Some(p), true) => systemd_path(p)
                .ok_or_else(|| bad("expected \"slice:prefix:name\" with --systemd-cgroup"))?,
            (Some(p), false) => PathBuf::from(p),
        };
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(bad("must not contain \"..\""));
        }
        if path.is_absolute() {
            Ok(Target::Absolute(path))
        } else {
            Ok(Target::UnderOwn(path))
        }
    }

    /// The container's cgroup path in hierarchy `h`.
    pub fn cgroup_in(&self, h: &Hierarchy) -> PathBuf {
        match self {
            Target::Absolute(p) => p.clone(),
            Target::UnderOwn(rel) => {
                let own = if h.own.file_name().is_some_and(|n| n == INIT_LEAF) {
                    h.own.parent().unwrap_or(&h.own)
                } else {
                    &h.own
                };
                own.join(rel)
            }
        }
    }
}

/// "slice:prefix:name" → "/a.slice/a-b.slice/<prefix>-<name>.scope" (systemd's
/// slice nesting); a name ending in ".slice" is used as is.
fn systemd_path(spec: &str) -> Option<PathBuf> {
    let mut parts = spec.split(':');
    let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || name.is_empty() || name.contains('/') || slice.contains('/') {
        return None;
    }
    let mut path = PathBuf::from("/");
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    if slice != "-.slice" {
        let base = slice.strip_suffix(".slice")?;
        if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
            return None;
        }
        let words: Vec<&str> = base.split('-').collect();
        for i in 1..=words.len() {
            path.push(format!("{}.slice", words[..i].join("-")));
        }
    }
    let unit = match (name.ends_with(".slice"), prefix.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => format!("{name}.scope"),
        (false, false) => format!("{prefix}-{name}.scope"),
    };
    path.push(unit);
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_slices_nest() {
        assert_eq!(
            systemd_path("machine-a.slice:libpod:abc"),
            Some("/machine.slice/machine-a.slice/libpod-abc.scope".into())
        );
        assert_eq!(systemd_path("-.slice:kiln:x"), Some("/kiln-x.scope".into()));
        assert_eq!(
            systemd_path(":kiln:x"),
            Some("/system.slice/kiln-x.scope".into())
        );
        assert_eq!(
            systemd_path("system.slice:p:x.slice"),
            Some("/system.slice/x.slice".into())
        );
        assert_eq!(systemd_path("nope"), None);
        assert_eq!(systemd_path("bad:p:n"), None);
        assert_eq!(systemd_path("a--b.slice:p:n"), None);
    }

    #[test]
    fn targets() {
        assert_eq!(
            Target::resolve("c1", None, false).unwrap(),
            Target::UnderOwn("kiln-c1".into())
        );
        assert_eq!(
            Target::resolve("c1", Some("/k/c1"), false).unwrap(),
            Target::Absolute("/k/c1".into())
        );
        assert_eq!(
            Target::resolve("c1", Some("sub/c1"), false).unwrap(),
            Target::UnderOwn("sub/c1".into())
        );
        assert_eq!(
            Target::resolve("c1", None, true).unwrap(),
            Target::Absolute("/system.slice/kiln-c1.scope".into())
        );
        assert!(Target::resolve("c1", Some("../../etc"), false).is_err());
        assert!(Target::resolve("c1", Some("/a/../b"), false).is_err());
        assert!(Target::resolve("c1", Some("/a/b"), true).is_err());
        assert!(Target::resolve("a/b", None, false).is_err());
    }

    #[test]
    fn mountinfo_escapes_and_roots() {
        let m = mountinfo::parse_line(
            r"41 31 0:38 /sub /sys/fs/cgroup/my\040dir rw - cgroup2 cgroup2 rw",
        )
        .unwrap();
        assert_eq!(m.mountpoint, PathBuf::from("/sys/fs/cgroup/my dir"));
        assert_eq!(m.root, PathBuf::from("/sub"));
        let h = Hierarchy {
            mountpoint: "/mnt".into(),
            root: "/sub".into(),
            controllers: vec![],
            own: "/sub/x".into(),
        };
        assert_eq!(h.own_dir(), PathBuf::from("/mnt/x"));
        assert_eq!(h.dir(Path::new("/sub")), PathBuf::from("/mnt"));
        let t = Target::UnderOwn("kiln-a".into());
        let h2 = Hierarchy {
            own: "/svc/kiln-init".into(),
            ..h
        };
        assert_eq!(t.cgroup_in(&h2), PathBuf::from("/svc/kiln-a"));
    }
}
