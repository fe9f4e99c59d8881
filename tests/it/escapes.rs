//! The runc-class container escapes, each replayed for real from inside a
//! container: overwriting the host runtime through /proc/self/exe
//! (CVE-2019-5736), a host fd or cwd leaking in (CVE-2024-21626), and mount
//! targets redirected onto the host through symlinks (CVE-2021-30465).

use crate::bundle::Bundle;
use crate::common::{require_root, snapshot};
use serde_json::json;
use sha2::Digest;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn sha256(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `bin --root <state> ARGS…` with stdout/stderr in files (a detached
/// container inherits them). Retries while the freshly written `bin` is
/// still open for writing in a child another test thread just forked.
fn out_with(b: &Bundle, bin: &Path, args: &[&str]) -> Output {
    let (o, e) = (b.env.path("copy-out"), b.env.path("copy-err"));
    let mut tries = 0;
    let status = loop {
        let mut cmd = Command::new(bin);
        cmd.arg("--root")
            .arg(b.state_root())
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap());
        match cmd.status() {
            Err(err) if err.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    }
}

/// runc's CVE-2019-5736 exploit starts from a container process that is
/// `/proc/self/exe`: with runc, that was the host's runc, running inside the
/// container where it could be held open and rewritten. In kiln it is
/// kiln-dmz, a sealed in-memory copy of a 1 KiB program (see runtime::dmz),
/// whichever way the container gets there: as `kiln exec`'s process, or as
/// the interpreter of a `#!/proc/self/exe` script.
#[test]
fn cve_2019_5736_proc_self_exe_in_a_container_is_never_kiln() {
    let name = "cve_2019_5736_proc_self_exe_in_a_container_is_never_kiln";
    if !require_root(name) {
        return;
    }
    let mut b = Bundle::new("sleep 60");
    // The attempts run against a copy, so a regression never destroys the build's kiln.
    let kiln = b.env.path("kiln");
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &kiln).unwrap();
    let before = sha256(&kiln);
    let script = b.dir.join("rootfs/selfexe.sh");
    std::fs::write(&script, "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    b.config["root"]["readonly"] = json!(false);
    b.save();
    let dir = b.dir.to_str().unwrap().to_string();
    let out = out_with(&b, &kiln, &["run", "-d", "--bundle", &dir, "esc-exe"]);
    assert!(out.status.success(), "run -d: {}", text(&out.stderr));
    for process in [
        &["/proc/self/exe", "--version"][..],
        &["/selfexe.sh", "--version"],
    ] {
        let mut args = vec!["exec", "esc-exe"];
        args.extend_from_slice(process);
        let out = out_with(&b, &kiln, &args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            !stdout.contains("kiln"),
            "{process:?} ran kiln inside the container: {stdout}"
        );
        assert!(
            stderr.starts_with("kiln-dmz: usage"),
            "{process:?} did not reach kiln-dmz: {stderr}"
        );
        assert_eq!(out.status.code(), Some(127), "{process:?}: {stderr}");
    }
    assert_eq!(sha256(&kiln), before, "the container rewrote kiln");
    b.ok(&["delete", "--force", "esc-exe"]);
    b.assert_clean();
}

/// A directory on the host holding a marker, opened at fds 3..=9 (without
/// close-on-exec) in every process `leak` is applied to.
struct HostDir {
    path: PathBuf,
    fd: OwnedFd,
}

const MARKER: &str = "HOST-MARKER-21626";

impl HostDir {
    fn new(b: &Bundle) -> Self {
        let path = b.env.path("host");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join(MARKER), "host\n").unwrap();
        let dir = std::fs::File::open(&path).unwrap();
        // Far above the fds it is copied onto, so dup2 never lands on itself.
        let raw = nix::fcntl::fcntl(&dir, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100)).unwrap();
        // SAFETY: `raw` is a fresh descriptor from F_DUPFD_CLOEXEC, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Self { path, fd }
    }

    /// Opens the host directory at fds 3..=9 of the command's process.
    fn leak(&self, cmd: &mut Command) {
        let raw = self.fd.as_raw_fd();
        // SAFETY: between fork and exec the closure only calls dup2, which is
        // async-signal-safe; dup2 clears close-on-exec on the new fds.
        unsafe {
            cmd.pre_exec(move || {
                for n in 3..=9 {
                    if libc::dup2(raw, n) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

/// Fails cleanly naming the cwd, or runs inside the container: never on the host.
fn assert_not_on_host(out: &Output, cwd: &str) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !stdout.contains(MARKER),
        "cwd {cwd} reached the host directory: {stdout}"
    );
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(125), "cwd {cwd}: {stderr}");
        assert!(
            stderr.contains(cwd),
            "the error does not name the cwd {cwd}: {stderr}"
        );
    }
}

#[test]
fn cve_2024_21626_leaked_fd_as_cwd_never_reaches_the_host_in_run() {
    if !require_root("cve_2024_21626_leaked_fd_as_cwd_never_reaches_the_host_in_run") {
        return;
    }
    let mut b = Bundle::new("pwd; ls");
    let host = HostDir::new(&b);
    let dir = b.dir.to_str().unwrap().to_string();
    for n in 3..=10 {
        let cwd = format!("/proc/self/fd/{n}");
        b.config["process"]["cwd"] = json!(cwd);
        b.save();
        let mut cmd = b.kiln(&["run", "--bundle", &dir, &format!("esc-cwd{n}")]);
        host.leak(&mut cmd);
        assert_not_on_host(&cmd.output().unwrap(), &cwd);
    }
    // A preserved fd is the container's on purpose, but still no way out.
    b.config["process"]["cwd"] = json!("/proc/self/fd/3");
    b.save();
    let mut cmd = b.kiln(&["run", "--preserve-fds", "2", "--bundle", &dir, "esc-cwd-p"]);
    host.leak(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "ran with a host cwd");
    assert_not_on_host(&out, "/proc/self/fd/3");
    assert!(host.path.join(MARKER).exists());
    b.assert_clean();
}

#[test]
fn cve_2024_21626_leaked_fd_as_cwd_never_reaches_the_host_in_exec() {
    if !require_root("cve_2024_21626_leaked_fd_as_cwd_never_reaches_the_host_in_exec") {
        return;
    }
    let b = Bundle::new("sleep 60");
    let host = HostDir::new(&b);
    b.save();
    b.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), "esc-xcwd"]);
    for n in 3..=10 {
        let cwd = format!("/proc/self/fd/{n}");
        let mut cmd = b.kiln(&["exec", "--cwd", &cwd, "esc-xcwd", "sh", "-c", "pwd; ls"]);
        host.leak(&mut cmd);
        assert_not_on_host(&cmd.output().unwrap(), &cwd);
    }
    let mut cmd = b.kiln(&["exec", "--preserve-fds", "1", "--cwd", "/proc/self/fd/3"]);
    cmd.args(["esc-xcwd", "sh", "-c", "pwd; ls"]);
    host.leak(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "exec ran with a host cwd");
    assert_not_on_host(&out, "/proc/self/fd/3");
    b.ok(&["delete", "--force", "esc-xcwd"]);
    b.assert_clean();
}

