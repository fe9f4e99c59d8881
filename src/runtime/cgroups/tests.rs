//! Unit tests on fake cgroup trees (temp dirs of plain files), for a v2-only
//! host and for this dev host's hybrid layout; no root needed.

use super::*;
use oci_spec::runtime::LinuxResources;
use serde_json::json;
use std::fs;
use tempfile::TempDir;

/// This dev host's /proc/self/mountinfo (the lines on the way to the cgroup
/// mounts) and /proc/self/cgroup. As there, "/" is listed after mounts below it.
const HYBRID_MOUNTINFO: &str = "\
23 22 0:22 / /sys rw,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
";
const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/abc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

const V2_MOUNTINFO: &str = "\
25 20 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
const V2_CGROUP: &str = "0::/system.slice/kiln.service\n";

fn put(dir: &Path, name: &str, value: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), value).unwrap();
}

fn get(path: impl AsRef<Path>) -> String {
    let p = path.as_ref();
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// A v2-only host: the service cgroup has cpu, memory and pids enabled above it.
fn v2_host() -> (TempDir, Layout, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let cg = tmp.path().join("sys/fs/cgroup");
    put(
        &cg,
        "cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    put(&cg, "cgroup.subtree_control", "cpu memory pids\n");
    put(
        &cg.join("system.slice"),
        "cgroup.controllers",
        "cpu memory pids\n",
    );
    put(
        &cg.join("system.slice"),
        "cgroup.subtree_control",
        "memory\n",
    );
    let own = cg.join("system.slice/kiln.service");
    put(&own, "cgroup.procs", "");
    let layout = Layout::parse(tmp.path(), V2_MOUNTINFO, V2_CGROUP).unwrap();
    (tmp, layout, cg)
}

/// This host's hybrid layout with v1 root files and an unused cgroup2 mount
/// that offers only hugetlb.
fn hybrid_host() -> (TempDir, Layout, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let cg = tmp.path().join("sys/fs/cgroup");
    for c in [
        "cpu", "cpuacct", "devices", "freezer", "blkio", "pids", "systemd",
    ] {
        put(&cg.join(c), "cgroup.procs", "");
    }
    put(&cg.join("cpuset"), "cpuset.cpus", "0-1\n");
    put(&cg.join("cpuset"), "cpuset.mems", "0\n");
    put(&cg.join("memory/process_api/abc"), "cgroup.procs", "1\n");
    put(&cg.join("unified"), "cgroup.controllers", "hugetlb\n");
    put(&cg.join("unified"), "cgroup.subtree_control", "");
    let layout = Layout::parse(tmp.path(), HYBRID_MOUNTINFO, HYBRID_CGROUP).unwrap();
    (tmp, layout, cg)
}

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn limits() -> LinuxResources {
    res(json!({
        "memory": {"limit": 268435456, "swap": 536870912, "reservation": 134217728},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
        "pids": {"limit": 20},
    }))
}

#[test]
fn layout_of_this_host() {
    let (_t, layout, cg) = hybrid_host();
    let u = layout.unified.as_ref().unwrap();
    assert_eq!(u.mountpoint, cg.join("unified"));
    assert_eq!(u.controllers, vec!["hugetlb"]);
    assert_eq!(layout.v1.len(), 9);
    let mem = layout.v1_for("memory").unwrap();
    assert_eq!(mem.own_dir(), cg.join("memory/process_api/abc"));
    let s = summary_of(&layout);
    assert_eq!(s.mode, "hybrid");
    assert_eq!(s.controllers["memory"], "v1");
    assert_eq!(s.controllers["hugetlb"], "v2");
    assert!(!s.controllers.contains_key("name=systemd"));
}

/// Regression: in a private mount namespace where cgroup2 was mounted over a
/// hybrid host's /sys/fs/cgroup, mountinfo still lists the hidden v1 mounts
/// (and the hidden cgroup2 at /sys/fs/cgroup/unified); discovery picked them
/// and `kiln run` failed with "create cgroup /sys/fs/cgroup/cpu/kiln-x: No such file".
#[test]
fn mounts_shadowed_by_a_later_mount_are_ignored() {
    let tmp = TempDir::new().unwrap();
    let cg = tmp.path().join("sys/fs/cgroup");
    put(&cg, "cgroup.controllers", "cpu memory pids\n");
    let mountinfo = format!(
        "{HYBRID_MOUNTINFO}\
         900 31 0:99 / /sys/fs/cgroup rw,relatime - cgroup2 none rw\n\
         901 23 0:98 / /sys/kernel/tracing rw,relatime - tracefs tracefs rw\n"
    );
    let layout = Layout::parse(tmp.path(), &mountinfo, HYBRID_CGROUP).unwrap();
    assert!(layout.v1.is_empty(), "hidden v1 mounts used: {layout:?}");
    let u = layout.unified.as_ref().unwrap();
    assert_eq!(u.mountpoint, cg);
    assert_eq!(u.controllers, vec!["cpu", "memory", "pids"]);
    assert_eq!(summary_of(&layout).mode, "v2");

    // A mount over one v1 hierarchy hides that one only; one stacked below
    // (a child of the hidden tmpfs, mounted on it) or elsewhere hides nothing.
    let mountinfo = format!(
        "{HYBRID_MOUNTINFO}\
         902 35 0:97 / /sys/fs/cgroup/memory rw,relatime - tmpfs tmpfs rw\n\
         903 33 0:96 / /sys/fs/cgroup/cpuacct/sub rw,relatime - tmpfs tmpfs rw\n"
    );
    let layout = Layout::parse(tmp.path(), &mountinfo, HYBRID_CGROUP).unwrap();
    assert!(layout.v1_for("memory").is_none());
    assert!(layout.v1_for("cpuacct").is_some());
    assert_eq!(layout.v1.len(), 8);
    assert!(layout.unified.is_some());
}

#[test]
fn v2_limits_land_in_the_right_files() {
    let (_t, layout, cg) = v2_host();
    let c = Cgroup::create_with(&layout, "c1", None, Some(&limits()), false).unwrap();
    let dir = cg.join("system.slice/kiln.service/kiln-c1");
    assert_eq!(c.paths().unified.as_deref(), Some(dir.as_path()));
    assert!(c.paths().v1.is_empty());
    assert_eq!(get(dir.join("memory.max")), "268435456");
    assert_eq!(
        get(dir.join("memory.swap.max")),
        "268435456",
        "swap = memory+swap - memory"
    );
    assert_eq!(get(dir.join("memory.low")), "134217728");
    assert_eq!(get(dir.join("cpu.max")), "50000 100000");
    assert_eq!(get(dir.join("cpu.weight")), "39");
    assert_eq!(get(dir.join("pids.max")), "20");
}

#[test]
fn v2_enables_controllers_top_down_skipping_enabled_ones() {
    let (_t, layout, cg) = v2_host();
    let r = res(json!({"memory": {"limit": 1048576}, "cpu": {"cpus": "0-1", "mems": "0"}}));
    // system.slice does not offer cpuset: an error naming it, and nothing left behind.
    let err = Cgroup::create_with(&layout, "c2", None, Some(&r), false).unwrap_err();
    assert!(err.to_string().contains("cpuset"), "{err}");
    assert!(
        !cg.join("system.slice/kiln.service/kiln-c2").exists(),
        "cleaned up"
    );
    // Root had cpu memory pids: only cpuset (needed) and io (baseline) were written.
    assert_eq!(get(cg.join("cgroup.subtree_control")), "+cpuset +io");
    // Once system.slice offers cpuset too, the chain is enabled down to the leaf's parent.
    put(
        &cg.join("system.slice"),
        "cgroup.controllers",
        "cpuset cpu io memory pids\n",
    );
    Cgroup::create_with(&layout, "c3", None, Some(&r), false).unwrap();
    assert_eq!(
        get(cg.join("system.slice/cgroup.subtree_control")),
        "+cpuset +cpu +io +pids"
    );
    assert_eq!(
        get(cg.join("system.slice/kiln.service/cgroup.subtree_control")),
        "+memory +cpuset +cpu +io +pids"
    );
    let leaf = cg.join("system.slice/kiln.service/kiln-c3");
    assert_eq!(get(leaf.join("cpuset.cpus")), "0-1");
    assert_eq!(get(leaf.join("cpuset.mems")), "0");
    assert!(!leaf.join("cgroup.subtree_control").exists());
}

/// Regression: with processes in kiln's own cgroup, the baseline controllers
/// were enabled one by one; the kernel accepts the threaded ones (cpu, pids)
/// there, which made the cgroup a thread root, and the container's cgroup
/// below it then refused its process ("write to cgroup.procs: Operation not
/// supported"). A cgroup holding processes now gets no controllers, unless
/// kiln is alone there and moves itself into the kiln-init leaf first.
#[test]
fn v2_no_controllers_in_a_cgroup_holding_processes() {
    let (_t, layout, cg) = v2_host();
    let own = cg.join("system.slice/kiln.service");
    put(&own, "cgroup.type", "domain\n");
    put(&own, "cgroup.procs", "1\n");
    put(&own, "cgroup.subtree_control", "");
    // Nothing required: nothing enabled there, the container is still made.
    let cg1 = Cgroup::create_with(&layout, "c1", None, None, false).unwrap();
    assert_eq!(get(own.join("cgroup.subtree_control")), "");
    cg1.destroy().unwrap();
    // Memory required, another process there: an error, and nothing moved.
    let r = res(json!({"memory": {"limit": 1048576}}));
    let err = Cgroup::create_with(&layout, "c2", None, Some(&r), false).unwrap_err();
    assert!(err.to_string().contains("other processes"), "{err}");
    assert_eq!(get(own.join("cgroup.subtree_control")), "");
    assert!(!own.join("kiln-init").exists());
    // kiln alone there: it moves itself into the leaf, then enables.
    put(&own, "cgroup.procs", &format!("{}\n", std::process::id()));
    Cgroup::create_with(&layout, "c3", None, Some(&r), false).unwrap();
    assert_eq!(
        get(own.join("kiln-init/cgroup.procs")),
        std::process::id().to_string()
    );
    assert_eq!(
        get(own.join("cgroup.subtree_control")),
        "+memory +cpu +pids"
    );
}

#[test]
fn v2_io_hugetlb_unified() {
    let (_t, layout, cg) = v2_host();
    put(
        &cg.join("system.slice"),
        "cgroup.controllers",
        "cpu io memory pids hugetlb\n",
    );
    let r = res(json!({
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "unified": {"memory.high": "100M", "io.latency": "8:0 target=10"},
    }));
    let c = Cgroup::create_with(&layout, "c1", Some("/kiln/c1"), Some(&r), false).unwrap();
    let dir = cg.join("kiln/c1");
    assert_eq!(c.paths().unified.as_deref(), Some(dir.as_path()));
    assert_eq!(get(dir.join("io.weight")), "4950");
    assert_eq!(get(dir.join("io.max")), "8:0 rbps=1048576");
    assert_eq!(get(dir.join("hugetlb.2MB.max")), "4194304");
    assert_eq!(get(dir.join("memory.high")), "100M");
    assert_eq!(get(dir.join("io.latency")), "8:0 target=10");
    // The absolute path's new parent got the controllers the leaf needs.
    assert_eq!(
        get(cg.join("kiln/cgroup.subtree_control")),
        "+io +hugetlb +memory +cpu +pids"
    );
}

#[test]
fn unified_keys_are_checked() {
    let (_t, layout, _cg) = v2_host();
    for key in ["../memory.max", "cgroup.procs", "memory", "a/b.c", ".x"] {
        let r = res(json!({"unified": {key: "1"}}));
        let e = Cgroup::create_with(&layout, "c1", None, Some(&r), false).unwrap_err();
        assert!(e.to_string().contains("unified"), "{key}: {e}");
    }
    let (_t, layout, _cg) = hybrid_host();
    let r = res(json!({"unified": {"memory.high": "1M"}}));
    let e = Cgroup::create_with(&layout, "c1", None, Some(&r), false).unwrap_err();
    assert!(e.to_string().contains("cgroup v1"), "{e}");
}

#[test]
fn swap_conversion() {
    use v2::swap_max;
    let m = 256 << 20;
    assert_eq!(swap_max(512 << 20, m).unwrap(), 256 << 20);
    assert_eq!(swap_max(m, m).unwrap(), 0);
    assert_eq!(swap_max(-1, m).unwrap(), -1);
    assert_eq!(
        swap_max(0, -1).unwrap(),
        -1,
        "unlimited memory, swap unset → unlimited swap"
    );
    assert_eq!(swap_max(0, m).unwrap(), 0);
    assert!(swap_max(m - 1, m).is_err());
    assert!(swap_max(m, 0).is_err());
    assert!(swap_max(m, -1).is_err());
    let (_t, layout, cg) = v2_host();
    let r = res(json!({"memory": {"limit": -1}}));
    Cgroup::create_with(&layout, "c1", None, Some(&r), false).unwrap();
    let dir = cg.join("system.slice/kiln.service/kiln-c1");
    assert_eq!(get(dir.join("memory.max")), "max");
    assert!(
        !dir.join("memory.swap.max").exists(),
        "no swap accounting: max needs no write"
    );
}

#[test]
fn weight_conversions() {
    assert_eq!(v2::shares_to_weight(2), 1);
    assert_eq!(v2::shares_to_weight(1024), 39);
    assert_eq!(v2::shares_to_weight(262_144), 10_000);
    assert_eq!(v2::shares_to_weight(1), 1);
    assert_eq!(v2::blkio_weight_to_io(10), 1);
    assert_eq!(v2::blkio_weight_to_io(1000), 10_000);
    assert_eq!(v2::blkio_weight_to_io(500), 4950);
}

#[test]
fn hybrid_uses_v1_per_controller_and_joins_unified() {
    let (_t, layout, cg) = hybrid_host();
    put(
        &cg.join("memory/process_api/abc/kiln-c1"),
        "memory.memsw.limit_in_bytes",
        "",
    );
    let mut r = limits();
    r.set_hugepage_limits(
        res(json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}))
            .hugepage_limits()
            .clone(),
    );
    let c = Cgroup::create_with(&layout, "c1", None, Some(&r), false).unwrap();
    // v1 device rules go in with the rest, not with restrict_devices.
    let before = get(cg.join("devices/kiln-c1/devices.allow"));
    c.restrict_devices(Some(&r)).unwrap();
    assert_eq!(get(cg.join("devices/kiln-c1/devices.allow")), before);
    let p = c.paths();
    let mem = cg.join("memory/process_api/abc/kiln-c1");
    assert_eq!(p.v1["memory"], mem);
    assert_eq!(p.v1["name=systemd"], cg.join("systemd/kiln-c1"));
    assert_eq!(
        p.unified.as_deref(),
        Some(cg.join("unified/kiln-c1").as_path())
    );
    assert_eq!(get(mem.join("memory.limit_in_bytes")), "268435456");
    assert_eq!(get(mem.join("memory.memsw.limit_in_bytes")), "536870912");
    assert_eq!(get(mem.join("memory.soft_limit_in_bytes")), "134217728");
    assert_eq!(get(cg.join("cpu/kiln-c1/cpu.shares")), "1024");
    assert_eq!(get(cg.join("cpu/kiln-c1/cpu.cfs_quota_us")), "50000");
    assert_eq!(get(cg.join("cpu/kiln-c1/cpu.cfs_period_us")), "100000");
    assert_eq!(get(cg.join("pids/kiln-c1/pids.max")), "20");
    // New v1 cpusets start empty; the parent's values were copied in.
    assert_eq!(get(cg.join("cpuset/kiln-c1/cpuset.cpus")), "0-1");
    assert_eq!(get(cg.join("cpuset/kiln-c1/cpuset.mems")), "0");
    // Devices: deny all first (the only deny), then allows ending with the defaults.
    assert_eq!(get(cg.join("devices/kiln-c1/devices.deny")), "a *:* rwm");
    assert_eq!(
        get(cg.join("devices/kiln-c1/devices.allow")),
        "c 10:200 rwm"
    );
    // hugetlb is on the unified hierarchy here.
    assert_eq!(get(cg.join("unified/kiln-c1/hugetlb.2MB.max")), "2097152");
    assert_eq!(get(cg.join("unified/cgroup.subtree_control")), "+hugetlb");
}

