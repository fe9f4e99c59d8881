//! Proof that limits are enforced, not just written: a container that exceeds
//! its memory is OOM-killed, a fork bomb stops at pids.max, a busy loop is
//! throttled, pause freezes, the device cgroup denies, `update` takes effect.
//!
//! The `host_*` tests run on this host, whatever serves each controller here
//! (on the hybrid dev hosts: the v1 fallback). `vm_cgroup2_limits_are_enforced`
//! boots Debian's kernel in qemu with a cgroup2-only /sys/fs/cgroup and runs
//! the same checks there (tests/vm/). Everything is judged from where a user
//! sees it: exit statuses, what the process inside prints, `kiln events
//! --stats`, `kiln state`; the cgroup files only where kiln reports nothing.

use crate::bundle::Bundle;
use crate::common::{Env, in_ci, repo, require_root, require_tool, run};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: i64 = 1024 * 1024;

/// Container scripts, shared by the host tests and the VM.
const OOM: &str = "exec dd if=/dev/zero of=/dev/null bs=64M count=1";
const FORK_BOMB: &str = "sh -c 'n=0; while [ $n -lt 100 ]; do sleep 1000 & n=$((n+1)); \
                         echo started=$n; done'; echo bomb-exit=$?";
const BUSY_2S: &str = "sh -c 'while :; do :; done' & sleep 2; kill $!; echo done";
const TICKER: &str = "i=0; while :; do i=$((i+1)); echo $i > /var/frz.t; \
                      mv /var/frz.t /var/frz; sleep 0.1; done";
const OPEN_PROBE: &str = "cat /dev/probe";

/// `kiln events --stats ID`'s "data".
fn stats(b: &Bundle, id: &str) -> Value {
    let line = b.ok(&["events", "--stats", id]);
    let v: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("events --stats {id}: {e}: {line}"));
    v["data"].clone()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The container's cgroup directories as kiln recorded them.
