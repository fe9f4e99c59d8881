//! The OCI runtime through runc's command line: lifecycle, states, exit
//! statuses, and what the container sees from inside.

use crate::bundle::Bundle;
use crate::common::require_root;
use serde_json::json;
use std::time::Duration;

#[test]
fn run_passes_output_and_exit_status_through() {
    if !require_root("run_passes_output_and_exit_status_through") {
        return;
    }
    let b = Bundle::new("echo out; echo err >&2; exit 7");
    let out = b.run("t");
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    assert!(
        !b.state_root().join("t").exists(),
        "run deletes the container"
    );
    b.assert_clean();
}

#[test]
fn a_signal_death_exits_128_plus_n() {
    if !require_root("a_signal_death_exits_128_plus_n") {
        return;
    }
    let b = Bundle::new("kill -TERM $$; sleep 5");
    // Pid 1 ignores signals it has no handler for, so run it as a child.
    let mut b = b;
    b.config["process"]["args"] = json!(["sh", "-c", "sh -c 'kill -KILL $$'; exit $?"]);
    let out = b.run("t");
    assert_eq!(out.status.code(), Some(137));
}

#[test]
fn not_found_and_not_executable_exit_127_and_126() {
    if !require_root("not_found_and_not_executable_exit_127_and_126") {
        return;
    }
    let mut b = Bundle::new("");
    b.config["process"]["args"] = json!(["/no/such/binary"]);
    let out = b.run("t");
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    b.config["process"]["args"] = json!(["/etc/passwd"]);
    assert_eq!(b.run("t2").status.code(), Some(126));
    assert!(
        std::fs::read_dir(b.state_root()).map_or(true, |mut d| d.next().is_none()),
        "failed creates leave no state"
    );
}

