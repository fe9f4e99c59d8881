//! `kiln run IMAGE`: an image becomes a bundle on an overlay of the cached
//! layers and runs through the engine; checked from inside the container and
//! through the CLI.

use crate::common::{Env, eventually, require_root};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A store with a busybox image `bb`, and a state root of its own.
struct Scene {
    env: Env,
}

impl Scene {
    fn new() -> Self {
        let env = Env::new();
        env.busybox_image("bb");
        Self { env }
    }

    fn state(&self) -> PathBuf {
        self.env.path("state")
    }

    fn kiln(&self, args: &[&str]) -> Command {
        let mut c = self.env.kiln(&["--root", self.state().to_str().unwrap()]);
        c.args(args);
        c
    }

    /// Runs to completion with stdout/stderr through files: a detached
    /// container inherits them, and a pipe would stay open while it lives.
    fn out(&self, args: &[&str]) -> Output {
        crate::common::output_via_files(&self.env, &mut self.kiln(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.out(args);
        assert!(
            out.status.success(),
            "kiln {args:?} failed ({:?}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kiln run ARGS… bb -- sh -c SCRIPT`, asserting success.
    fn sh(&self, flags: &[&str], script: &str) -> String {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb", "--", "sh", "-c", script]);
        self.ok(&args)
    }

    /// The store's extracted layer directories.
    fn extracted_layers(&self) -> Vec<PathBuf> {
        let rd = std::fs::read_dir(self.env.store().join("layers/sha256")).unwrap();
        rd.flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect()
    }

    /// The container directories in the store (not the pool of ones kept
    /// for reuse, `@used` and `@free`).
    fn containers(&self) -> Vec<String> {
        std::fs::read_dir(self.env.store().join("containers"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('@'))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.state()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.out(&["delete", "--force", &id]);
            }
        }
    }
}

#[test]
fn run_image_passes_status_env_and_config_through() {
    if !require_root("run_image_passes_status_env_and_config_through") {
        return;
    }
    let s = Scene::new();
    let env_file = s.env.path("app.env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=1\nBOTH=file\n").unwrap();
    let out = s.sh(
        &["-e", "BOTH=flag", "--env-file", env_file.to_str().unwrap()],
        "echo $FROM_FILE $BOTH; echo $PATH; hostname; id -u; echo $HOME",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1 flag", "-e overrides --env-file: {out}");
    assert!(lines[1].contains("/bin"), "image env: {out}");
    assert!(
        lines[2].starts_with("kiln-"),
        "hostname is the container name: {out}"
    );
    assert_eq!(lines[3], "0");
    assert_eq!(lines[4], "/root", "HOME from the image's /etc/passwd");

    let out = s.out(&["run", "bb", "--", "sh", "-c", "exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    let out = s.out(&["run", "bb", "--", "/no/such"]);
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.out(&["run", "no-such-image"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-image"));
    // Bad flags fail before anything runs, and leave no container directory.
    for (flags, says) in [
        (["--net", "bogus"], "--net bogus"),
        (["--user", "nosuch"], "nosuch"),
        (["--memory", "lots"], "lots"),
    ] {
        let mut args = vec!["run"];
        args.extend(flags);
        args.extend(["bb", "true"]);
        let out = s.out(&args);
        assert_eq!(out.status.code(), Some(125), "{flags:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        s.containers().is_empty(),
        "--rm is the default: {:?}",
        s.containers()
    );
}

#[test]
fn run_image_reuses_extracted_layers_on_an_overlay() {
    if !require_root("run_image_reuses_extracted_layers_on_an_overlay") {
        return;
    }
    let s = Scene::new();
    let out = s.sh(
        &[],
        "echo changed > /etc/motd; grep ' / ' /proc/self/mounts | cut -d' ' -f3",
    );
    assert_eq!(out, "overlay\n");
    let extracted = || s.extracted_layers();
    let layer = extracted().remove(0);
    let before = std::fs::metadata(&layer).unwrap();
    // A second run extracts nothing and sees the image as it was.
    let out = s.sh(&[], "cat /etc/motd 2>/dev/null || echo pristine");
    assert_eq!(out, "pristine\n");
    let after = std::fs::metadata(&layer).unwrap();
    assert_eq!(
        (before.ino(), before.mtime(), before.ctime()),
        (after.ino(), after.mtime(), after.ctime()),
        "the cached layer was not extracted again"
    );
    assert_eq!(extracted().len(), 1);
    // From the third container on, each gets the directory of the one two
    // runs before, emptied (while the one in between ran): it sees nothing
    // that one wrote, and no directory is made any more.
    let parked = || -> std::collections::BTreeSet<u64> {
        ["@free", "@used"]
            .iter()
            .flat_map(|stage| std::fs::read_dir(s.env.store().join("containers").join(stage)))
            .flatten()
            .flatten()
            .map(|e| e.metadata().unwrap().ino())
            .collect()
    };
    let dirs = parked();
    assert_eq!(dirs.len(), 2, "the first two containers' directories");
    for _ in 0..3 {
        let out = s.sh(
            &[],
            "ls /w 2>/dev/null || echo no-w; mkdir -p /w && echo 1 > /w/f",
        );
        assert_eq!(out, "no-w\n");
        assert_eq!(parked(), dirs, "the same two directories, reused");
    }
}

#[test]
fn run_image_limits_volumes_user_and_network() {
    if !require_root("run_image_limits_volumes_user_and_network") {
        return;
    }
    let s = Scene::new();
    let host = s.env.path("vol");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from-host\n").unwrap();
    // The container's user 1000 writes into it.
    crate::common::run(Command::new("chmod").arg("777").arg(&host));
    let ro = format!("{}:/ro:ro", host.display());
    let rw = format!("{}:/rw", host.display());
    let script = "cat /ro/in; touch /ro/x 2>/dev/null || echo ro-refused; echo w > /rw/out; \
                  touch /rootfile 2>/dev/null || echo root-ro; touch /tmp/t /var/tmp/t /run/t && echo tmp-rw; id -u; id -g; ls /sys/class/net | tr '\\n' ' '";
    let out = s.sh(
        &[
            "-v",
            &ro,
            "-v",
            &rw,
            "--read-only",
            "--user",
            "1000:1000",
            "--net",
            "none",
        ],
        script,
    );
    assert_eq!(
        out, "from-host\nro-refused\nroot-ro\ntmp-rw\n1000\n1000\nlo ",
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "w\n");

    // Limits land in the container's cgroup, read from inside.
    let out = s.sh(
        &["--memory", "64m", "--pids", "50", "--cpus", "0.5"],
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max 2>/dev/null || \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
             /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
    );
    let v: Vec<&str> = out.split_whitespace().collect();
    assert!(
        v == ["67108864", "50", "50000", "100000"],
        "memory, pids and cpu limits as the container sees them: {out}"
    );

    let host_net = s.sh(&["--net", "host"], "ls /sys/class/net | wc -l");
    let host_count = std::fs::read_dir("/sys/class/net").unwrap().count();
    assert_eq!(host_net.trim(), host_count.to_string());
}

#[test]
fn run_image_process_types_from_the_image_label() {
    if !require_root("run_image_process_types_from_the_image_label") {
        return;
    }
    let env = Env::new();
    let rootfs = env.busybox_rootfs();
    let label = r#"run.kiln.process-types={"web":"echo web $PORT","worker":"echo working"}"#;
    env.ok(&[
        "image",
        "from-dir",
        rootfs.to_str().unwrap(),
        "--name",
        "app",
        "--label",
        label,
        "-e",
        "PORT=5000",
    ]);
    let s = Scene { env };
    assert_eq!(s.ok(&["run", "--process", "worker", "app"]), "working\n");
    assert_eq!(s.ok(&["run", "--process", "web", "app"]), "web 5000\n");
    // Without --process or a command, the "web" type runs (the Procfile convention).
    assert_eq!(s.ok(&["run", "app"]), "web 5000\n");
    let out = s.out(&["run", "--process", "nope", "app"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn detached_containers_are_listed_entered_and_removed() {
    if !require_root("detached_containers_are_listed_entered_and_removed") {
        return;
    }
    let s = Scene::new();
    let id = s.ok(&[
        "run", "-d", "--name", "app1", "--memory", "32m", "bb", "--", "sleep", "60",
    ]);
    assert_eq!(id.trim(), "app1");
    let list = s.ok(&["list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("app1") && l.contains("running")),
        "{list}"
    );
    // exec by name: same namespaces and cgroup as the container.
    let inside = s.ok(&[
        "exec",
        "app1",
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/cgroup | sort | md5sum",
    ]);
    let init = s.ok(&[
        "exec",
        "app1",
        "sh",
        "-c",
        "cat /proc/1/cgroup | sort | md5sum",
    ]);
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(lines[0], "app1");
    assert!(
        lines[1].contains("sleep 60") || lines[1].contains("kiln-init"),
        "{inside}"
    );
    assert_eq!(lines[2], init.trim(), "exec joins the container's cgroup");
    let out = s.out(&["run", "-d", "--name", "app1", "bb", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "names are unique");
    s.ok(&["kill", "app1", "KILL"]);
    assert!(
        eventually(10, || s.ok(&["state", "app1"]).contains("\"stopped\"")),
        "app1 never stopped"
    );
    s.ok(&["delete", "app1"]);
    assert!(
        s.containers().is_empty(),
        "delete removes the container's directory: {:?}",
        s.containers()
    );
}

#[test]
fn foreground_run_forwards_signals_and_reaps_zombies() {
    if !require_root("foreground_run_forwards_signals_and_reaps_zombies") {
        return;
    }
    let s = Scene::new();
    // Orphans re-parent to kiln's init, which reaps them: no zombie remains.
    let out = s.sh(
        &[],
        "sh -c 'sleep 0.2 &' ; sleep 0.5; ps -o stat,comm | grep -c '^Z' || true",
    );
    assert_eq!(out.trim(), "0", "zombies left: {out}");
    // kiln's init is the kiln binary; non-dumpable, it keeps that binary out
    // of the container's reach (CVE-2019-5736).
    let out = s.sh(
        &[],
        "cat /proc/1/comm; cat /proc/1/exe >/dev/null 2>&1 || echo denied",
    );
    assert_eq!(out, "kiln-init\ndenied\n");
    // SIGTERM to kiln reaches the process, whose status becomes kiln's.
    let ready = s.env.path("ready");
    let mut child = s
        .kiln(&[
            "run",
            "-v",
            &format!("{}:/x", s.env.path("").display()),
            "bb",
            "--",
            "sh",
            "-c",
            "trap 'exit 3' TERM; touch /x/ready; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(10, || ready.exists()), "container never started");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3));
    assert!(s.containers().is_empty());
}

#[test]
fn run_with_a_terminal_is_interactive_in_the_foreground() {
    if !require_root("run_with_a_terminal_is_interactive_in_the_foreground")
        || !crate::common::require_tool(
            "run_with_a_terminal_is_interactive_in_the_foreground",
            "script",
        )
    {
        return;
    }
    let s = Scene::new();
    // script(1) gives kiln a terminal of its own, as a user's shell would.
    let kiln = format!(
        "{} --store {} --root {}",
        env!("CARGO_BIN_EXE_kiln"),
        s.env.store().display(),
        s.state().display()
    );
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{kiln} run -t bb -- sh -c 'tty; exit 3'"),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "the process has a pty: {text}");
    assert_eq!(out.status.code(), Some(3), "{text}");

    // Typed input reaches an interactive shell; its output comes back.
    let mut child = Command::new("script")
        .args(["-qec", &format!("{kiln} run -t bb"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo $((6*7))\nexit 5\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("42"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(s.containers().is_empty());
}

#[test]
fn cgroup_parent_places_the_container_cgroup() {
    if !require_root("cgroup_parent_places_the_container_cgroup") {
        return;
    }
    let s = Scene::new();
    let parent = format!("kiln-test-parent-{}", std::process::id());
    s.ok(&[
        "run",
        "-d",
        "--name",
        "cg1",
        "--cgroup-parent",
        &format!("/{parent}"),
        "bb",
        "--",
        "sleep",
        "60",
    ]);
    // Every hierarchy kiln used holds the container's cgroup under the parent.
    let dirs: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path().join(&parent).join("kiln-cg1"))
        .filter(|p| p.is_dir())
        .collect();
    let unified = std::path::Path::new("/sys/fs/cgroup")
        .join(&parent)
        .join("kiln-cg1");
    let found = !dirs.is_empty() || unified.is_dir();
    let procs = dirs
        .first()
        .cloned()
        .unwrap_or(unified.clone())
        .join("cgroup.procs");
    let pids = std::fs::read_to_string(&procs).unwrap_or_default();
    s.ok(&["delete", "--force", "cg1"]);
    for d in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(d.path().join(&parent));
    }
    let _ = std::fs::remove_dir(std::path::Path::new("/sys/fs/cgroup").join(&parent));
    assert!(found, "no cgroup {parent}/kiln-cg1 in any hierarchy");
    assert!(
        !pids.trim().is_empty(),
        "the container's processes are in {}",
        procs.display()
    );
}

#[test]
fn rootless_run_as_an_unprivileged_user() {
    if !require_root("rootless_run_as_an_unprivileged_user") {
        return;
    }
    // An image file, and a store and state dir that nobody (65534) owns.
    let s = Scene::new();
    let img = s.env.path("app.img");
    s.ok(&["image", "export", "bb", "-o", img.to_str().unwrap()]);
    let home = tempfile::Builder::new()
        .prefix("kiln-rootless-")
        .tempdir()
        .unwrap();
    std::fs::copy(&img, home.path().join("app.img")).unwrap();
    crate::common::run(
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(home.path()),
    );
    use std::os::unix::process::CommandExt;
    let run = |script: &str| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["run", home.path().join("app.img").to_str().unwrap(), "--"])
            .args(["sh", "-c", script])
            .env("KILN_STORE", home.path().join("store"))
            .env("XDG_RUNTIME_DIR", home.path().join("run"))
            .env_remove("HOME")
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run("id -u; cat /proc/self/uid_map; echo w > /f && cat /f");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0"], "root inside: {text}");
    assert_eq!(
        lines[1],
        ["0", "65534", "1"],
        "mapped to the caller outside: {text}"
    );
    assert_eq!(lines[2], ["w"]);
    let containers = home.path().join("store/containers");
    let left = || -> Vec<_> {
        let mut names: Vec<_> = std::fs::read_dir(&containers)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    assert_eq!(left(), ["@used"], "the container's directory is parked");
    // The next run empties it while its own container runs: overlayfs's
    // work files (owner-only, even mode 000) included.
    let out = run("cat /f 2>/dev/null || echo no-f");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no-f\n");
    assert_eq!(left(), ["@free", "@used"]);
    let parked = std::fs::read_dir(containers.join("@free"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for sub in ["rootfs", "upper", "work"] {
        let n = std::fs::read_dir(parked.join(sub)).unwrap().count();
        assert_eq!(n, 0, "{sub} is empty");
    }
}

#[test]
fn without_overlayfs_the_root_is_a_private_copy() {
    if !require_root("without_overlayfs_the_root_is_a_private_copy") {
        return;
    }
    let s = Scene::new();
    let run = |script: &str| {
        let mut cmd = s.kiln(&["run", "bb", "--", "sh", "-c", script]);
        cmd.env("KILN_OVERLAY", "0");
        let out = crate::common::output_via_files(&s.env, &mut cmd);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let out = run(
        "grep ' / ' /proc/self/mounts | cut -d' ' -f3; echo changed > /etc/motd; cat /etc/motd",
    );
    assert!(!out.starts_with("overlay"), "{out}");
    assert!(out.ends_with("changed\n"), "{out}");
    // The change stayed in that container's copy.
    assert_eq!(
        run("cat /etc/motd 2>/dev/null || echo pristine"),
        "pristine\n"
    );
    assert!(s.containers().is_empty(), "{:?}", s.containers());
}

#[test]
fn gc_keeps_the_layers_of_a_running_container() {
    if !require_root("gc_keeps_the_layers_of_a_running_container") {
        return;
    }
    let s = Scene::new();
    s.ok(&["run", "-d", "--name", "g1", "bb", "--", "sleep", "60"]);
    s.ok(&["image", "rm", "bb"]);
    s.ok(&["gc"]);
    let extracted = || s.extracted_layers().len();
    assert_eq!(extracted(), 1, "the running container's layer stays");
    assert!(!s.ok(&["exec", "g1", "cat", "/etc/hostname"]).is_empty());
    s.ok(&["delete", "--force", "g1"]);
    let used = s.env.store().join("containers/@used");
    assert_eq!(
        std::fs::read_dir(&used).unwrap().count(),
        1,
        "g1's dir is parked"
    );
    s.ok(&["gc"]);
    assert_eq!(extracted(), 0, "unused once the container is gone");
    assert_eq!(
        std::fs::read_dir(&used).unwrap().count(),
        0,
        "gc empties the pool"
    );
}

/// Regression: kiln's runtime ignores SIGPIPE, and ignored signals survive
/// exec; the container's processes must start with none ignored.
#[test]
fn regression_container_processes_start_with_no_signal_ignored() {
    if !require_root("regression_container_processes_start_with_no_signal_ignored") {
        return;
    }
    let s = Scene::new();
    let status = s.ok(&["run", "bb", "--", "grep", "SigIgn", "/proc/self/status"]);
    assert_eq!(status.trim(), "SigIgn:\t0000000000000000");
    // `yes` ends by SIGPIPE, quietly, once `head` has its line.
    let out = s.out(&["run", "bb", "--", "sh", "-c", "yes | head -1"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\n");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.ok(&["run", "-d", "--name", "sig", "bb", "--", "sleep", "60"]);
    let status = s.ok(&["exec", "sig", "grep", "SigIgn", "/proc/self/status"]);
    assert_eq!(status.trim(), "SigIgn:\t0000000000000000");
    s.ok(&["delete", "--force", "sig"]);
}

#[test]
fn etc_hostname_hosts_and_resolv_conf_name_the_container() {
    if !require_root("etc_hostname_hosts_and_resolv_conf_name_the_container") {
        return;
    }
    let s = Scene::new();
    let out = s.ok(&["run", "--name", "named", "bb", "--", "sh", "-c", "cat /etc/hostname; grep -c named /etc/hosts; grep -c localhost /etc/hosts; test -e /etc/resolv.conf || echo no-dns"]);
    assert_eq!(
        out, "named\n1\n2\nno-dns\n",
        "a private network has no resolver"
    );
    let out = s.ok(&[
        "run",
        "--net",
        "host",
        "bb",
        "--",
        "cat",
        "/etc/resolv.conf",
    ]);
    if let Ok(host) = std::fs::read_to_string("/etc/resolv.conf") {
        assert_eq!(out, host, "the host's network, the host's resolver");
    }
}

#[test]
fn a_missing_working_directory_is_made() {
    if !require_root("a_missing_working_directory_is_made") {
        return;
    }
    let env = Env::new();
    let rootfs = env.busybox_rootfs();
    env.ok(&[
        "image",
        "from-dir",
        rootfs.to_str().unwrap(),
        "--name",
        "wd",
        "--workdir",
        "/app/sub",
    ]);
    let s = Scene { env };
    assert_eq!(s.ok(&["run", "wd", "--", "pwd"]), "/app/sub\n");
    assert_eq!(
        s.ok(&["run", "--read-only", "wd", "--", "pwd"]),
        "/app/sub\n"
    );
}

#[test]
fn named_users_get_home_and_groups_from_the_image() {
    if !require_root("named_users_get_home_and_groups_from_the_image") {
        return;
    }
    let env = Env::new();
    let rootfs = env.busybox_rootfs();
    let etc = rootfs.join("etc");
    let mut passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
    passwd.push_str("app:x:1000:1000:app:/home/app:/bin/sh\n");
    std::fs::write(etc.join("passwd"), passwd).unwrap();
    std::fs::write(
        etc.join("group"),
        "root:x:0:\nwheel:x:10:root,app\nstaff:x:50:app\napp:x:1000:\n",
    )
    .unwrap();
    env.ok(&[
        "image",
        "from-dir",
        rootfs.to_str().unwrap(),
        "--name",
        "users",
    ]);
    let s = Scene { env };
    let out = s.ok(&[
        "run",
        "--user",
        "app",
        "users",
        "--",
        "sh",
        "-c",
        "id -u; id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' '; echo; echo $HOME",
    ]);
    assert_eq!(out, "1000\n10 50 1000 \n/home/app\n");
    let out = s.ok(&["run", "users", "--", "id", "-G"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "10"]);
}

#[test]
fn detached_output_goes_to_the_containers_log() {
    if !require_root("detached_output_goes_to_the_containers_log") {
        return;
    }
    let s = Scene::new();
    let out = s.out(&[
        "run",
        "-d",
        "--name",
        "lg",
        "bb",
        "--",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exec sleep 60",
    ]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "lg\n",
        "only the name on kiln's stdout"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = s.env.store().join("containers/lg/output.log");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(10, || logged() == "to-out\nto-err\n"),
        "log: {:?}",
        logged()
    );
    // -e values are in config.json: nobody but the owner reads it, or the log.
    let mode = |p: PathBuf| std::fs::metadata(&p).unwrap().mode() & 0o777;
    assert_eq!(mode(s.env.store().join("containers/lg")), 0o700);
    assert_eq!(mode(s.state().join("lg/config.json")), 0o600);
    s.ok(&["delete", "--force", "lg"]);
    let out = s.out(&["run", "-d", "-t", "bb"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-t with -d"));
}

#[test]
fn a_store_on_overlayfs_gets_copies_instead_of_overlays() {
    if !require_root("a_store_on_overlayfs_gets_copies_instead_of_overlays") {
        return;
    }
    // kiln inside a container whose root is an overlay: the store is on one.
    let s = Scene::new();
    let img = s.env.path("app.img");
    s.ok(&["image", "export", "bb", "-o", img.to_str().unwrap()]);
    let base = s.env.path("ovl");
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    let script = format!(
        "mount --make-rprivate / && mount -t overlay overlay -o lowerdir={b}/lower,upperdir={b}/upper,workdir={b}/work {b}/merged && \
         {kiln} --store {b}/merged/store --root {b}/state run {img} -- grep ' / ' /proc/self/mounts",
        b = base.display(),
        kiln = env!("CARGO_BIN_EXE_kiln"),
        img = img.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        text.trim(),
        "overlay",
        "the root is a copy, not an overlay on an overlay"
    );
}

#[test]
fn the_default_seccomp_profile_confines_kiln_run() {
    if !require_root("the_default_seccomp_profile_confines_kiln_run") {
        return;
    }
    let s = Scene::new();
    // A new user namespace needs no privilege from the kernel; the default
    // profile (podman's) refuses it without CAP_SYS_ADMIN.
    let out = s.out(&[
        "run",
        "bb",
        "--",
        "sh",
        "-c",
        "grep ^Seccomp: /proc/self/status; unshare -U true",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Seccomp:\t2\n");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
}