#[test]
fn hybrid_paths_absolute_relative_systemd() {
    let (_t, layout, cg) = hybrid_host();
    let c = Cgroup::create_with(&layout, "c1", Some("/kiln/c1"), None, false).unwrap();
    assert_eq!(c.paths().v1["memory"], cg.join("memory/kiln/c1"));
    let c = Cgroup::create_with(&layout, "c2", Some("sub/c2"), None, false).unwrap();
    assert_eq!(
        c.paths().v1["memory"],
        cg.join("memory/process_api/abc/sub/c2")
    );
    assert_eq!(c.paths().v1["pids"], cg.join("pids/sub/c2"));
    let c =
        Cgroup::create_with(&layout, "c3", Some("machine.slice:libpod:c3"), None, true).unwrap();
    assert_eq!(
        c.paths().v1["memory"],
        cg.join("memory/machine.slice/libpod-c3.scope")
    );
    assert_eq!(
        c.paths().unified.as_deref(),
        Some(cg.join("unified/machine.slice/libpod-c3.scope").as_path())
    );
    let json = serde_json::to_value(c.paths()).unwrap();
    let back: CgroupPaths = serde_json::from_value(json).unwrap();
    assert_eq!(&back, c.paths());
}

#[test]
fn v1_swap_without_accounting() {
    let (_t, layout, cg) = hybrid_host();
    let e = Cgroup::create_with(&layout, "c1", None, Some(&limits()), false).unwrap_err();
    assert!(e.to_string().contains("swap accounting"), "{e}");
    let r = res(json!({"memory": {"limit": 1048576, "swap": 1048576}}));
    Cgroup::create_with(&layout, "c2", None, Some(&r), false).unwrap();
    assert_eq!(
        get(cg.join("memory/process_api/abc/kiln-c2/memory.limit_in_bytes")),
        "1048576"
    );
}