#[test]
fn lifecycle_create_start_state_kill_delete() {
    if !require_root("lifecycle_create_start_state_kill_delete") {
        return;
    }
    let b = Bundle::new("echo started > /tmp/started; exec sleep 60");
    b.save();
    let pid_file = b.env.path("pid");
    b.ok(&[
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "c1",
    ]);
    assert_eq!(b.status("c1"), "created");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let state: serde_json::Value = serde_json::from_str(&b.ok(&["state", "c1"])).unwrap();
    assert_eq!(state["pid"], pid);
    assert_eq!(state["id"], "c1");
    assert!(state["bundle"].as_str().unwrap().ends_with("bundle"));
    assert!(
        !b.dir.join("rootfs/tmp/started").exists(),
        "create does not run the process"
    );
    let list = b.ok(&["list", "--format", "json"]);
    assert!(list.contains("\"c1\""));

    // Illegal transitions are refused with a message.
    let out = b.out(&["create", "--bundle", b.dir.to_str().unwrap(), "c1"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already exists")
    );

    b.ok(&["start", "c1"]);
    assert_eq!(b.status("c1"), "running");
    let out = b.out(&["start", "c1"]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("cannot start a running container")
    );
    let out = b.out(&["delete", "c1"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("running"));

    b.ok(&["kill", "c1", "KILL"]);
    wait_for(|| b.status("c1") == "stopped");
    let out = b.out(&["kill", "c1"]);
    assert!(!out.status.success(), "a stopped container takes no signal");
    b.ok(&["delete", "c1"]);
    let out = b.out(&["state", "c1"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("does not exist")
    );
    b.assert_clean();
}

#[test]
fn state_sees_a_process_that_died_unwatched() {
    if !require_root("state_sees_a_process_that_died_unwatched") {
        return;
    }
    let b = Bundle::new("exit 0");
    b.save();
    b.ok(&["create", "--bundle", b.dir.to_str().unwrap(), "c"]);
    b.ok(&["start", "c"]);
    wait_for(|| b.status("c") == "stopped");
    b.ok(&["delete", "c"]);
}

#[test]
fn delete_force_kills_a_running_container() {
    if !require_root("delete_force_kills_a_running_container") {
        return;
    }
    let b = Bundle::new("sleep 60 & exec sleep 60");
    b.save();
    b.ok(&["run", "--detach", "--bundle", b.dir.to_str().unwrap(), "c"]);
    assert_eq!(b.status("c"), "running");
    let pids: Vec<i32> = serde_json::from_str(&b.ok(&["ps", "--format", "json", "c"])).unwrap();
    assert_eq!(
        pids.len(),
        2,
        "both sleeps are in the container's cgroup: {pids:?}"
    );
    b.ok(&["delete", "--force", "c"]);
    for p in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists()
                || std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .unwrap()
                    .contains(" Z "),
            "pid {p} survived"
        );
    }
    b.assert_clean();
}

#[test]
fn the_container_sees_its_own_namespaces_and_identity() {
    if !require_root("the_container_sees_its_own_namespaces_and_identity") {
        return;
    }
    let mut b = Bundle::new(
        "echo pid=$$; hostname; cat /proc/sys/kernel/domainname; for n in pid mnt uts ipc net cgroup; do readlink /proc/self/ns/$n; done; grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs)' /proc/self/status; id; umask; pwd; ulimit -n",
    );
    b.config["hostname"] = json!("box");
    b.config["domainname"] = json!("example.test");
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [20, 30], "umask": 63});
    b.config["process"]["cwd"] = json!("/tmp");
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    b.config["process"]["capabilities"] = json!({"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]});
    let out = b.run_ok("t");
    let host_ns: Vec<String> = ["pid", "mnt", "uts", "ipc", "net", "cgroup"]
        .iter()
        .map(|n| {
            std::fs::read_link(format!("/proc/self/ns/{n}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "box");
    assert_eq!(lines[2], "example.test");
    for (i, host) in host_ns.iter().enumerate() {
        assert_ne!(
            lines[3 + i],
            host,
            "namespace {} is the host's",
            lines[3 + i]
        );
    }
    let caps = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(
        caps("CapEff:"),
        format!("{:016x}", 1u64 << 5),
        "a non-root user keeps only the ambient CAP_KILL across exec"
    );
    assert_eq!(caps("CapBnd:"), format!("{:016x}", (1u64 << 5) | 1));
    assert_eq!(caps("NoNewPrivs:"), "1");
    assert!(
        out.contains("uid=1000 gid=1000 groups=20(dialout),30")
            || out.contains("uid=1000 gid=1000 groups=20,30"),
        "{out}"
    );
    assert!(out.contains("\n0077\n"), "umask: {out}");
    assert!(out.contains("\n/tmp\n256\n"), "cwd and rlimit: {out}");
}

#[test]
fn masked_and_readonly_paths_and_readonly_root() {
    if !require_root("masked_and_readonly_paths_and_readonly_root") {
        return;
    }
    let mut b = Bundle::new(
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/ostype 2>/dev/null && echo wrote-sys; touch /x 2>/dev/null && echo wrote-root; touch /tmp/y 2>/dev/null && echo wrote-tmp; echo done",
    );
    b.config["root"]["readonly"] = json!(true);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}));
    let out = b.run_ok("t");
    assert_eq!(
        out, "0\n0\nwrote-tmp\ndone\n",
        "masked timer_list and firmware, read-only /proc/sys and root"
    );
}

#[test]
fn mounts_of_every_kind() {
    if !require_root("mounts_of_every_kind") {
        return;
    }
    let mut b = Bundle::new(
        "cat /data/file; cat /one; echo x > /data/new 2>/dev/null || echo ro-refused; grep -E ' /(data|scratch|one|dev/mqueue|sys/fs/cgroup) ' /proc/self/mounts | cut -d' ' -f2,3 | sort",
    );
    let host = b.env.path("hostdata");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("file"), "from-host\n").unwrap();
    std::fs::write(b.env.path("onefile"), "single\n").unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/data", "type": "bind", "source": host, "options": ["rbind", "ro"]}),
    );
    mounts.push(json!({"destination": "/one", "type": "bind", "source": b.env.path("onefile"), "options": ["bind"]}));
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    let out = b.run_ok("t");
    assert!(out.starts_with("from-host\nsingle\nro-refused\n"), "{out}");
    for m in ["/data ", "/one ", "/scratch tmpfs", "/dev/mqueue mqueue"] {
        assert!(out.contains(m), "missing mount {m}: {out}");
    }
    assert!(!host.join("new").exists());
    b.assert_clean();
}

