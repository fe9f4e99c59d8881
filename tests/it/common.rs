//! Shared helpers: the kiln binary, per-test temp dirs, fixtures, skips.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (fixtures live under it).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when the suite runs in CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Returns false (and says why) when the test cannot run here; in CI it panics instead.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(!in_ci(), "{test}: needs root, and CI=true forbids skipping");
    eprintln!("skipping {test}: needs root");
    false
}

/// Returns false (and says why) when `tool` is not installed; in CI it panics.
pub fn require_tool(test: &str, tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    assert!(
        !in_ci(),
        "{test}: needs {tool}, and CI=true forbids skipping"
    );
    eprintln!("skipping {test}: {tool} is not installed");
    false
}

/// A per-test scratch area with its own store; removed on drop.
pub struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            tmp: tempfile::Builder::new()
                .prefix("kiln-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// `kiln --store <this env's store> ARGS…`
    pub fn kiln(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.arg("--store").arg(self.store()).args(args);
        c.env_remove("KILN_STORE");
        c
    }

    /// Runs kiln and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kiln(args).output().unwrap();
        assert!(
            out.status.success(),
            "kiln {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kiln and asserts it fails with `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.kiln(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "kiln {args:?}: stdout {} stderr {err}",
            String::from_utf8_lossy(&out.stdout)
        );
        err
    }

    /// A busybox rootfs directory (from the host's busybox-static).
    pub fn busybox_rootfs(&self) -> PathBuf {
        let dir = self.path("rootfs");
        if !dir.exists() {
            run(Command::new(repo().join("rootfs-fixtures/busybox.sh")).arg(&dir));
        }
        dir
    }

    /// Imports a busybox image named `name` into this env's store.
    pub fn busybox_image(&self, name: &str) {
        let rootfs = self.busybox_rootfs();
        self.ok(&[
            "image",
            "from-dir",
            rootfs.to_str().unwrap(),
            "--name",
            name,
            "--cmd",
            "/bin/sh",
        ]);
    }

    /// Every file under the store, with its content digest, for before/after checks.
    pub fn store_snapshot(&self) -> Vec<(String, String)> {
        snapshot(&self.store())
    }
}

/// Runs a command, asserting success; returns its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Paths (relative) and what they are/hold, sorted; lock files excluded.
pub fn snapshot(root: &Path) -> Vec<(String, String)> {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.ends_with(".lock") || rel == "lock" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let what = if meta.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", meta.permissions().mode() & 0o7777)
            } else if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if meta.is_file() {
                format!(
                    "file {:o} {}",
                    meta.permissions().mode() & 0o7777,
                    hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()))
                )
            } else {
                "special".to_string()
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}

/// podman's configuration for a test that runs it in its own directory:
/// vfs storage there, no registries, any image accepted, and ulimits below
/// this host's hard limits (podman's defaults exceed them here).
pub fn write_podman_config(dir: &Path) {
    use std::fs;
    fs::write(
        dir.join("containers.conf"),
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\n\
         [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .unwrap();
    fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
            dir.join("runroot").display(),
            dir.join("storage").display()
        ),
    )
    .unwrap();
    fs::write(
        dir.join("registries.conf"),
        "unqualified-search-registries = []\n",
    )
    .unwrap();
    fs::write(
        dir.join("policy.json"),
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
}

/// Runs `cmd` to completion with stdin from /dev/null and stdout/stderr
/// through files in `env`, not pipes: a container that `create` or `run -d`
/// leaves behind inherits them, and a pipe would not reach end-of-file while
/// it lives.
pub fn output_via_files(env: &Env, cmd: &mut Command) -> Output {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let (o, e) = (env.path(&format!("out-{n}")), env.path(&format!("err-{n}")));
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .status()
        .unwrap();
    Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    }
}

/// Polls `f` for up to `secs` seconds; whether it held.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}

/// podman's flags and environment for a test's own directory `dir` (see
/// `write_podman_config`), with `runtime` as its OCI runtime.
pub fn podman_args<'c>(c: &'c mut Command, dir: &Path, runtime: &Path) -> &'c mut Command {
    let d = |rel: &str| dir.join(rel);
    c.env("CONTAINERS_CONF", d("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", d("storage.conf"))
        .env("CONTAINERS_REGISTRIES_CONF", d("registries.conf"))
        .arg("--root")
        .arg(d("storage"))
        .arg("--runroot")
        .arg(d("runroot"))
        .arg("--tmpdir")
        .arg(d("tmp"))
        .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
        .args(["--events-backend", "file", "--runtime"])
        .arg(runtime)
}

/// `name` under each mounted cgroup hierarchy, where it exists.
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let mnt = pre.split_whitespace().nth(4)?;
            fstype
                .starts_with("cgroup")
                .then(|| Path::new(mnt).join(name))
        })
        .filter(|p| p.exists())
        .collect();
    dirs.dedup();
    dirs
}

/// Every process in the cgroups under `name`.
pub fn cgroup_processes(name: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    let mut stack = cgroup_dirs(name);
    while let Some(d) = stack.pop() {
        let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        let subdirs = fs::read_dir(&d).into_iter().flatten().flatten();
        stack.extend(subdirs.map(|e| e.path()).filter(|p| p.is_dir()));
    }
    pids.sort();
    pids.dedup();
    pids
}

/// Removes a cgroup directory and its children (rmdir, deepest first).
pub fn remove_cgroup(dir: &Path) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            remove_cgroup(&e.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Mount points (in this mount namespace) under `root`, deepest first.
pub fn mounts_under(root: &Path) -> Vec<String> {
    let root = root.to_string_lossy().into_owned();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<String> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m.starts_with(&root))
        .collect();
    found.reverse();
    found
}
