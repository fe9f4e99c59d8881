//! cgroup v1: one directory per hierarchy; memory, cpu, cpuset, blkio,
//! hugetlb, net_cls/net_prio, devices and the freezer through their v1 files.

use super::devices::Rule;
use super::fs::{read_opt, read_u64, write};
use super::{Error, Hierarchy, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Creates `cgroup` in hierarchy `h` (and any missing parents), recording
/// what it made. New cpuset cgroups start empty and must be filled from the
/// parent before a task can join, so that is done on the way down.
pub fn make_path(h: &Hierarchy, cgroup: &Path, created: &mut Vec<PathBuf>) -> Result<PathBuf> {
    let leaf = h.dir(cgroup);
    let rel = leaf.strip_prefix(&h.mountpoint).unwrap_or(Path::new(""));
    let mut dir = h.mountpoint.clone();
    for part in rel.components() {
        let parent = dir.clone();
        dir.push(part);
        if super::fs::mkdir(&dir)? {
            created.push(dir.clone());
        }
        if h.has("cpuset") {
            copy_cpuset_from_parent(&parent, &dir)?;
        }
    }
    Ok(leaf)
}

fn copy_cpuset_from_parent(parent: &Path, dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mine = read_opt(dir, file)?.unwrap_or_default();
        if mine.trim().is_empty() {
            let theirs = read_opt(parent, file)?.unwrap_or_default();
            if !theirs.trim().is_empty() {
                write(dir, file, theirs.trim())?;
            }
        }
    }
    Ok(())
}

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

/// memory: limit, memory+swap (ordered so the kernel's limit <= memsw check
/// holds both before and after), soft limit, OOM killer, swappiness.
pub fn memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let limit = m.limit().filter(|l| *l != 0);
    let mut swap = m.swap().filter(|s| *s != 0);
    if limit == Some(-1) && swap.is_none() {
        swap = Some(-1); // "unlimited memory" means unlimited swap too, as on v1 runc
    }
    // Without swap accounting there is no memsw file: "unlimited" or "same as
    // memory" swap needs no write, anything else cannot be honoured.
    let swap = match swap {
        Some(s) if !dir.join(MEMSW).exists() => {
            if s == -1 || Some(s) == limit {
                None
            } else {
                return Err(Error::resource(
                    "memory.swap",
                    format!(
                        "swap accounting is off ({} is missing)",
                        dir.join(MEMSW).display()
                    ),
                ));
            }
        }
        s => s,
    };
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let cur = read_u64(dir, LIMIT)?.unwrap_or(u64::MAX);
            if s == -1 || cur < s as u64 {
                write(dir, MEMSW, &s.to_string())?;
                write(dir, LIMIT, &l.to_string())?;
            } else {
                write(dir, LIMIT, &l.to_string())?;
                write(dir, MEMSW, &s.to_string())?;
            }
        }
        (Some(l), None) => write(dir, LIMIT, &l.to_string())?,
        (None, Some(s)) => write(dir, MEMSW, &s.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(d) = m.disable_oom_killer() {
        write(dir, "memory.oom_control", if d { "1" } else { "0" })?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(Error::resource(
                "memory.swappiness",
                format!("{s} is above 100"),
            ));
        }
        write(dir, "memory.swappiness", &s.to_string())?;
    }
    Ok(())
}

/// cpu: shares, CFS period then quota, burst, realtime period then runtime, idle.
pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        write(dir, "cpu.shares", &s.to_string())?;
    }
    if let Some(p) = c.period().filter(|p| *p != 0) {
        write(dir, "cpu.cfs_period_us", &p.to_string())?;
    }
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        write(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(b) = c.burst() {
        write(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        write(dir, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        write(dir, "cpu.rt_runtime_us", &r.to_string())?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

/// blkio: weights (the CFQ files, else BFQ's) and throttles, one device per write.
pub fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let bfq = !dir.join("blkio.weight").exists() && dir.join("blkio.bfq.weight").exists();
    let (weight, weight_device) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(w) = b.weight() {
        write(dir, weight, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight() {
        write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            write(
                dir,
                weight_device,
                &format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
        if let Some(w) = d.leaf_weight() {
            write(
                dir,
                "blkio.leaf_weight_device",
                &format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for t in list.iter().flatten() {
            write(
                dir,
                file,
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// hugetlb: hugetlb.<size>.limit_in_bytes.
pub fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        let size = super::v2::page_size(l.page_size())?;
        write(
            dir,
            &format!("hugetlb.{size}.limit_in_bytes"),
            &l.limit().to_string(),
        )?;
    }
    Ok(())
}

/// net_cls.classid and net_prio.ifpriomap (v1 only; v2 has no equivalent).
pub fn network(v1: &BTreeMap<String, PathBuf>, n: &LinuxNetwork) -> Result<()> {
    let dir = |c: &str| {
        v1.get(c)
            .ok_or_else(|| Error::resource(c, "no such cgroup controller on this host"))
    };
    if let Some(id) = n.class_id() {
        write(dir("net_cls")?, "net_cls.classid", &id.to_string())?;
    }
    for p in n.priorities().iter().flatten() {
        write(
            dir("net_prio")?,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

/// devices: each rule to devices.allow or devices.deny, in order.
pub fn devices(dir: &Path, rules: &[Rule]) -> Result<()> {
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(dir, file, &r.v1_line())?;
    }
    Ok(())
}

const FREEZER_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes FROZEN/THAWED to freezer.state until the state reads back so; a
/// freeze that does not complete in time is undone.
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<()> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let deadline = Instant::now() + FREEZER_TIMEOUT;
    let mut delay = Duration::from_micros(100);
    loop {
        // Re-writing is how a freeze stuck in FREEZING gets another go.
        write(dir, "freezer.state", want)?;
        if read_opt(dir, "freezer.state")?.unwrap_or_default().trim() == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if frozen {
                let _ = write(dir, "freezer.state", "THAWED");
            }
            return Err(Error::Timeout {
                path: dir.join("freezer.state"),
                what: if frozen { "freeze" } else { "thaw" },
                timeout: FREEZER_TIMEOUT,
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}

pub fn is_frozen(dir: &Path) -> Result<bool> {
    Ok(read_opt(dir, "freezer.state")?.is_some_and(|s| s.trim() == "FROZEN"))
}
