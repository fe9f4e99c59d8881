//! Privileges of the container process: rlimits, oom_score_adj, the user and
//! groups it runs as, capabilities (all five sets), and no_new_privs.

use super::{Context, Error, Result};
use caps::{CapSet, Capability as Cap, CapsHashSet};
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use oci_spec::runtime::{Capability, LinuxCapabilities, PosixRlimit, User};
use std::collections::HashSet;

/// The OCI name of a capability (`CAP_SYS_ADMIN`).
pub fn cap_name(c: &Capability) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn to_caps(set: &Option<HashSet<Capability>>) -> CapsHashSet {
    set.iter()
        .flatten()
        // Capabilities this kernel or crate does not know are skipped, as runc does.
        .filter_map(|c| cap_name(c).parse::<Cap>().ok())
        .filter(|c| caps::all().contains(c))
        .collect()
}

/// Applies `process.rlimits`.
pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let resource =
            rlimit_number(&name).ok_or_else(|| Error::Config(format!("unknown rlimit {name}")))?;
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: `lim` is a valid rlimit living for the call; `resource` is a known RLIMIT_* number.
        let rc = unsafe { libc::setrlimit(resource as _, &lim) };
        nix::errno::Errno::result(rc).sys(|| format!("set {name} to {}:{}", r.soft(), r.hard()))?;
    }
    Ok(())
}

fn rlimit_number(name: &str) -> Option<u32> {
    const NAMES: [&str; 16] = [
        "RLIMIT_CPU",
        "RLIMIT_FSIZE",
        "RLIMIT_DATA",
        "RLIMIT_STACK",
        "RLIMIT_CORE",
        "RLIMIT_RSS",
        "RLIMIT_NPROC",
        "RLIMIT_NOFILE",
        "RLIMIT_MEMLOCK",
        "RLIMIT_AS",
        "RLIMIT_LOCKS",
        "RLIMIT_SIGPENDING",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

pub fn set_oom_score_adj(v: i32) -> Result<()> {
    let p = std::path::Path::new("/proc/self/oom_score_adj");
    std::fs::write(p, v.to_string()).ctx("write", p)
}

/// process.ioPriority through ioprio_set(2), for this process.
pub fn set_io_priority(io: &oci_spec::runtime::LinuxIOPriority) -> Result<()> {
    use oci_spec::runtime::IOPriorityClass as C;
    let class: i64 = match io.class() {
        C::IoprioClassRt => 1,
        C::IoprioClassBe => 2,
        C::IoprioClassIdle => 3,
    };
    let prio = io.priority();
    if !(0..8).contains(&prio) {
        return Err(Error::Config(format!(
            "ioPriority.priority {prio}: must be 0 to 7"
        )));
    }
    // IOPRIO_WHO_PROCESS (1), pid 0 (this process), IOPRIO_PRIO_VALUE(class, prio).
    // SAFETY: ioprio_set takes plain integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, (class << 13) | prio) };
    nix::errno::Errno::result(rc)
        .map(drop)
        .sys(|| format!("set io priority {:?} {prio}", io.class()))
}

/// process.scheduler through sched_setattr(2), for this process.
pub fn set_scheduler(sch: &oci_spec::runtime::Scheduler) -> Result<()> {
    /// The kernel's `struct sched_attr` (version 0 plus the deadline fields).
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let policy = name(serde_json::to_value(sch.policy()));
    let policy_number = match policy.as_str() {
        "SCHED_OTHER" => 0,
        "SCHED_FIFO" => 1,
        "SCHED_RR" => 2,
        "SCHED_BATCH" => 3,
        "SCHED_IDLE" => 5,
        "SCHED_DEADLINE" => 6,
        other => {
            return Err(Error::Config(format!(
                "scheduler policy {other:?} is not supported"
            )));
        }
    };
    let mut flags = 0u64;
    for f in sch.flags().iter().flatten() {
        flags |= match name(serde_json::to_value(f)).as_str() {
            "SCHED_FLAG_RESET_ON_FORK" => 0x01,
            "SCHED_FLAG_RECLAIM" => 0x02,
            "SCHED_FLAG_DL_OVERRUN" => 0x04,
            "SCHED_FLAG_KEEP_POLICY" => 0x08,
            "SCHED_FLAG_KEEP_PARAMS" => 0x10,
            "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
            "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
            other => {
                return Err(Error::Config(format!(
                    "scheduler flag {other:?} is not supported"
                )));
            }
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy_number,
        flags,
        nice: sch.nice().unwrap_or(0),
        priority: sch.priority().unwrap_or(0).max(0) as u32,
        runtime: sch.runtime().unwrap_or(0),
        deadline: sch.deadline().unwrap_or(0),
        period: sch.period().unwrap_or(0),
    };
    // SAFETY: sched_setattr reads `attr`, a valid sched_attr of the size it
    // states, for this process (pid 0); flags argument 0.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    nix::errno::Errno::result(rc)
        .map(drop)
        .sys(|| format!("set scheduler {policy}"))
}

/// linux.personality (its domain; like runc, no flags).
pub fn set_personality(domain: oci_spec::runtime::LinuxPersonalityDomain) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    let persona: libc::c_ulong = match domain {
        D::PerLinux => 0x0000,   // PER_LINUX
        D::PerLinux32 => 0x0008, // PER_LINUX32
    };
    // SAFETY: personality takes a plain integer.
    let rc = unsafe { libc::personality(persona) };
    nix::errno::Errno::result(rc)
        .map(drop)
        .sys(|| format!("set personality {domain}"))
}

pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes plain integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    nix::errno::Errno::result(rc)
        .map(drop)
        .sys(|| "set no_new_privs".into())
}

fn keep_caps(on: bool) -> Result<()> {
    // SAFETY: prctl with PR_SET_KEEPCAPS takes plain integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) };
    nix::errno::Errno::result(rc)
        .map(drop)
        .sys(|| "set keepcaps".into())
}

/// Becomes `user` (uid, gid, additional gids), keeping the permitted
/// capabilities so `apply_caps` can then set exactly what the config says.
/// `setgroups_allowed` is false in a user namespace whose setgroups is denied.
pub fn switch_user(user: &User, setgroups_allowed: bool) -> Result<()> {
    keep_caps(true)?;
    if setgroups_allowed {
        let gids: Vec<Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        setgroups(&gids).sys(|| format!("set additional groups {:?}", user.additional_gids()))?;
    }
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    setresgid(gid, gid, gid).sys(|| format!("set gid {gid}"))?;
    setresuid(uid, uid, uid).sys(|| format!("set uid {uid}"))?;
    keep_caps(false)
}

fn caps_err(set: &'static str) -> impl Fn(caps::errors::CapsError) -> Error {
    move |e| Error::Config(format!("set {set} capabilities: {e}"))
}

/// Shrinks the bounding set to `c.bounding` (needs CAP_SETPCAP: call it
/// before switching to the container's user).
pub fn drop_bounding(c: &LinuxCapabilities) -> Result<()> {
    let bounding = to_caps(c.bounding());
    for cap in caps::all() {
        if !bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(caps_err("bounding"))?;
        }
    }
    Ok(())
}

