//! cgroup v2 (unified): creating the cgroup and enabling controllers in every
//! ancestor's cgroup.subtree_control; memory, cpu, cpuset, io, hugetlb, rdma
//! and unified key/value files; the cgroup.freeze freezer.

use super::fs::{mkdir, procs, read_keyed, read_opt, write};
use super::layout::INIT_LEAF;
use super::{Error, Hierarchy, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxRdma};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SUBTREE: &str = "cgroup.subtree_control";

/// Controllers enabled when the host offers them even if no limit needs them,
/// so `kiln update` and `kiln events --stats` work later. Failing to enable
/// one of these is not an error.
const BASELINE: [&str; 4] = ["cpu", "io", "memory", "pids"];

/// Creates the container's cgroup `leaf` in `h` (and missing parents,
/// recorded in `created`), then enables `required` (and the baseline) in each
/// ancestor from the hierarchy root down.
pub fn make_path(
    h: &Hierarchy,
    leaf: &Path,
    required: &[String],
    created: &mut Vec<PathBuf>,
) -> Result<()> {
    let rel = leaf.strip_prefix(&h.mountpoint).unwrap_or(Path::new(""));
    let mut chain = vec![h.mountpoint.clone()];
    let mut dir = h.mountpoint.clone();
    for part in rel.components() {
        dir.push(part);
        if mkdir(&dir)? {
            created.push(dir.clone());
        }
        chain.push(dir.clone());
    }
    chain.pop(); // the leaf itself keeps an empty subtree_control
    enable_chain(&chain, required, Some(&h.own_dir()))
}

/// For `kiln update`: enables `required` above an existing `leaf`.
pub fn enable_above(leaf: &Path, required: &[String]) -> Result<()> {
    if required.is_empty() {
        return Ok(());
    }
    enable_chain(&ancestors(leaf), required, None)
}

/// The cgroups above `leaf`, top first, as far up as cgroupfs goes.
fn ancestors(leaf: &Path) -> Vec<PathBuf> {
    let mut chain: Vec<PathBuf> = leaf
        .ancestors()
        .skip(1)
        .take_while(|d| d.join("cgroup.controllers").exists())
        .map(Path::to_path_buf)
        .collect();
    chain.reverse();
    chain
}

/// What the hierarchy above `leaf` offers (its top cgroup's controllers).
pub fn available_above(leaf: &Path) -> Result<Vec<String>> {
    match ancestors(leaf).first() {
        Some(top) => Ok(list(
            &read_opt(top, "cgroup.controllers")?.unwrap_or_default(),
        )),
        None => Ok(Vec::new()),
    }
}

fn list(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|c| c.trim_start_matches('+').to_string())
        .collect()
}

/// Enables controllers top-down through `chain`, skipping ones already on.
/// `own` is the caller's own cgroup, which the caller may leave for a leaf
/// below it (see `enable`).
fn enable_chain(chain: &[PathBuf], required: &[String], own: Option<&Path>) -> Result<()> {
    let mut offered: Option<Vec<String>> = None;
    for dir in chain {
        // A fresh cgroup offers what its parent enabled (fake trees lack the file).
        let available = match read_opt(dir, "cgroup.controllers")? {
            Some(t) => list(&t),
            None => offered.clone().unwrap_or_default(),
        };
        let mut enabled = list(&read_opt(dir, SUBTREE)?.unwrap_or_default());
        let missing: Vec<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|c| !enabled.iter().any(|e| e == c))
            .collect();
        if let Some(c) = missing.iter().find(|c| !available.iter().any(|a| a == *c)) {
            return Err(Error::resource(
                *c,
                format!(
                    "controller not available in {}",
                    dir.join("cgroup.controllers").display()
                ),
            ));
        }
        let optional: Vec<&str> = BASELINE
            .into_iter()
            .filter(|c| {
                available.iter().any(|a| a == c)
                    && !enabled.iter().any(|e| e == c)
                    && !missing.contains(c)
            })
            .collect();
        enabled.extend(enable(dir, &missing, &optional, own)?);
        offered = Some(enabled);
    }
    Ok(())
}