#[test]
fn exec_joins_the_container_confined_alike() {
    if !require_root("exec_joins_the_container_confined_alike") {
        return;
    }
    let mut b = Bundle::new("exec sleep 60");
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["hostname"] = json!("inside");
    b.save();
    b.ok(&["run", "--detach", "--bundle", b.dir.to_str().unwrap(), "c"]);
    let probe = "hostname; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/self/cgroup | sort | md5sum; readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt";
    let inside = b.ok(&["exec", "c", "sh", "-c", probe]);
    let init = b.ok(&["exec", "c", "sh", "-c", &probe.replace("/self/", "/1/")]);
    assert!(inside.starts_with("inside\n"), "{inside}");
    assert_eq!(
        inside.lines().skip(1).collect::<Vec<_>>(),
        init.lines().skip(1).collect::<Vec<_>>(),
        "exec'd process is confined like init"
    );
    let out = b.out(&["exec", "c", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    b.ok(&["delete", "--force", "c"]);
}

#[test]
fn hooks_run_at_each_stage_with_state_on_stdin() {
    if !require_root("hooks_run_at_each_stage_with_state_on_stdin") {
        return;
    }
    let mut b = Bundle::new("echo run");
    let dir = b.env.path("hooklog");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    // startContainer takes its time: poststart must still wait for the
    // process to be executed, which comes after it.
    let hook = |stage: &str, path: &str| {
        let pause = if stage == "startContainer" {
            "sleep 0.3; "
        } else {
            ""
        };
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!("{pause}read -r s; echo {stage} \"$s\" >> {path}")]})
    };
    let host = log.display().to_string();
    // startContainer runs inside the container: it sees the log through a bind mount.
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/hooklog", "type": "bind", "source": dir, "options": ["bind"]}),
    );
    b.config["hooks"] = json!({
        "prestart": [hook("prestart", &host)], "createRuntime": [hook("createRuntime", &host)],
        "createContainer": [hook("createContainer", &host)],
        "startContainer": [hook("startContainer", "/hooklog/log")],
        "poststart": [hook("poststart", &host)], "poststop": [hook("poststop", &host)],
    });
    let in_order = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    b.run_ok("h");
    let text = std::fs::read_to_string(&log).unwrap();
    let stages: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(stages, in_order, "kiln run");
    assert!(text.lines().all(|l| l.contains("\"id\":\"h\"")), "{text}");
    // The same through create and start (a separate process from the init).
    std::fs::remove_file(&log).unwrap();
    b.save();
    let bundle = b.dir.to_str().unwrap();
    b.ok(&["create", "--bundle", bundle, "hc"]);
    b.ok(&["start", "hc"]);
    wait_for(|| b.status("hc") == "stopped");
    b.ok(&["delete", "hc"]);
    let text = std::fs::read_to_string(&log).unwrap();
    let stages: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(stages, in_order, "kiln create, start");
    // A hook that hangs is killed at its timeout and fails the create.
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    let started = std::time::Instant::now();
    let out = b.run("h2");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("timed out"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn preserved_fds_reach_the_container_and_nothing_else_does() {
    if !require_root("preserved_fds_reach_the_container_and_nothing_else_does") {
        return;
    }
    let b = Bundle::new("cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '");
    b.save();
    let input = b.env.path("input");
    std::fs::write(&input, "through-fd-3\n").unwrap();
    let f = std::fs::File::open(&input).unwrap();
    let mut cmd = b.kiln(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        b.dir.to_str().unwrap(),
        "p",
    ]);
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = f.as_raw_fd();
    // SAFETY: dup2 in the forked child before exec, onto fd 3.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps FD_CLOEXEC: clear it explicitly.
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text, "through-fd-3\n0 1 2 3 4 ",
        "only stdio, the preserved fd 3 and ls's own fd 4"
    );
}

#[test]
fn user_namespace_with_mappings() {
    if !require_root("user_namespace_with_mappings") {
        return;
    }
    let mut b = Bundle::new("cat /proc/self/uid_map /proc/self/gid_map; id -u");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // The rootfs must belong to the mapped root to be usable.
    crate::common::run(
        std::process::Command::new("chown")
            .args(["-R", "100000:100000"])
            .arg(b.dir.join("rootfs")),
    );
    let out = b.run_ok("u");
    let fields: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(fields[0], ["0", "100000", "65536"]);
    assert_eq!(fields[1], ["0", "100000", "65536"]);
    assert_eq!(fields[2], ["0"]);
}

