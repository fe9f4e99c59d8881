//! containerd (through its io.containerd.runc.v2 shim) with kiln as its runc.

use super::*;

/// A private containerd (see the module docs); dropping it ends it, its shims
/// and containers, and removes its cgroups.
struct Containerd<'e> {
    env: &'e Env,
    dir: PathBuf,
    daemon: Child,
    /// The parent of every container's cgroup path.
    cgroup: String,
}

/// Runs containerd in a private mount namespace with a tmpfs for its shims' sockets.
const CONTAINERD_NS: &str = r#"d=/run/containerd; [ -d "$d" ] || d=/run
mount -t tmpfs -o mode=0711 kiln-runtime-interop "$d" && exec "$@""#;

/// overlayfs, unless `dir` is itself on overlayfs (which cannot be an upper
/// layer): then the native snapshotter, which copies.
fn snapshotter(dir: &Path) -> &'static str {
    use nix::sys::statfs::{OVERLAYFS_SUPER_MAGIC, statfs};
    match statfs(dir) {
        Ok(fs) if fs.filesystem_type() == OVERLAYFS_SUPER_MAGIC => "native",
        _ => "overlayfs",
    }
}

impl<'e> Containerd<'e> {
    fn start(env: &'e Env) -> Self {
        let dir = env.path("containerd");
        fs::create_dir_all(dir.join("fifo")).unwrap();
        let p = |rel: &str| s(&dir.join(rel)).to_string();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = p("root"),
            state = p("state"),
            sock = p("containerd.sock"),
            opt = p("opt"),
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", CONTAINERD_NS, "sh", "containerd"])
            .args(["--config", &p("config.toml")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Self {
            cgroup: cgroup_name(env, "containerd"),
            env,
            dir,
            daemon,
        };
        let up = eventually(30, || {
            c.ctr(&["version"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        assert!(up, "containerd did not start: {}", c.log());
        c
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.env("CONTAINERD_SNAPSHOTTER", snapshotter(&self.dir))
            .args(["--address", s(&self.dir.join("containerd.sock"))])
            .args(args);
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.ctr(args))
    }

    fn out(&self, args: &[&str]) -> Output {
        output(&mut self.ctr(args))
    }

    fn kiln_state(&self) -> PathBuf {
        self.dir.join("kiln-state")
    }

    /// The flags that make `ctr run` use kiln, with our fifo dir and cgroup.
    fn run_flags(&self, id: &str) -> Vec<String> {
        vec![
            "--fifo-dir".into(),
            s(&self.dir.join("fifo")).into(),
            "--runc-binary".into(),
            KILN.into(),
            "--runc-root".into(),
            s(&self.kiln_state()).into(),
            "--cgroup".into(),
            format!("/{}/{id}", self.cgroup),
        ]
    }

    /// `ctr run FLAGS [run_flags] bb:latest ID ARGS…`
    fn run(&self, flags: &[&str], id: &str, args: &[&str]) -> Command {
        let mut c = self.ctr(&["run"]);
        c.args(flags)
            .args(self.run_flags(id))
            .args(["bb:latest", id])
            .args(args);
        c
    }

    /// The same `ctr run` as a shell command line (for script(1)).
    fn run_line(&self, flags: &[&str], id: &str, args: &[&str]) -> String {
        let cmd = self.run(flags, id, args);
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn import_busybox(&self) {
        let img = busybox_archive(self.env);
        let out = self.ok(&["images", "import", s(&img)]);
        assert!(out.contains("bb:latest"), "{out}");
    }

    /// The task's status as `ctr task ls` shows it.
    fn task_status(&self, id: &str) -> String {
        self.ok(&["task", "ls"])
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    }

    /// Processes of ours: containerd, its shims (they name our socket), containers.
    fn processes(&self) -> Vec<i32> {
        let mut pids = processes_mentioning(s(&self.dir.join("containerd.sock")));
        pids.extend(cgroup_processes(&self.cgroup));
        pids.sort();
        pids.dedup();
        pids
    }

    fn leftovers(&self) -> Vec<String> {
        let mut out = mounts_under(self.env.tmp.path());
        out.extend(self.processes().iter().map(|p| format!("process {p}")));
        out.extend(
            cgroup_dirs(&self.cgroup)
                .iter()
                .map(|d| d.display().to_string()),
        );
        let state = state_entries(&self.kiln_state().join("default"));
        out.extend(state.iter().map(|e| format!("kiln state {e}")));
        out
    }

    /// Removes every task and container, ends containerd and then any shim
    /// or container process by pid, and removes our cgroups.
    fn stop(&mut self) {
        if matches!(self.daemon.try_wait(), Ok(None)) {
            let ids = self.out(&["containers", "ls", "-q"]);
            for id in text(&ids.stdout).lines() {
                let _ = self.out(&["task", "rm", "--force", id]);
                let _ = self.out(&["containers", "rm", id]);
            }
            let _ = kill(Pid::from_raw(self.daemon.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Shims outlive containerd by design; ours and their containers end here.
        eventually(5, || self.processes().is_empty());
        kill_all(&self.processes());
        eventually(5, || self.processes().is_empty());
        for top in cgroup_dirs(&self.cgroup) {
            remove_cgroup(&top);
        }
    }
}

impl Drop for Containerd<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn containerd_runs_kiln_as_its_runtime() {
    let t = "containerd_runs_kiln_as_its_runtime";
    if !can_run(
        t,
        &["containerd", "ctr", "containerd-shim-runc-v2", "script"],
    ) {
        return;
    }
    let env = Env::new();
    let mut ctrd = Containerd::start(&env);
    ctrd.import_busybox();

    let out = output(&mut ctrd.run(&["--rm"], "t1", &["echo", "hi"]));
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        ctrd.log()
    );
    assert_eq!(text(&out.stdout), "hi\n");

    let out = output(&mut ctrd.run(&["--rm"], "t2", &["sh", "-c", "exit 5"]));
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));

    // The shim reads why create failed from kiln's --log (runc's JSON lines).
    let out = output(&mut ctrd.run(&["--rm"], "t3", &["no-such-command"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("OCI runtime create failed")
            && err.contains("\"no-such-command\": executable file not found"),
        "{err}"
    );
    let _ = ctrd.out(&["containers", "rm", "t3"]);

    // -t: kiln sends the pty master to the shim's --console-socket; ctr
    // itself needs a terminal, which script(1) provides.
    let line = ctrd.run_line(&["--rm", "-t"], "t4", &["sh", "-c", "tty; echo $((6*7))"]);
    let out = output(Command::new("script").args(["-qec", &line, "/dev/null"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = text(&out.stdout);
    assert!(
        got.contains("/dev/pts/0\r") && got.contains("42\r"),
        "{got:?}"
    );

    ctrd.stop();
    assert_eq!(ctrd.leftovers(), Vec::<String>::new(), "left behind");
}

#[test]
fn containerd_drives_a_detached_kiln_container() {
    let t = "containerd_drives_a_detached_kiln_container";
    if !can_run(t, &["containerd", "ctr", "containerd-shim-runc-v2"]) {
        return;
    }
    let env = Env::new();
    let mut ctrd = Containerd::start(&env);
    ctrd.import_busybox();
    let script = "trap 'exit 0' TERM; while :; do sleep 0.1; done";
    ok(&mut ctrd.run(&["-d"], "d1", &["sh", "-c", script]));
    assert_eq!(ctrd.task_status("d1"), "RUNNING");

    // task ps goes through `kiln ps --format json`.
    let ps = ctrd.ok(&["task", "ps", "d1"]);
    let init: i32 = ps
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(init > 0, "{ps}");

    // task exec goes through `kiln exec --process … --detach --pid-file`.
    let fifo = s(&ctrd.dir.join("fifo")).to_string();
    let exec = |id: &str, args: &[&str]| {
        let mut c = ctrd.ctr(&["task", "exec", "--fifo-dir", &fifo, "--exec-id", id, "d1"]);
        output(c.args(args))
    };
    let out = exec("e1", &["sh", "-c", "echo $((6*7)); exit 3"]);
    assert_eq!(text(&out.stdout), "42\n");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = exec("e2", &["no-such-command"]);
    assert!(
        text(&out.stderr).contains("OCI runtime exec failed"),
        "{}",
        text(&out.stderr)
    );

    ctrd.ok(&["task", "pause", "d1"]);
    assert_eq!(ctrd.task_status("d1"), "PAUSED");
    ctrd.ok(&["task", "resume", "d1"]);
    assert_eq!(ctrd.task_status("d1"), "RUNNING");

    // kill --all with SIGTERM: the trap exits 0.
    ctrd.ok(&["task", "kill", "--all", "d1"]);
    assert!(eventually(10, || ctrd.task_status("d1") == "STOPPED"));
    // A stopped task takes no signal; the shim tells that from a failure by
    // kiln's runc-worded error.
    let out = ctrd.out(&["task", "kill", "d1"]);
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
    ctrd.ok(&["task", "rm", "d1"]);
    ctrd.ok(&["containers", "rm", "d1"]);
    assert_eq!(
        state_entries(&ctrd.kiln_state().join("default")),
        Vec::<String>::new()
    );

    ctrd.stop();
    assert_eq!(ctrd.leftovers(), Vec::<String>::new(), "left behind");
}