fn cgroup_dirs(b: &Bundle, id: &str) -> Vec<PathBuf> {
    let state = std::fs::read(b.state_root().join(id).join("state.json")).unwrap();
    let state: Value = serde_json::from_slice(&state).unwrap();
    let cg = &state["cgroup"];
    let mut dirs: Vec<PathBuf> = cg["v1"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .chain(cg.get("unified"))
        .filter_map(|p| p.as_str().map(PathBuf::from))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The directory of `id`'s cgroup that serves `controller` (v1 or unified).
fn controller_dir(b: &Bundle, id: &str, controller: &str) -> PathBuf {
    let state = std::fs::read(b.state_root().join(id).join("state.json")).unwrap();
    let state: Value = serde_json::from_slice(&state).unwrap();
    let cg = &state["cgroup"];
    let p = cg["v1"][controller].as_str().or(cg["unified"].as_str());
    PathBuf::from(p.expect("a cgroup for the controller"))
}

fn keyed(path: &Path, key: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Deletes `id` and asserts that none of its cgroups is left.
fn delete_and_check(b: &Bundle, id: &str, force: bool) {
    let dirs = cgroup_dirs(b, id);
    if force {
        b.ok(&["delete", "--force", id]);
    } else {
        b.ok(&["delete", id]);
    }
    for d in dirs {
        assert!(!d.exists(), "{id}: cgroup {} left behind", d.display());
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A bundle for a limits test. On a cgroup2-only host the test runner's own
/// cgroup holds other processes (cargo, this binary), and v2 allows no
/// controllers below such a cgroup; there the container's cgroup goes under
/// the root instead, as an absolute linux.cgroupsPath may say. On hybrid and
/// v1 hosts the default (beside the caller) is used.
fn limited(script: &str, id: &str) -> Bundle {
    let mut b = Bundle::new(script);
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    if own.lines().all(|l| l.starts_with("0::")) {
        let path = format!("/kiln-test-{}-{id}", std::process::id());
        b.config["linux"]["cgroupsPath"] = json!(path);
    }
    b
}

/// `kiln run --keep`: the stopped container stays for `events` and `state`.
fn run_keep(b: &Bundle, id: &str) -> std::process::Output {
    b.save();
    b.out(&["run", "--keep", "--bundle", b.dir.to_str().unwrap(), id])
}

#[test]
fn host_memory_limit_oom_kills_the_container() {
    if !require_root("host_memory_limit_oom_kills_the_container") {
        return;
    }
    let mut b = limited(OOM, "lim-oom");
    b.config["linux"]["resources"]["memory"] = json!({"limit": 32 * MIB});
    let out = run_keep(&b, "lim-oom");
    assert_eq!(out.status.code(), Some(137), "{}", text(&out));
    let s = stats(&b, "lim-oom");
    assert_eq!(num(&s["memory"]["usage"]["limit"]), 32 << 20, "{s}");
    assert!(
        num(&s["memory"]["oomKill"]) >= 1,
        "no OOM kill counted: {s}"
    );
    delete_and_check(&b, "lim-oom", false);
}

#[test]
fn host_pids_limit_stops_a_fork_bomb() {
    if !require_root("host_pids_limit_stops_a_fork_bomb") {
        return;
    }
    let mut b = limited(FORK_BOMB, "lim-bomb");
    b.config["linux"]["resources"]["pids"] = json!({"limit": 10});
    let out = run_keep(&b, "lim-bomb");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let started = all
        .lines()
        .filter_map(|l| l.strip_prefix("started=")?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    assert!((1..10).contains(&started), "{started} forks: {all}");
    assert!(all.contains("can't fork"), "no fork failed: {all}");
    assert!(!all.contains("bomb-exit=0"), "{all}");
    assert_eq!(num(&stats(&b, "lim-bomb")["pids"]["limit"]), 10);
    let events = controller_dir(&b, "lim-bomb", "pids").join("pids.events");
    assert!(keyed(&events, "max") > 0, "pids.events: no max event");
    delete_and_check(&b, "lim-bomb", false);
}

#[test]
fn host_cpu_quota_throttles_a_busy_loop() {
    if !require_root("host_cpu_quota_throttles_a_busy_loop") {
        return;
    }
    let mut b = limited(BUSY_2S, "lim-busy");
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 2000, "period": 10000});
    let out = run_keep(&b, "lim-busy");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = stats(&b, "lim-busy");
    let t = &s["cpu"]["throttling"];
    assert!(num(&t["throttledPeriods"]) > 0, "never throttled: {s}");
    assert!(num(&t["throttledTime"]) > 0, "never throttled: {s}");
    // 20% of one CPU for 2 s is 0.4 s; unthrottled it would be 2 s.
    let used = num(&s["cpu"]["usage"]["total"]);
    assert!(
        used > 0 && used < 1_000_000_000,
        "used {used} ns of CPU: {s}"
    );
    delete_and_check(&b, "lim-busy", false);
}

#[test]
fn host_pause_freezes_resume_thaws_and_kill_all_ends_all() {
    if !require_root("host_pause_freezes_resume_thaws_and_kill_all_ends_all") {
        return;
    }
    let mut b = Bundle::new(TICKER);
    b.config["root"]["readonly"] = json!(false);
    b.save();
    b.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), "lim-frz"]);
    let ticks = || -> u64 {
        let t = std::fs::read_to_string(b.dir.join("rootfs/var/frz")).unwrap_or_default();
        t.trim().parse().unwrap_or(0)
    };
    wait_for("the first tick", || ticks() > 0);
    b.ok(&["pause", "lim-frz"]);
    assert_eq!(b.status("lim-frz"), "paused");
    let a = ticks();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(ticks(), a, "ticked while paused");
    b.ok(&["resume", "lim-frz"]);
    assert_eq!(b.status("lim-frz"), "running");
    wait_for("a tick after resume", || ticks() > a);
    b.ok(&["kill", "--all", "lim-frz", "KILL"]);
    wait_for("the container to stop", || b.status("lim-frz") == "stopped");
    // (Not pids.current: the dead init stays a zombie until whoever it was
    // reparented to reaps it, and pids counts zombies.)
    assert_eq!(b.ok(&["ps", "--format", "json", "lim-frz"]).trim(), "[]");
    delete_and_check(&b, "lim-frz", false);
}

/// A device node (major 42 is reserved for samples: no driver) that the
/// device cgroup denies unless a rule allows it; allowed, opening it fails
/// for the missing driver instead (ENXIO), so the cgroup is what denies.
fn probe_bundle(allow: bool) -> Bundle {
    let mut b = Bundle::new(OPEN_PROBE);
    probe_config(&mut b.config, allow);
    b
}

fn probe_config(config: &mut Value, allow: bool) {
    config["linux"]["devices"] =
        json!([{"path": "/dev/probe", "type": "c", "major": 42, "minor": 0, "fileMode": 438}]);
    let rules = if allow {
        json!([{"allow": true, "type": "c", "major": 42, "minor": 0, "access": "r"}])
    } else {
        json!([])
    };
    config["linux"]["resources"]["devices"] = rules;
}

#[test]
fn host_device_cgroup_denies_a_device_without_a_rule() {
    if !require_root("host_device_cgroup_denies_a_device_without_a_rule") {
        return;
    }
    let denied = text(&probe_bundle(false).run("lim-deny"));
    assert!(denied.contains("Operation not permitted"), "{denied}");
    let allowed = text(&probe_bundle(true).run("lim-allow"));
    assert!(allowed.contains("No such device or address"), "{allowed}");
}

#[test]
fn host_update_changes_the_limits_the_container_sees() {
    if !require_root("host_update_changes_the_limits_the_container_sees") {
        return;
    }
    let mut b = limited("exec sleep 1000", "lim-upd");
    b.config["linux"]["resources"]["memory"] = json!({"limit": 64 * MIB});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 20});
    b.save();
    b.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), "lim-upd"]);
    // v2 shows the container's own files at the cgroup mount's root; v1 one
    // directory per hierarchy.
    let read = |v2: &str, v1: &str| {
        let script = format!("cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/{v1}");
        b.ok(&["exec", "lim-upd", "sh", "-c", &script])
            .trim()
            .to_string()
    };
    let memory = || read("memory.max", "memory/memory.limit_in_bytes");
    assert_eq!(memory(), (64 * MIB).to_string());
    b.ok(&["update", "--memory", "48m", "--pids-limit", "7", "lim-upd"]);
    assert_eq!(memory(), (48 * MIB).to_string());
    assert_eq!(read("pids.max", "pids/pids.max"), "7");
    delete_and_check(&b, "lim-upd", true);
}