#[test]
fn cve_2024_21626_container_sees_only_stdio_and_preserved_fds() {
    if !require_root("cve_2024_21626_container_sees_only_stdio_and_preserved_fds") {
        return;
    }
    // sh lists its own fds through a child (`exit` keeps it from exec'ing ls,
    // whose directory fd would show), with no pipe open that it would hold.
    let script = "ls /proc/$$/fd; exit 0";
    let b = Bundle::new(script);
    let host = HostDir::new(&b);
    b.save();
    let dir = b.dir.to_str().unwrap().to_string();
    let fds = |cmd: &mut Command| {
        host.leak(cmd);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        fds(&mut b.kiln(&["run", "--bundle", &dir, "esc-fds-a"])),
        "0 1 2"
    );
    let preserved = &mut b.kiln(&["run", "--preserve-fds", "2", "--bundle", &dir, "esc-fds-b"]);
    assert_eq!(fds(preserved), "0 1 2 3 4");
    let long = Bundle::new("sleep 60");
    long.save();
    long.ok(&[
        "run",
        "-d",
        "--bundle",
        long.dir.to_str().unwrap(),
        "esc-fds-x",
    ]);
    assert_eq!(
        fds(&mut long.kiln(&["exec", "esc-fds-x", "sh", "-c", script])),
        "0 1 2"
    );
    let preserved = &mut long.kiln(&[
        "exec",
        "--preserve-fds",
        "1",
        "esc-fds-x",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(fds(preserved), "0 1 2 3");
    long.ok(&["delete", "--force", "esc-fds-x"]);
    b.assert_clean();
    long.assert_clean();
}

/// A bind mount of `source` on `dest` (with extra options).
fn bind(source: &Path, dest: &str, extra: &[&str]) -> serde_json::Value {
    let mut options = vec!["rbind"];
    options.extend_from_slice(extra);
    json!({"destination": dest, "type": "bind", "source": source, "options": options})
}

#[test]
fn cve_2021_30465_mount_through_symlink_stays_in_rootfs() {
    if !require_root("cve_2021_30465_mount_through_symlink_stays_in_rootfs") {
        return;
    }
    let mut b = Bundle::new("");
    let outside = b.env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), "host\n").unwrap();
    let before = snapshot(&outside);
    let src = b.env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("src-marker"), "mounted\n").unwrap();
    let rootfs = b.dir.join("rootfs");
    let rel = outside
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    std::os::unix::fs::symlink(&outside, rootfs.join("evil")).unwrap();
    let dotdot = format!("{}{rel}", "../".repeat(12));
    std::os::unix::fs::symlink(&dotdot, rootfs.join("tmp/evil2")).unwrap();
    let mut mounts = b.config["mounts"].as_array().unwrap().clone();
    mounts.push(bind(&src, "/evil/x", &[]));
    mounts.push(bind(&src, "/tmp/evil2/y", &["ro"]));
    mounts.push(json!({"destination": "/evil/t", "type": "tmpfs", "source": "tmpfs"}));
    b.config["mounts"] = json!(mounts);
    // Inside the container the links resolve to the same path under its own root.
    let inside = outside.to_str().unwrap();
    b.config["process"]["args"] = json!([
        "sh",
        "-c",
        format!(
            "cat {inside}/x/src-marker {inside}/y/src-marker; grep -c ' {inside}/' /proc/self/mountinfo"
        )
    ]);
    let out = b.run("esc-mnt");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(snapshot(&outside), before, "the host directory changed");
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host_mounts.contains(inside), "a mount reached the host");
    if out.status.success() {
        assert_eq!(stdout, "mounted\nmounted\n3\n", "{stderr}");
        assert!(rootfs.join(&rel).join("x").is_dir());
    } else {
        assert!(stderr.contains("/evil"), "unclear error: {stderr}");
    }
    b.assert_clean();
}