/// Enables `required` and, where possible, `optional` controllers in `dir`;
/// returns those now on.
///
/// A cgroup holding processes (the root aside) gets none: the "no internal
/// processes" rule refuses domain controllers there, and the threaded ones
/// (cpu, cpuset, pids) it would accept turn it into a thread root whose child
/// cgroups can take no processes (EOPNOTSUPP) — someone else's cgroup broken.
/// When `dir` is the caller's own cgroup and the caller is alone in it, the
/// caller moves into the leaf `dir/kiln-init` first; otherwise required
/// controllers are an error and optional ones are skipped.
fn enable(
    dir: &Path,
    required: &[&str],
    optional: &[&str],
    own: Option<&Path>,
) -> Result<Vec<String>> {
    if required.is_empty() && optional.is_empty() {
        return Ok(Vec::new());
    }
    // The root cgroup, which may hold processes, is the one without cgroup.type.
    if dir.join("cgroup.type").exists() && !procs(dir)?.is_empty() {
        if required.is_empty() {
            return Ok(Vec::new());
        }
        if own != Some(dir) {
            return Err(internal_processes(dir));
        }
        move_self_to_leaf(dir)?;
    }
    let want: Vec<&str> = required.iter().chain(optional).copied().collect();
    let line: Vec<String> = want.iter().map(|c| format!("+{c}")).collect();
    if write(dir, SUBTREE, &line.join(" ")).is_ok() {
        return Ok(want.iter().map(|c| c.to_string()).collect());
    }
    // One at a time, so an optional one the kernel refuses costs nothing.
    let mut on = Vec::new();
    for c in want {
        match write(dir, SUBTREE, &format!("+{c}")) {
            Ok(()) => on.push(c.to_string()),
            Err(e) if required.contains(&c) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(on)
}

fn internal_processes(dir: &Path) -> Error {
    Error::resource(
        dir.join(SUBTREE).display(),
        "cgroup v2 allows no controllers in a cgroup holding processes, and other processes \
         are here; use an absolute linux.cgroupsPath or run kiln in its own (delegated) cgroup",
    )
}

/// The "no internal processes" rule forbids controllers in a cgroup that has
/// processes. When the caller is the only one in its own cgroup `dir`, it
/// moves itself into the leaf `dir/kiln-init`; it never moves anyone else.
fn move_self_to_leaf(dir: &Path) -> Result<()> {
    let me = std::process::id() as i32;
    if procs(dir)?.iter().any(|p| *p != me) {
        return Err(internal_processes(dir));
    }
    let leaf = dir.join(INIT_LEAF);
    mkdir(&leaf)?;
    write(&leaf, "cgroup.procs", &me.to_string())
}

fn max_or(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

/// OCI swap is memory+swap; memory.swap.max is swap alone (runc's conversion).
pub fn swap_max(swap: i64, limit: i64) -> Result<i64> {
    let bad = |r: &str| Error::resource("memory.swap", r);
    if limit == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if limit == 0 || limit == -1 {
        return Err(bad("a swap limit needs a memory limit"));
    }
    if limit < 0 {
        return Err(bad(&format!("invalid memory limit {limit}")));
    }
    if swap < limit {
        return Err(bad(&format!(
            "memory+swap {swap} is below the memory limit {limit}"
        )));
    }
    Ok(swap - limit)
}

/// memory: memory.swap.max, memory.max, memory.low (from the reservation).
/// swappiness and the OOM killer switch have no v2 files and are ignored.
pub fn memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let limit = m.limit().unwrap_or(0);
    let swap = swap_max(m.swap().unwrap_or(0), limit)?;
    if swap != 0 {
        let value = max_or(swap);
        // Without swap accounting there is no file; "max" or "0" then mean nothing.
        if dir.join("memory.swap.max").exists() || swap != -1 {
            write(dir, "memory.swap.max", &value)?;
        }
    }
    if limit != 0 {
        write(dir, "memory.max", &max_or(limit))?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        write(dir, "memory.low", &max_or(r))?;
    }
    Ok(())
}

/// OCI cpu shares (2..262144) → cpu.weight (1..10000), as runc and crun do.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// cpu: cpu.weight, cpu.max ("quota period", "max" when unlimited),
/// cpu.max.burst, cpu.idle. Realtime limits have no v2 files.
pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(Error::resource(
            "cpu.realtime",
            "cgroup v2 has no realtime CPU limits",
        ));
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string())?;
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    let (quota, period) = (c.quota().unwrap_or(0), c.period().unwrap_or(0));
    if quota != 0 || period != 0 {
        let mut v = if quota > 0 {
            quota.to_string()
        } else {
            "max".into()
        };
        if period != 0 {
            v.push_str(&format!(" {period}"));
        }
        write(dir, "cpu.max", &v)?;
    }
    if let Some(b) = c.burst() {
        write(dir, "cpu.max.burst", &b.to_string())?;
    }
    Ok(())
}