fn wait_for(cond: impl FnMut() -> bool) {
    assert!(
        crate::common::eventually(10, cond),
        "condition not met within 10s"
    );
}

#[test]
fn joined_namespaces_time_offsets_sysctls_oom_and_no_pivot() {
    if !require_root("joined_namespaces_time_offsets_sysctls_oom_and_no_pivot") {
        return;
    }
    let mut a = Bundle::new("exec sleep 60");
    a.config["hostname"] = json!("box-a");
    a.save();
    a.ok(&["run", "--detach", "--bundle", a.dir.to_str().unwrap(), "a"]);
    let state: serde_json::Value = serde_json::from_str(&a.ok(&["state", "a"])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let host_net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();

    let mut b = Bundle::new(
        "hostname; readlink /proc/self/ns/net; cat /proc/sys/kernel/shm_rmid_forced; \
         cat /proc/self/oom_score_adj; cut -d. -f1 /proc/uptime; ionice -p $$; cut -d' ' -f19,41 /proc/self/stat; uname -m",
    );
    // A hostname would be set in the joined namespace (as runc does): none here.
    b.config.as_object_mut().unwrap().remove("hostname");
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "uts" && n["type"] != "network");
    ns.push(json!({"type": "uts", "path": format!("/proc/{pid}/ns/uts")}));
    ns.push(json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}));
    ns.push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000, "nanosecs": 0}});
    b.config["linux"]["sysctl"] = json!({"kernel.shm_rmid_forced": "1"});
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.save();
    let out = b.out(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().unwrap(),
        "b",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "box-a",
        "joined the uts namespace by path: {text}"
    );
    assert_eq!(
        lines[1],
        host_net.to_string_lossy(),
        "joined the network namespace by path"
    );
    assert_eq!(lines[2], "1", "sysctl set in the container's ipc namespace");
    assert_eq!(lines[3], "500", "oom_score_adj");
    let uptime: u64 = lines[4].parse().unwrap();
    assert!(
        uptime >= 864000,
        "boottime offset of 10 days in the time namespace: {uptime}"
    );
    assert_eq!(lines[5], "idle", "ioPriority: {text}");
    assert_eq!(lines[6], "7 3", "scheduler: nice 7, SCHED_BATCH: {text}");
    assert!(
        matches!(lines[7], "i686" | "armv8l" | "armv7l"),
        "personality LINUX32: {text}"
    );
    // The host's own value is untouched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced")
            .unwrap()
            .trim(),
        "1",
        "sysctl leaked to the host"
    );
    a.ok(&["delete", "--force", "a"]);
}

#[test]
fn kill_and_forced_delete_in_created_and_paused_states() {
    if !require_root("kill_and_forced_delete_in_created_and_paused_states") {
        return;
    }
    let b = Bundle::new("exec sleep 60");
    b.save();
    let bundle = b.dir.to_str().unwrap();
    // created → kill → stopped → delete
    b.ok(&["create", "--bundle", bundle, "k1"]);
    b.ok(&["kill", "k1", "KILL"]);
    wait_for(|| b.status("k1") == "stopped");
    b.ok(&["delete", "k1"]);
    // created → delete --force
    b.ok(&["create", "--bundle", bundle, "k2"]);
    let pid: i64 =
        serde_json::from_str::<serde_json::Value>(&b.ok(&["state", "k2"])).unwrap()["pid"]
            .as_i64()
            .unwrap();
    b.ok(&["delete", "--force", "k2"]);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || b.out(&["state", "k2"]).status.code() != Some(0)
    );
    // running → pause → delete refused, delete --force works on a frozen container
    b.ok(&["run", "--detach", "--bundle", bundle, "k3"]);
    b.ok(&["pause", "k3"]);
    assert_eq!(b.status("k3"), "paused");
    let out = b.out(&["delete", "k3"]);
    assert!(
        !out.status.success(),
        "a paused container is not deleted without --force"
    );
    b.ok(&["delete", "--force", "k3"]);
    assert!(!b.out(&["state", "k3"]).status.success());
    b.assert_clean();
}