/// Sets the permitted, effective, inheritable and ambient sets.
pub fn apply_caps(c: &LinuxCapabilities) -> Result<()> {
    let err = caps_err;
    let permitted = to_caps(c.permitted());
    let effective = to_caps(c.effective());
    let inheritable = to_caps(c.inheritable());
    // Effective must stay within permitted at every step: shrink it first.
    caps::set(
        None,
        CapSet::Effective,
        &effective.intersection(&permitted).copied().collect(),
    )
    .map_err(err("effective"))?;
    caps::set(None, CapSet::Inheritable, &inheritable).map_err(err("inheritable"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(err("permitted"))?;
    caps::set(None, CapSet::Effective, &effective).map_err(err("effective"))?;
    caps::clear(None, CapSet::Ambient).map_err(err("ambient"))?;
    // The kernel allows an ambient capability only when it is both permitted
    // and inheritable; others are skipped, as runc does (`runc spec` itself
    // lists ambient capabilities without inheritable ones).
    for cap in to_caps(c.ambient()) {
        if permitted.contains(&cap) && inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap).map_err(err("ambient"))?;
        }
    }
    Ok(())
}

/// podman's default capability set, for `kiln run`.
pub const DEFAULT_CAPS: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(cap_name(&Capability::SysAdmin), "CAP_SYS_ADMIN");
        assert_eq!(rlimit_number("RLIMIT_NOFILE"), Some(libc::RLIMIT_NOFILE));
        let set: Option<HashSet<Capability>> =
            Some([Capability::Chown, Capability::NetBindService].into());
        assert_eq!(to_caps(&set).len(), 2);
    }
}
