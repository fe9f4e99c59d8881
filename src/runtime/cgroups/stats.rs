//! Usage statistics, shaped like the "data" of runc's `events --stats`
//! (cpu, memory, pids, blkio, hugetlb), read from v2 or v1 files per controller.

use super::fs::{read_keyed, read_opt, read_u64};
use super::{CgroupPaths, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time in nanoseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(default, skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    #[serde(default, skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// Memory plus swap, as on v1 (runc reports v2 the same way).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    /// Times the limit was hit and the OOM killer ran (v2 memory.events "oom").
    pub oom_events: u64,
    /// Processes killed by the OOM killer.
    pub oom_kill: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Reads every controller from the hierarchy that serves it.
pub fn collect(paths: &CgroupPaths) -> Result<Stats> {
    let v1 = |c: &str| paths.v1.get(c).map(|p| p.as_path());
    let v2 = paths.unified.as_deref();
    let mut s = Stats::default();
    match (v1("cpuacct"), v1("cpu"), v2) {
        (Some(acct), cpu, _) => {
            s.cpu.usage = v1_cpu_usage(acct)?;
            if let Some(cpu) = cpu {
                s.cpu.throttling = v1_throttling(cpu)?;
            }
        }
        (None, _, Some(d)) => s.cpu = v2_cpu(d)?,
        _ => {}
    }
    match (v1("memory"), v2) {
        (Some(d), _) => s.memory = v1_memory(d)?,
        (None, Some(d)) => s.memory = v2_memory(d)?,
        _ => {}
    }
    if let Some(d) = v1("pids").or(v2) {
        s.pids = Pids {
            current: read_u64(d, "pids.current")?.unwrap_or(0),
            limit: read_u64(d, "pids.max")?.unwrap_or(0),
        };
    }
    match (v1("blkio"), v2) {
        (Some(d), _) => s.blkio = v1_blkio(d)?,
        (None, Some(d)) => s.blkio = v2_io(d)?,
        _ => {}
    }
    match (v1("hugetlb"), v2) {
        (Some(d), _) => s.hugetlb = hugetlb(d, "usage_in_bytes", "max_usage_in_bytes", None)?,
        (None, Some(d)) => s.hugetlb = hugetlb(d, "current", "max", Some("events"))?,
        _ => {}
    }
    Ok(s)
}

fn v2_cpu(d: &Path) -> Result<Cpu> {
    let st = read_keyed(d, "cpu.stat")?;
    let us = |k: &str| st.get(k).copied().unwrap_or(0) * 1000;
    Ok(Cpu {
        usage: CpuUsage {
            total: us("usage_usec"),
            user: us("user_usec"),
            kernel: us("system_usec"),
            ..Default::default()
        },
        throttling: Throttling {
            periods: st.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: us("throttled_usec"),
        },
    })
}

fn v1_cpu_usage(d: &Path) -> Result<CpuUsage> {
    let list = |name: &str| -> Result<Vec<u64>> {
        let text = read_opt(d, name)?.unwrap_or_default();
        Ok(text
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect())
    };
    let (mut user, mut kernel) = (
        read_u64(d, "cpuacct.usage_user")?,
        read_u64(d, "cpuacct.usage_sys")?,
    );
    if user.is_none() || kernel.is_none() {
        // cpuacct.stat counts USER_HZ ticks.
        // SAFETY: sysconf has no memory effects.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
            .unwrap_or(100)
            .max(1);
        let st = read_keyed(d, "cpuacct.stat")?;
        let ns = |k: &str| st.get(k).map(|t| t * (1_000_000_000 / hz));
        user = ns("user");
        kernel = ns("system");
    }
    Ok(CpuUsage {
        total: read_u64(d, "cpuacct.usage")?.unwrap_or(0),
        percpu: list("cpuacct.usage_percpu")?,
        percpu_kernel: list("cpuacct.usage_percpu_sys")?,
        percpu_user: list("cpuacct.usage_percpu_user")?,
        kernel: kernel.unwrap_or(0),
        user: user.unwrap_or(0),
    })
}

fn v1_throttling(d: &Path) -> Result<Throttling> {
    let st = read_keyed(d, "cpu.stat")?;
    let get = |k: &str| st.get(k).copied().unwrap_or(0);
    Ok(Throttling {
        periods: get("nr_periods"),
        throttled_periods: get("nr_throttled"),
        throttled_time: get("throttled_time"),
    })
}

fn v2_memory(d: &Path) -> Result<Memory> {
    let raw = read_keyed(d, "memory.stat")?;
    let events = read_keyed(d, "memory.events")?;
    let limit = |f: &str| -> Result<u64> {
        Ok(match read_opt(d, f)? {
            Some(t) if t.trim() != "max" => t.trim().parse().unwrap_or(u64::MAX),
            _ => u64::MAX,
        })
    };
    let usage = MemoryEntry {
        limit: limit("memory.max")?,
        usage: read_u64(d, "memory.current")?.unwrap_or(0),
        max: read_u64(d, "memory.peak")?.unwrap_or(0),
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    let swap_usage = read_u64(d, "memory.swap.current")?.unwrap_or(0);
    let swap = MemoryEntry {
        limit: limit("memory.swap.max")?.saturating_add(usage.limit),
        usage: swap_usage + usage.usage,
        max: read_u64(d, "memory.swap.peak")?.map_or(0, |p| p + usage.max),
        failcnt: read_keyed(d, "memory.swap.events")?
            .get("max")
            .copied()
            .unwrap_or(0),
    };
    Ok(Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage,
        swap,
        oom_events: events.get("oom").copied().unwrap_or(0),
        oom_kill: events.get("oom_kill").copied().unwrap_or(0),
        raw,
        ..Default::default()
    })
}

fn v1_memory(d: &Path) -> Result<Memory> {
    let entry = |prefix: &str| -> Result<MemoryEntry> {
        let f = |s: &str| format!("{prefix}.{s}");
        Ok(MemoryEntry {
            limit: read_u64(d, &f("limit_in_bytes"))?.unwrap_or(0),
            usage: read_u64(d, &f("usage_in_bytes"))?.unwrap_or(0),
            max: read_u64(d, &f("max_usage_in_bytes"))?.unwrap_or(0),
            failcnt: read_u64(d, &f("failcnt"))?.unwrap_or(0),
        })
    };
    let raw = read_keyed(d, "memory.stat")?;
    let oom = read_keyed(d, "memory.oom_control")?;
    let cache = raw
        .get("total_cache")
        .or(raw.get("cache"))
        .copied()
        .unwrap_or(0);
    Ok(Memory {
        cache,
        usage: entry("memory")?,
        swap: entry("memory.memsw")?,
        kernel: entry("memory.kmem")?,
        kernel_tcp: entry("memory.kmem.tcp")?,
        oom_events: oom.get("oom_kill").copied().unwrap_or(0),
        oom_kill: oom.get("oom_kill").copied().unwrap_or(0),
        raw,
    })
}

fn v2_io(d: &Path) -> Result<Blkio> {
    let mut b = Blkio::default();
    let text = read_opt(d, "io.stat")?.unwrap_or_default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some((major, minor)) = parts.next().and_then(dev) else {
            continue;
        };
        for kv in parts {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut b.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                "dios" => (&mut b.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    Ok(b)
}

fn dev(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// v1 blkio: the first of the CFQ, BFQ and throttle files that has entries.
fn v1_blkio(d: &Path) -> Result<Blkio> {
    let first = |stem: &str| -> Result<Vec<BlkioEntry>> {
        for prefix in ["blkio.", "blkio.bfq.", "blkio.throttle."] {
            let entries = v1_blkio_file(d, &format!("{prefix}{stem}"))?;
            if !entries.is_empty() {
                return Ok(entries);
            }
        }
        Ok(Vec::new())
    };
    Ok(Blkio {
        io_service_bytes_recursive: first("io_service_bytes_recursive")?,
        io_serviced_recursive: first("io_serviced_recursive")?,
    })
}

/// "8:0 Read 4096" lines (a final "Total N" line is skipped).
fn v1_blkio_file(d: &Path, name: &str) -> Result<Vec<BlkioEntry>> {
    let text = read_opt(d, name)?.unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            let (major, minor) = dev(p.next()?)?;
            let op = p.next()?.to_string();
            let value = p.next()?.parse().ok()?;
            Some(BlkioEntry {
                major,
                minor,
                op,
                value,
            })
        })
        .collect())
}

/// Per page size: hugetlb.<size>.<usage>, .<max>, and the failure count
/// (v2: "max" in .events; v1: .failcnt).
fn hugetlb(
    d: &Path,
    usage: &str,
    max: &str,
    events: Option<&str>,
) -> Result<BTreeMap<String, Hugetlb>> {
    let mut out = BTreeMap::new();
    let suffix = format!(".{usage}");
    for entry in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(&suffix))
        else {
            continue;
        };
        if size.contains('.') {
            continue; // hugetlb.2MB.rsvd.current and the like
        }
        let f = |s: &str| format!("hugetlb.{size}.{s}");
        let failcnt = match events {
            Some(e) => read_keyed(d, &f(e))?.get("max").copied().unwrap_or(0),
            None => read_u64(d, &f("failcnt"))?.unwrap_or(0),
        };
        let stat = Hugetlb {
            usage: read_u64(d, &f(usage))?.unwrap_or(0),
            max: read_u64(d, &f(max))?.unwrap_or(0),
            failcnt,
        };
        out.insert(size.to_string(), stat);
    }
    Ok(out)
}
