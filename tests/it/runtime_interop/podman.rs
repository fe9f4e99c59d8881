//! podman (through conmon) with kiln as its OCI runtime.

use super::*;

/// Hides the host's containers/image caches behind a tmpfs, then runs podman.
const PODMAN_NS: &str = r#"d=/var/lib/containers; [ -d "$d" ] || d=/var/lib
mount -t tmpfs -o mode=0700 kiln-runtime-interop "$d" && exec "$@""#;

/// A hermetic podman whose OCI runtime is kiln; dropping it cleans up.
struct Podman<'e> {
    env: &'e Env,
    dir: PathBuf,
    /// The cgroup parent given to `podman run`, under every hierarchy's root.
    cgroup: String,
}

impl<'e> Podman<'e> {
    fn new(env: &'e Env) -> Self {
        let dir = env.path("podman");
        for sub in ["bin", "tmp", "home", "peer-tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        crate::common::write_podman_config(&dir);
        // The runtime is the kiln binary; a wrapper gives it a state root in the
        // test's directory, because conmon's exit command (`podman container
        // cleanup`) does not pass on --runtime-flag.
        write_script(
            &dir.join("bin/kiln"),
            &format!("exec {KILN} --root {} \"$@\"", s(&dir.join("kiln-state"))),
        );
        Self {
            cgroup: cgroup_name(env, "podman"),
            env,
            dir,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = |rel: &str| self.dir.join(rel);
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", PODMAN_NS, "sh", "podman"]);
        c.env("HOME", d("home"))
            .env("XDG_DATA_HOME", d("home/share"))
            .env("TMPDIR", d("peer-tmp"));
        crate::common::podman_args(&mut c, &self.dir, &d("bin/kiln")).args(args);
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.cmd(args))
    }

    fn out(&self, args: &[&str]) -> Output {
        output(&mut self.cmd(args))
    }

    /// `podman run --rm` of the busybox image with ARGS as its command, hermetic flags added.
    fn run(&self, flags: &[&str], args: &[&str]) -> Output {
        let parent = format!("/{}", self.cgroup);
        let mut all = vec!["run", "--network", "none", "--cgroup-parent", &parent];
        all.extend_from_slice(flags);
        all.push("localhost/bb:latest");
        all.extend_from_slice(args);
        self.out(&all)
    }

    fn load_busybox(&self) {
        let img = busybox_archive(self.env);
        let policy = self.dir.join("policy.json");
        let loaded = self.ok(&["load", "--signature-policy", s(&policy), "-i", s(&img)]);
        assert!(loaded.contains("localhost/bb:latest"), "{loaded}");
    }

    fn kiln_state(&self) -> PathBuf {
        self.dir.join("kiln-state")
    }

    /// What podman and kiln leave behind: mounts, processes, cgroups, kiln state.
    fn leftovers(&self) -> Vec<String> {
        let mut out = mounts_under(self.env.tmp.path());
        let pids = cgroup_processes(&self.cgroup);
        out.extend(pids.iter().map(|p| format!("process {p}")));
        out.extend(
            cgroup_dirs(&self.cgroup)
                .iter()
                .map(|d| d.display().to_string()),
        );
        let state = state_entries(&self.kiln_state());
        out.extend(state.iter().map(|e| format!("kiln state {e}")));
        out
    }

    /// Removes containers, waits for conmon (then ends stragglers by pid),
    /// unmounts, and removes our cgroups. Safe to call more than once.
    fn cleanup(&self) {
        let _ = self.out(&["rm", "--all", "--force", "--time", "0"]);
        eventually(20, || cgroup_processes(&self.cgroup).is_empty());
        kill_all(&cgroup_processes(&self.cgroup));
        eventually(5, || cgroup_processes(&self.cgroup).is_empty());
        for m in mounts_under(self.env.tmp.path()) {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for top in cgroup_dirs(&self.cgroup) {
            remove_cgroup(&top);
        }
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        self.cleanup();
    }
}

#[test]
fn podman_runs_kiln_as_its_runtime() {
    let t = "podman_runs_kiln_as_its_runtime";
    if !can_run(t, &["podman", "conmon"]) {
        return;
    }
    let env = Env::new();
    let podman = Podman::new(&env);
    podman.load_busybox();

    let out = podman.run(&["--rm"], &["echo", "hi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");

    // The container's exit status passes through podman.
    let out = podman.run(&["--rm"], &["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // kiln's 127 and 126 reach podman, which reports them as its own.
    let out = podman.run(&["--rm"], &["no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
    let out = podman.run(&["--rm"], &["/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));

    // run -t: kiln hands the pty master to conmon over --console-socket.
    let out = podman.run(&["--rm", "-t"], &["sh", "-c", "tty; echo $((6*7))"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "/dev/pts/0\r\n42\r\n");

    // --read-only: podman mounts tmpfs with runc's `tmpcopyup` on /run, /tmp
    // and /var/tmp; --tmpfs asks for it too, so /etc keeps its files.
    let script = "touch /x 2>/dev/null && echo root-writable; touch /tmp/y && echo tmp-ok";
    let out = podman.run(&["--rm", "--read-only"], &["sh", "-c", script]);
    assert_eq!(text(&out.stdout), "tmp-ok\n", "{}", text(&out.stderr));
    let out = podman.run(
        &["--rm", "--tmpfs", "/etc"],
        &["sh", "-c", "grep -c root /etc/passwd"],
    );
    assert_eq!(text(&out.stdout), "1\n", "{}", text(&out.stderr));

    // A user namespace: init opens the exec fifo as the container's root, and
    // the cgroup v1 hierarchies it may not mount are bound from its own cgroups.
    let map = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"];
    let script = "tr -s ' ' < /proc/self/uid_map; ls /sys/fs/cgroup | grep -c .";
    let out = podman.run(&[&["--rm"][..], &map].concat(), &["sh", "-c", script]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = text(&out.stdout);
    assert!(got.starts_with(" 0 100000 65536\n"), "{got:?}");
    assert_ne!(
        got.lines().nth(1),
        Some("0"),
        "no cgroup hierarchies: {got:?}"
    );

    podman.cleanup();
    assert_eq!(podman.leftovers(), Vec::<String>::new(), "left behind");
}

#[test]
fn podman_drives_a_detached_kiln_container() {
    let t = "podman_drives_a_detached_kiln_container";
    if !can_run(t, &["podman", "conmon"]) {
        return;
    }
    let env = Env::new();
    let podman = Podman::new(&env);
    podman.load_busybox();
    let script = r#"trap 'echo usr1 >> /tmp/signals' USR1; trap 'exit 0' TERM
while :; do sleep 0.1; done"#;
    let out = podman.run(&["-d", "--name", "c1"], &["sh", "-c", script]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = || podman.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(status().starts_with("c1 Up"), "{}", status());

    // exec: output and exit status, and with -t a pty over --console-socket.
    assert_eq!(
        podman.ok(&["exec", "c1", "sh", "-c", "echo $((6*7))"]),
        "42\n"
    );
    let out = podman.out(&["exec", "c1", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let tty = podman.ok(&["exec", "-t", "c1", "tty"]);
    assert!(tty.starts_with("/dev/pts/"), "{tty:?}");
    let out = podman.out(&["exec", "c1", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));

    // kill passes the signal to the container's init.
    podman.ok(&["kill", "-s", "USR1", "c1"]);
    assert!(
        eventually(10, || {
            let out = podman.out(&["exec", "c1", "cat", "/tmp/signals"]);
            text(&out.stdout) == "usr1\n"
        }),
        "USR1 never reached the container"
    );

    // pause and unpause freeze and thaw it.
    podman.ok(&["pause", "c1"]);
    assert!(status().starts_with("c1 Paused"), "{}", status());
    podman.ok(&["unpause", "c1"]);
    assert!(status().starts_with("c1 Up"), "{}", status());

    // stop: SIGTERM, which the trap turns into exit 0 well before the SIGKILL.
    let start = Instant::now();
    podman.ok(&["stop", "-t", "30", "c1"]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "stop fell back to SIGKILL"
    );
    let code = || podman.ok(&["inspect", "--format", "{{.State.ExitCode}}", "c1"]);
    assert_eq!(code().trim(), "0");

    // Started again, then killed (SIGKILL): 137.
    podman.ok(&["start", "c1"]);
    assert!(status().starts_with("c1 Up"), "{}", status());
    podman.ok(&["kill", "c1"]);
    assert!(
        eventually(10, || status().starts_with("c1 Exited (137)")),
        "{}",
        status()
    );
    podman.ok(&["rm", "c1"]);
    assert_eq!(state_entries(&podman.kiln_state()), Vec::<String>::new());

    podman.cleanup();
    assert_eq!(podman.leftovers(), Vec::<String>::new(), "left behind");
}