#[test]
fn missing_controller_is_an_error() {
    let (_t, layout, _cg) = hybrid_host();
    let r = res(json!({"rdma": {"mlx5_0": {"hcaHandles": 3}}}));
    let e = Cgroup::create_with(&layout, "c1", None, Some(&r), false).unwrap_err();
    assert!(e.to_string().contains("rdma"), "{e}");
    assert!(Cgroup::create_with(&Layout::default(), "c1", None, None, false).is_err());
}

#[test]
fn procs_freeze_update_on_fake_trees() {
    let (_t, layout, cg) = hybrid_host();
    let c = Cgroup::create_with(&layout, "c1", None, None, false).unwrap();
    c.restrict_devices(None).unwrap();
    c.add_process(4242, false).unwrap();
    assert_eq!(
        get(cg.join("memory/process_api/abc/kiln-c1/cgroup.procs")),
        "4242"
    );
    assert_eq!(get(cg.join("unified/kiln-c1/cgroup.procs")), "4242");
    put(&cg.join("unified/kiln-c1/sub"), "cgroup.procs", "7\n8\n");
    assert_eq!(c.pids().unwrap(), vec![7, 8, 4242]);
    assert!(!c.is_frozen().unwrap());
    c.freeze().unwrap();
    assert_eq!(get(cg.join("freezer/kiln-c1/freezer.state")), "FROZEN");
    assert!(c.is_frozen().unwrap());
    c.thaw().unwrap();
    assert!(!c.is_frozen().unwrap());
    // update touches only what it is given (devices stay).
    let before = get(cg.join("devices/kiln-c1/devices.allow"));
    c.update(&res(json!({"pids": {"limit": 5}, "cpu": {"quota": -1}})))
        .unwrap();
    assert_eq!(get(cg.join("pids/kiln-c1/pids.max")), "5");
    assert_eq!(get(cg.join("cpu/kiln-c1/cpu.cfs_quota_us")), "-1");
    assert_eq!(get(cg.join("devices/kiln-c1/devices.allow")), before);
    let reopened = Cgroup::open(c.paths());
    assert_eq!(reopened, c);
}