/// Regression: in a private mount namespace with cgroup2 mounted over a
/// hybrid host's /sys/fs/cgroup, kiln used the hidden v1 mounts and failed
/// with "create cgroup /sys/fs/cgroup/cpu/kiln-x: No such file or directory".
#[test]
fn regression_hidden_v1_mounts_under_cgroup2_in_a_private_mount_ns() {
    let t = "regression_hidden_v1_mounts_under_cgroup2_in_a_private_mount_ns";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let b = Bundle::new("echo in-container");
    b.save();
    let script = "mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && \
                  exec \"$0\" --root \"$1\" run --bundle \"$2\" lim-hidden";
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script, env!("CARGO_BIN_EXE_kiln")])
        .arg(b.state_root())
        .arg(&b.dir)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("in-container"), "{all}");
}

// ---- the cgroup2-only VM ----

/// A config for the VM: the shared /rootfs, `script`, then `edit`.
fn vm_config(base: &Value, script: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut c = base.clone();
    c["root"] = json!({"path": "/rootfs", "readonly": false});
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(["sh", "-c", script]);
    edit(&mut c);
    c
}

/// Writes /bundles/<check>/config.json for tests/vm/checks.sh.
fn write_vm_bundles(dir: &Path) {
    let spec = dir.join("spec");
    std::fs::create_dir_all(&spec).unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["spec", "--bundle"])
        .arg(&spec));
    let base: Value =
        serde_json::from_slice(&std::fs::read(spec.join("config.json")).unwrap()).unwrap();
    std::fs::remove_dir_all(&spec).unwrap();
    let res = |v: Value| move |c: &mut Value| c["linux"]["resources"] = v;
    let bundles = [
        (
            "oom",
            vm_config(&base, OOM, res(json!({"memory": {"limit": 32 * MIB}}))),
        ),
        (
            "pids",
            vm_config(&base, FORK_BOMB, res(json!({"pids": {"limit": 16}}))),
        ),
        (
            "cpu",
            vm_config(
                &base,
                BUSY_2S,
                res(json!({"cpu": {"quota": 10000, "period": 100000}})),
            ),
        ),
        ("frz", vm_config(&base, TICKER, |_| {})),
        (
            "del",
            vm_config(&base, "sleep 1001 & sleep 1002 & exec sleep 1003", |_| {}),
        ),
        (
            "upd",
            vm_config(
                &base,
                "exec sleep 1000",
                res(json!({"memory": {"limit": 64 * MIB}, "pids": {"limit": 20}})),
            ),
        ),
        (
            "abs",
            vm_config(
                &base,
                "echo pids.max=$(cat /sys/fs/cgroup/pids.max); cat /proc/self/cgroup",
                |c| {
                    c["linux"]["cgroupsPath"] = json!("/kiln/abs");
                    c["linux"]["resources"] = json!({"pids": {"limit": 5}});
                },
            ),
        ),
        ("initramfs", vm_config(&base, "echo inside", |_| {})),
        (
            "devdeny",
            vm_config(&base, OPEN_PROBE, |c| probe_config(c, false)),
        ),
        (
            "devallow",
            vm_config(&base, OPEN_PROBE, |c| probe_config(c, true)),
        ),
    ];
    for (name, config) in bundles {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
    }
}