/// cpuset.cpus and cpuset.mems (the same files on v1).
pub fn cpuset(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// blkio weight (10..1000) → io.weight (1..10000), as runc does.
pub fn blkio_weight_to_io(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// io: io.weight (or io.bfq.weight in blkio units), per-device weights, and
/// io.max with rbps/wbps/riops/wiops per device.
pub fn io(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let bfq = dir.join("io.bfq.weight").exists();
    let (file, conv): (&str, fn(u16) -> u64) = if bfq {
        ("io.bfq.weight", u64::from)
    } else {
        ("io.weight", blkio_weight_to_io)
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write(dir, file, &conv(w).to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight().filter(|w| *w != 0) {
            write(
                dir,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), conv(w)),
            )?;
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for t in list.iter().flatten() {
            let rate = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            write(
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", t.major(), t.minor()),
            )?;
        }
    }
    Ok(())
}

/// A hugepage size as the kernel names it in file names ("2MB", "1GB").
pub fn page_size(s: &str) -> Result<&str> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::resource(
            "hugepageLimits",
            format!("bad page size {s:?}"),
        ));
    }
    Ok(s)
}

/// hugetlb: hugetlb.<size>.max, and .rsvd.max where the kernel has it.
pub fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        let size = page_size(l.page_size())?;
        let value = max_or(l.limit());
        write(dir, &format!("hugetlb.{size}.max"), &value)?;
        let rsvd = format!("hugetlb.{size}.rsvd.max");
        if dir.join(&rsvd).exists() {
            write(dir, &rsvd, &value)?;
        }
    }
    Ok(())
}

/// rdma.max: "<device> hca_handle=N hca_object=M" (the same on v1).
pub fn rdma(dir: &Path, rdma: &HashMap<String, LinuxRdma>) -> Result<()> {
    let sorted: BTreeMap<_, _> = rdma.iter().collect();
    for (dev, r) in sorted {
        let n = |v: Option<u32>| v.map_or("max".to_string(), |v| v.to_string());
        let line = format!(
            "{dev} hca_handle={} hca_object={}",
            n(r.hca_handles()),
            n(r.hca_objects())
        );
        write(dir, "rdma.max", &line)?;
    }
    Ok(())
}

/// Files a unified key may not name: they move processes or change the tree.
const UNIFIED_FORBIDDEN: [&str; 6] = [
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.subtree_control",
    "cgroup.kill",
    "cgroup.type",
    "cgroup.freeze",
];

/// The controller a linux.resources.unified key belongs to ("memory" for
/// "memory.high"); rejects names that are not plain interface files.
pub fn unified_controller(key: &str) -> Result<&str> {
    let bad = || {
        Error::resource(
            format!("linux.resources.unified {key:?}"),
            "not a cgroup interface file kiln may write",
        )
    };
    let (controller, rest) = key.split_once('.').ok_or_else(bad)?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    if !plain(controller) || !plain(rest) || key.contains("..") || UNIFIED_FORBIDDEN.contains(&key)
    {
        return Err(bad());
    }
    Ok(controller)
}

/// Writes linux.resources.unified verbatim, in key order.
pub fn unified(dir: &Path, map: &HashMap<String, String>) -> Result<()> {
    let sorted: BTreeMap<_, _> = map.iter().collect();
    for (key, value) in sorted {
        unified_controller(key)?;
        write(dir, key, value)?;
    }
    Ok(())
}

const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes cgroup.freeze and waits for cgroup.events to say "frozen 1" (or 0).
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<()> {
    let want = u64::from(frozen);
    write(dir, "cgroup.freeze", &want.to_string())?;
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    let mut delay = Duration::from_micros(100);
    loop {
        match read_keyed(dir, "cgroup.events")?.get("frozen") {
            None => return Ok(()), // no cgroup.events: nothing to wait on
            Some(v) if *v == want => return Ok(()),
            Some(_) => {}
        }
        if Instant::now() >= deadline {
            if frozen {
                let _ = write(dir, "cgroup.freeze", "0");
            }
            return Err(Error::Timeout {
                path: dir.join("cgroup.events"),
                what: if frozen { "freeze" } else { "thaw" },
                timeout: FREEZE_TIMEOUT,
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}

pub fn is_frozen(dir: &Path) -> Result<bool> {
    Ok(read_opt(dir, "cgroup.freeze")?.is_some_and(|s| s.trim() == "1"))
}