/// Container `a` keeps swapping a directory of a shared volume for a symlink
/// to a host directory while container `b`, which mounts onto that directory,
/// starts again and again: every mount lands inside `b`, or `b` fails cleanly.
#[test]
fn cve_2021_30465_swapping_a_shared_dir_for_a_symlink_during_start() {
    if !require_root("cve_2021_30465_swapping_a_shared_dir_for_a_symlink_during_start") {
        return;
    }
    let mut a = Bundle::new("");
    let shared = a.env.path("shared");
    let victim = a.env.path("victim");
    for d in [&shared, &victim] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(victim.join("keep"), "host\n").unwrap();
    let before = snapshot(&victim);
    let v = victim.to_str().unwrap();
    a.config["process"]["args"] = json!([
        "sh",
        "-c",
        format!(
            "while :; do rm -rf /shared/d; mkdir /shared/d; rm -rf /shared/d; ln -s {v} /shared/d; done"
        )
    ]);
    let mut mounts = a.config["mounts"].as_array().unwrap().clone();
    mounts.push(bind(&shared, "/shared", &[]));
    a.config["mounts"] = json!(mounts.clone());
    a.save();
    a.ok(&[
        "run",
        "-d",
        "--bundle",
        a.dir.to_str().unwrap(),
        "esc-swapper",
    ]);
    let mut b = Bundle::new("true");
    let src = b.env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    mounts.push(bind(&src, "/shared/d/x", &[]));
    b.config["mounts"] = json!(mounts);
    let mut landed = 0;
    for i in 0..30 {
        let out = b.run(&format!("esc-race{i}"));
        if out.status.success() {
            landed += 1;
        } else {
            let err = text(&out.stderr);
            assert!(err.contains("/shared/d"), "unclear error: {err}");
        }
        assert_eq!(snapshot(&victim), before, "run {i} wrote to the host");
    }
    a.ok(&["delete", "--force", "esc-swapper"]);
    eprintln!("{landed} of 30 starts mounted inside the container, the rest failed cleanly");
    a.assert_clean();
    b.assert_clean();
}