/// A kernel for the VM: KILN_VM_KERNEL, else a readable /boot/vmlinuz-*
/// (tests/vm/boot.sh boots the newest).
fn vm_kernel() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KILN_VM_KERNEL") {
        return Some(k.into());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .filter(|p| std::fs::File::open(p).is_ok())
        .collect();
    found.pop()
}

/// "KILN-VM <check> k=v ..." lines of the console, by check, then key.
fn vm_results(console: &str) -> Results {
    let mut out = BTreeMap::new();
    for line in console.lines() {
        let Some(rest) = line.trim_end_matches('\r').split("KILN-VM ").nth(1) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(check) = words.next() else { continue };
        let fields = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.insert(check.to_string(), fields);
    }
    out
}

#[test]
fn vm_cgroup2_limits_are_enforced() {
    let t = "vm_cgroup2_limits_are_enforced";
    for tool in ["qemu-system-x86_64", "cpio", "gzip", "busybox"] {
        if !require_tool(t, tool) {
            return;
        }
    }
    if vm_kernel().is_none() {
        assert!(
            !in_ci(),
            "{t}: no kernel in /boot (apt-get install linux-image-amd64)"
        );
        eprintln!("skipping {t}: no readable /boot/vmlinuz-* (apt-get install linux-image-amd64)");
        return;
    }
    let env = Env::new();
    write_vm_bundles(&env.path("bundles"));
    let initrd = env.path("initrd.gz");
    run(Command::new(repo().join("tests/vm/initramfs.sh"))
        .arg(&initrd)
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .arg(env.path("bundles")));
    let started = Instant::now();
    let out = Command::new(repo().join("tests/vm/boot.sh"))
        .arg(&initrd)
        .arg("240")
        .output()
        .unwrap();
    let console = text(&out);
    eprintln!("{t}: VM ran {:?}", started.elapsed());
    for line in console.lines().filter(|l| l.contains("KILN-VM ")) {
        eprintln!("{line}");
    }
    let r = vm_results(&console);
    assert!(
        r.contains_key("done"),
        "the VM did not finish ({:?}):\n{console}",
        out.status
    );
    check_vm_results(&r, &console);
}

type Results = BTreeMap<String, BTreeMap<String, String>>;

/// Assertions on the VM's result lines, each failure showing the console.
struct Judge<'a> {
    r: &'a Results,
    console: &'a str,
}

