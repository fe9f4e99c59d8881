//! Root-only tests on the real hierarchies of this host (v1 controllers plus
//! a controller-less cgroup2 mount): limits, freeze/thaw, kill, destroy, and
//! the v2 device filter. They skip without root, except under CI=true.
//! Only the children they spawn are moved; a guard kills and removes
//! everything even when an assertion fails.

use super::*;
use serde_json::json;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

/// False (with a printed reason) when the test cannot run here.
fn have_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root (CI=true, so not skipping)");
    }
    eprintln!("skipping {test}: needs root");
    false
}

fn unique_id(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("test-{name}-{}-{nanos}", std::process::id())
}

/// Kills what the test started and removes its cgroups, even on panic.
struct Guard {
    cg: Option<Cgroup>,
    children: Vec<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(cg) = &self.cg {
            let _ = cg.thaw();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(cg) = &self.cg {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.destroy();
        }
    }
}

fn spawn_sleep() -> Child {
    Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep")
}

fn proc_state(pid: u32) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

#[test]
fn root_limits_freeze_kill_destroy() {
    if !have_root("root_limits_freeze_kill_destroy") {
        return;
    }
    let own_before = fs::read_to_string("/proc/self/cgroup").unwrap();
    let layout = Layout::discover().unwrap();
    let id = unique_id("limits");
    let r = res(json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 20}}));
    let cg = Cgroup::create_with(&layout, &id, None, Some(&r), false).unwrap();
    let mut g = Guard {
        cg: Some(cg.clone()),
        children: vec![],
    };
    let dirs: Vec<PathBuf> = cg.paths().dirs().iter().map(|d| d.to_path_buf()).collect();
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");

    let (memory_file, pids_dir) = match layout.v1_for("memory") {
        Some(_) => (
            cg.paths().v1["memory"].join("memory.limit_in_bytes"),
            cg.paths().v1.get("pids").cloned(),
        ),
        None => (
            cg.paths().unified.clone().unwrap().join("memory.max"),
            cg.paths().unified.clone(),
        ),
    };
    assert_eq!(fs::read_to_string(&memory_file).unwrap().trim(), "67108864");
    let pids_dir = pids_dir.expect("a pids controller");
    assert_eq!(
        fs::read_to_string(pids_dir.join("pids.max"))
            .unwrap()
            .trim(),
        "20"
    );

    g.children.push(spawn_sleep());
    let pid = g.children[0].id();
    cg.add_process(pid as i32, false).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![pid as i32]);
    let child_cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        child_cgroup.contains(&format!("/kiln-{id}")),
        "{child_cgroup}"
    );

    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    eprintln!("frozen child state: {}", proc_state(pid));
    if let Some(f) = cg.paths().v1.get("freezer") {
        assert_eq!(
            fs::read_to_string(f.join("freezer.state")).unwrap().trim(),
            "FROZEN"
        );
    }
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    assert!(proc_state(pid).starts_with('S'), "{}", proc_state(pid));

    let s = cg.stats().unwrap();
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 20);
    assert_eq!(s.memory.usage.limit, 64 << 20);

    cg.kill_all(libc::SIGKILL).unwrap();
    let status = g.children[0].wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(cg.pids().unwrap().is_empty());
    cg.destroy().unwrap();
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
    cg.destroy().unwrap();
    assert_eq!(
        fs::read_to_string("/proc/self/cgroup").unwrap(),
        own_before,
        "the test process stayed put"
    );
}

#[test]
fn root_failed_create_leaves_nothing() {
    if !have_root("root_failed_create_leaves_nothing") {
        return;
    }
    let layout = Layout::discover().unwrap();
    let id = unique_id("fail");
    let r = res(json!({"pids": {"limit": 5}, "unified": {"nosuchcontroller.max": "1"}}));
    assert!(Cgroup::create_with(&layout, &id, None, Some(&r), false).is_err());
    let leftovers: Vec<PathBuf> = layout
        .v1
        .iter()
        .chain(layout.unified.iter())
        .map(|h| h.own_dir().join(format!("kiln-{id}")))
        .filter(|d| d.exists())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The unified hierarchy alone (as on a v2 host): cgroup.freeze, cgroup.kill
/// and the eBPF device filter work without any controller.
#[test]
fn root_unified_freeze_kill_devices() {
    if !have_root("root_unified_freeze_kill_devices") {
        return;
    }
    let mut layout = Layout::discover().unwrap();
    if layout.unified.is_none() {
        eprintln!("skipping root_unified_freeze_kill_devices: no cgroup2 mount");
        return;
    }
    layout.v1.clear();
    let id = unique_id("unified");
    let cg = Cgroup::create_with(&layout, &id, None, None, false).unwrap();
    let mut g = Guard {
        cg: Some(cg.clone()),
        children: vec![],
    };
    let dir = cg.paths().unified.clone().unwrap();
    assert_eq!(bpf::attached_count(&dir).unwrap(), 0);
    cg.restrict_devices(None).unwrap();
    assert_eq!(bpf::attached_count(&dir).unwrap(), 1);

    assert_eq!(probe_devices(&cg, &mut g), "null-ok kmsg-denied");
    let allow_kmsg = res(
        json!({"devices": [{"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}]}),
    );
    cg.update(&allow_kmsg).unwrap();
    assert_eq!(
        bpf::attached_count(&dir).unwrap(),
        1,
        "the old program was replaced"
    );
    assert_eq!(probe_devices(&cg, &mut g), "null-ok kmsg-ok");

    g.children.push(spawn_sleep());
    let pid = g.children.last().unwrap().id();
    cg.add_process(pid as i32, false).unwrap();
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    assert!(
        fs::read_to_string(dir.join("cgroup.events"))
            .unwrap()
            .contains("frozen 1")
    );
    eprintln!("v2-frozen child state: {}", proc_state(pid));
    cg.thaw().unwrap();
    assert!(
        fs::read_to_string(dir.join("cgroup.events"))
            .unwrap()
            .contains("frozen 0")
    );
    cg.kill_all(libc::SIGKILL).unwrap();
    assert!(cg.pids().unwrap().is_empty());
    let child = g.children.last_mut().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&child.wait().unwrap()),
        Some(libc::SIGKILL)
    );
    cg.destroy().unwrap();
    assert!(!dir.exists());
}

/// Runs a shell in `cg` that opens /dev/null and /dev/kmsg once it has joined.
fn probe_devices(cg: &Cgroup, g: &mut Guard) -> String {
    let script = "read x; : </dev/null && printf null-ok; \
                  if (exec 3</dev/kmsg) 2>/dev/null; then echo ' kmsg-ok'; else echo ' kmsg-denied'; fi";
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    cg.add_process(child.id() as i32, false).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    g.children.push(child);
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    line.trim().to_string()
}