#[test]
fn v2_freeze_and_update() {
    let (_t, layout, cg) = v2_host();
    let c = Cgroup::create_with(&layout, "c1", None, None, false).unwrap();
    let dir = cg.join("system.slice/kiln.service/kiln-c1");
    c.freeze().unwrap();
    assert_eq!(get(dir.join("cgroup.freeze")), "1");
    assert!(c.is_frozen().unwrap());
    c.thaw().unwrap();
    assert!(!c.is_frozen().unwrap());
    put(
        &cg.join("system.slice/kiln.service"),
        "cgroup.controllers",
        "cpu memory pids\n",
    );
    c.update(&res(
        json!({"memory": {"limit": 4096, "swap": 8192}, "cpu": {"quota": 20000}}),
    ))
    .unwrap();
    assert_eq!(get(dir.join("memory.max")), "4096");
    assert_eq!(get(dir.join("memory.swap.max")), "4096");
    assert_eq!(get(dir.join("cpu.max")), "20000");
    assert!(
        c.update(&res(
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]})
        ))
        .is_err()
    );
}

#[test]
fn stats_v2_shape() {
    let (_t, layout, cg) = v2_host();
    let c = Cgroup::create_with(&layout, "c1", None, None, false).unwrap();
    let d = cg.join("system.slice/kiln.service/kiln-c1");
    put(
        &d,
        "cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 7\n",
    );
    put(&d, "memory.current", "4096\n");
    put(&d, "memory.max", "8192\n");
    put(&d, "memory.peak", "5000\n");
    put(
        &d,
        "memory.events",
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    );
    put(&d, "memory.stat", "anon 100\nfile 200\n");
    put(&d, "pids.current", "4\n");
    put(&d, "pids.max", "max\n");
    put(
        &d,
        "io.stat",
        "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
    );
    put(&d, "hugetlb.2MB.current", "0\n");
    put(&d, "hugetlb.2MB.max", "2097152\n");
    put(&d, "hugetlb.2MB.events", "max 1\n");
    let s = c.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 1_500_000);
    assert_eq!(s.cpu.usage.kernel, 500_000);
    assert_eq!(s.cpu.throttling.throttled_periods, 2);
    assert_eq!(s.memory.usage.usage, 4096);
    assert_eq!(s.memory.usage.limit, 8192);
    assert_eq!(s.memory.usage.failcnt, 3);
    assert_eq!(s.memory.cache, 200);
    assert_eq!(s.memory.oom_kill, 1);
    assert_eq!(s.pids.current, 4);
    assert_eq!(s.pids.limit, 0);
    assert_eq!(s.hugetlb["2MB"].max, 2097152);
    assert_eq!(s.hugetlb["2MB"].failcnt, 1);
    let j = serde_json::to_value(&s).unwrap();
    assert_eq!(j["cpu"]["throttling"]["throttledPeriods"], 2);
    assert_eq!(j["memory"]["usage"]["limit"], 8192);
    assert!(j["memory"].get("kernelTCP").is_some());
    assert_eq!(
        j["blkio"]["ioServiceBytesRecursive"][1],
        json!({"major": 8, "op": "Write", "value": 20})
    );
    assert_eq!(j["blkio"]["ioServicedRecursive"][0]["op"], "Read");
}