impl Judge<'_> {
    fn get(&self, check: &str, key: &str) -> &str {
        let v = self.r.get(check).and_then(|m| m.get(key));
        v.map(String::as_str)
            .unwrap_or_else(|| panic!("no {check} {key} in the console:\n{}", self.console))
    }

    fn n(&self, check: &str, key: &str) -> u64 {
        self.get(check, key).parse().unwrap_or(0)
    }

    fn eq(&self, check: &str, key: &str, want: &str) {
        let got = self.get(check, key);
        assert_eq!(got, want, "{check} {key}; console:\n{}", self.console);
    }

    fn pos(&self, check: &str, key: &str) {
        let got = self.n(check, key);
        assert!(
            got > 0,
            "{check} {key} is not > 0; console:\n{}",
            self.console
        );
    }

    fn within(&self, check: &str, key: &str, range: std::ops::Range<u64>) {
        let got = self.n(check, key);
        assert!(
            range.contains(&got),
            "{check} {key} = {got}, not in {range:?}; console:\n{}",
            self.console
        );
    }
}

fn check_vm_results(r: &Results, console: &str) {
    let j = Judge { r, console };
    // kiln on the initramfs itself (no pivot_root out of it): chroot.
    j.eq("initramfs", "rc", "0");
    j.eq("initramfs", "out", "inside");
    check_vm_limits(&j);
    check_vm_lifecycle(&j);
    // Nothing left behind.
    for check in [
        "oom_cleanup",
        "pids_cleanup",
        "cpu_cleanup",
        "killall_cleanup",
        "update_cleanup",
    ] {
        j.eq(check, "delete_exit", "0");
        j.eq(check, "cgroup_left", "0");
    }
    j.eq("cleanup", "containers", "0");
    j.eq("cleanup", "cgroups", "0");
}

fn check_vm_limits(j: &Judge) {
    // memory.max: OOM-killed, exit 137, counted in memory.events and stats;
    // kiln moved itself into a leaf to enable the controller.
    j.eq("oom", "exit", "137");
    j.eq("oom", "memory_max", &(32 * MIB).to_string());
    j.pos("oom", "oom_kill");
    j.pos("oom", "stats_oom_kill");
    j.eq("oom", "leaf", "1");
    // pids.max: forks fail at the limit.
    j.eq("pids", "exit", "0");
    j.eq("pids", "pids_max", "16");
    j.eq("pids", "stats_limit", "16");
    j.pos("pids", "fork_failed");
    j.pos("pids", "events_max");
    j.within("pids", "started", 1..16);
    // cpu.max: throttled, and well under the 2 s an unthrottled loop takes.
    j.eq("cpu", "exit", "0");
    j.eq("cpu", "cpu_max", "10000/100000");
    j.pos("cpu", "nr_throttled");
    j.pos("cpu", "throttled_usec");
    j.pos("cpu", "stats_throttled_periods");
    j.within("cpu", "usage_usec", 1..1_000_000);
    // update, read back inside.
    j.eq("update", "exit", "0");
    j.eq("update", "memory_before", &(64 * MIB).to_string());
    j.eq("update", "memory_after", &(48 * MIB).to_string());
    j.eq("update", "pids_after", "7");
    // An absolute cgroupsPath, from a cgroup with other processes in it.
    j.eq("absolute", "exit", "0");
    j.eq("absolute", "inside", "pids.max=5,0::/,");
    j.eq("absolute", "cgroup_left", "0");
    // The eBPF device filter.
    j.eq("devices", "denied", "EPERM");
    j.eq("devices", "allowed", "ENXIO");
}

fn check_vm_lifecycle(j: &Judge) {
    // cgroup.freeze, then cgroup.kill.
    j.eq("freeze", "pause_exit", "0");
    j.eq("freeze", "state_paused", "paused");
    j.eq("freeze", "frozen", "1");
    j.eq("freeze", "ticks_paused", "0");
    j.eq("freeze", "resume_exit", "0");
    j.eq("freeze", "state_resumed", "running");
    j.eq("freeze", "thawed", "0");
    j.pos("freeze", "ticks_resumed");
    j.eq("killall", "exit", "0");
    j.pos("killall", "procs_before");
    j.eq("killall", "state", "stopped");
    j.eq("killall", "procs_after", "0");
    // delete --force of a running container with children.
    j.eq("delete_force", "exit", "0");
    j.within("delete_force", "procs_before", 3..100);
    j.eq("delete_force", "sleeps_left", "0");
    j.eq("delete_force", "cgroup_left", "0");
    assert_ne!(j.get("delete_force", "state_exit"), "0", "{}", j.console);
}