#[test]
fn rootfs_propagation_is_applied() {
    if !require_root("rootfs_propagation_is_applied") {
        return;
    }
    let script = "awk '$5 == \"/\" {print ($7 ~ /shared:/) ? \"shared\" : \"not-shared\"}' /proc/self/mountinfo";
    let mut b = Bundle::new(script);
    assert_eq!(
        b.run_ok("p1"),
        "not-shared\n",
        "private by default: nothing propagates to the host"
    );
    b.config["linux"]["rootfsPropagation"] = json!("shared");
    assert_eq!(b.run_ok("p2"), "shared\n");
    b.assert_clean();
}

#[test]
fn exec_into_a_sub_cgroup() {
    if !require_root("exec_into_a_sub_cgroup") {
        return;
    }
    let b = Bundle::new("exec sleep 60");
    b.save();
    b.ok(&["run", "--detach", "--bundle", b.dir.to_str().unwrap(), "sc"]);
    let state: serde_json::Value = serde_json::from_str(&b.ok(&["state", "sc"])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    // The container's cgroup dirs, from its init's /proc/PID/cgroup as the host sees it.
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut made = Vec::new();
    for line in own.lines() {
        let f: Vec<&str> = line.splitn(3, ':').collect();
        let mount = match f[1] {
            "" => "/sys/fs/cgroup/unified".to_string(),
            c => format!("/sys/fs/cgroup/{}", c.trim_start_matches("name=")),
        };
        let dir = std::path::Path::new(&mount)
            .join(f[2].trim_start_matches('/'))
            .join("sub");
        if std::fs::create_dir(&dir).is_ok() {
            // A v1 cpuset cgroup takes no task until it has cpus and mems.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(dir.parent().unwrap().join(f)) {
                    let _ = std::fs::write(dir.join(f), v.trim());
                }
            }
            made.push(dir);
        }
    }
    let out = b.out(&["exec", "--cgroup", "sub", "sc", "cat", "/proc/self/cgroup"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let missing = b.out(&["exec", "--cgroup", "nope", "sc", "true"]);
    b.ok(&["delete", "--force", "sc"]);
    for d in &made {
        let _ = std::fs::remove_dir(d);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().all(|l| l.ends_with("/sub")), "{text}");
    assert_eq!(missing.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such sub-cgroup"));
}

#[test]
fn events_report_an_oom_kill() {
    if !require_root("events_report_an_oom_kill") {
        return;
    }
    // A child goes over the limit and is killed; the container lives on.
    let mut b = Bundle::new("sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; exec sleep 60");
    b.config["linux"]["resources"]["memory"] = json!({"limit": 16 * 1024 * 1024});
    b.save();
    b.ok(&[
        "run",
        "--detach",
        "--bundle",
        b.dir.to_str().unwrap(),
        "oomev",
    ]);
    let mut child = b
        .kiln(&["events", "--interval", "200ms", "oomev"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("\"type\":\"oom\""))
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    b.ok(&["delete", "--force", "oomev"]);
    let line = reader.join().unwrap();
    assert!(
        line.is_some_and(|l| l.contains("\"id\":\"oomev\"")),
        "no oom event"
    );
}

#[test]
fn seccomp_from_the_config_filters_inside_the_container() {
    if !require_root("seccomp_from_the_config_filters_inside_the_container") {
        return;
    }
    let mut b = Bundle::new(
        "grep '^Seccomp:' /proc/self/status; mkdir /tmp/d 2>&1 || echo refused; touch /tmp/f && echo touched",
    );
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let out = b.run_ok("sc1");
    assert!(out.starts_with("Seccomp:\t2\n"), "filter mode: {out}");
    assert!(
        out.contains("Operation not permitted") && out.contains("refused"),
        "{out}"
    );
    assert!(out.ends_with("touched\n"), "other calls pass: {out}");
}

/// kiln hands over to the process through kiln-dmz with execveat; a profile
/// that forbids execveat (but not execve) still gets its process started.
#[test]
fn a_seccomp_profile_without_execveat_still_starts_the_process() {
    if !require_root("a_seccomp_profile_without_execveat_still_starts_the_process") {
        return;
    }
    let mut b = Bundle::new("echo started; ls /proc/self/exe >/dev/null && echo has-proc");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    assert_eq!(b.run_ok("sc2"), "started\nhas-proc\n");
}