#[test]
fn stats_v1() {
    let (_t, layout, cg) = hybrid_host();
    let c = Cgroup::create_with(&layout, "c1", None, None, false).unwrap();
    let mem = cg.join("memory/process_api/abc/kiln-c1");
    put(&mem, "memory.usage_in_bytes", "1000\n");
    put(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
    put(&mem, "memory.max_usage_in_bytes", "2000\n");
    put(&mem, "memory.failcnt", "0\n");
    put(&mem, "memory.stat", "cache 5\ntotal_cache 6\n");
    put(
        &mem,
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    put(&cg.join("cpuacct/kiln-c1"), "cpuacct.usage", "123\n");
    put(
        &cg.join("cpuacct/kiln-c1"),
        "cpuacct.usage_percpu",
        "100 23 \n",
    );
    put(
        &cg.join("cpuacct/kiln-c1"),
        "cpuacct.stat",
        "user 1\nsystem 2\n",
    );
    put(
        &cg.join("cpu/kiln-c1"),
        "cpu.stat",
        "nr_periods 5\nnr_throttled 1\nthrottled_time 99\n",
    );
    put(&cg.join("pids/kiln-c1"), "pids.current", "3\n");
    put(&cg.join("pids/kiln-c1"), "pids.max", "20\n");
    put(
        &cg.join("blkio/kiln-c1"),
        "blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
    );
    let s = c.stats().unwrap();
    assert_eq!(s.memory.usage.usage, 1000);
    assert_eq!(s.memory.usage.max, 2000);
    assert_eq!(s.memory.cache, 6);
    assert_eq!(s.memory.oom_kill, 2);
    assert_eq!(s.cpu.usage.total, 123);
    assert_eq!(s.cpu.usage.percpu, vec![100, 23]);
    assert!(s.cpu.usage.user > 0);
    assert_eq!(s.cpu.throttling.throttled_time, 99);
    assert_eq!(s.pids.limit, 20);
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(s.blkio.io_service_bytes_recursive[0].value, 4096);
}

#[test]
fn destroy_is_idempotent() {
    let (_t, layout, _cg) = v2_host();
    let c = Cgroup::create_with(&layout, "c1", None, None, false).unwrap();
    let dir = c.paths().unified.clone().unwrap();
    assert!(dir.is_dir());
    c.destroy().unwrap();
    assert!(!dir.exists());
    c.destroy().unwrap();
    c.kill_all(libc::SIGTERM).unwrap();
    assert!(c.pids().unwrap().is_empty());
}
