//! Turning `kiln update` flags (or a resources JSON file) into OCI resources.

use crate::cli::runtime::UpdateArgs;
use crate::units::parse_size;
use anyhow::{Context, Result, anyhow};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
};
use std::io::Read;

fn size(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    parse_size(s).map(|v| v as i64).map_err(|e| anyhow!(e))
}

pub fn from_update_args(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut res: LinuxResources = match &a.resources {
        Some(p) => {
            let mut data = Vec::new();
            if p.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut data)?;
            } else {
                data = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            }
            serde_json::from_slice(&data)
                .with_context(|| format!("{}: not a linux.resources JSON", p.display()))?
        }
        None => LinuxResources::default(),
    };
    if a.memory.is_some() || a.memory_swap.is_some() || a.memory_reservation.is_some() {
        let mut m = LinuxMemoryBuilder::default();
        if let Some(v) = &a.memory {
            m = m.limit(size(v)?);
        }
        if let Some(v) = &a.memory_swap {
            m = m.swap(size(v)?);
        }
        if let Some(v) = &a.memory_reservation {
            m = m.reservation(size(v)?);
        }
        res.set_memory(Some(m.build()?));
    }
    if a.cpu_quota.is_some()
        || a.cpu_period.is_some()
        || a.cpu_shares.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some()
    {
        let mut c = LinuxCpuBuilder::default();
        if let Some(v) = a.cpu_quota {
            c = c.quota(v);
        }
        if let Some(v) = a.cpu_period {
            c = c.period(v);
        }
        if let Some(v) = a.cpu_shares {
            c = c.shares(v);
        }
        if let Some(v) = &a.cpuset_cpus {
            c = c.cpus(v.clone());
        }
        if let Some(v) = &a.cpuset_mems {
            c = c.mems(v.clone());
        }
        res.set_cpu(Some(c.build()?));
    }
    if let Some(v) = a.pids_limit {
        res.set_pids(Some(LinuxPidsBuilder::default().limit(v).build()?));
    }
    if let Some(w) = a.blkio_weight {
        res.set_block_io(Some(LinuxBlockIoBuilder::default().weight(w).build()?));
    }
    Ok(res)
}

/// `5s`, `500ms`, `2m` or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let bad = || anyhow!("invalid duration {s:?}");
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    Ok(std::time::Duration::from_secs_f64(v * mult))
}
