//! kiln as the OCI runtime of real engines: podman (through conmon) and
//! containerd (through its io.containerd.runc.v2 shim) drive kiln with runc's
//! command line; plus a console-socket receiver played by the test itself,
//! and the runc flags and `--log` format those engines rely on.
//!
//! The engines run hermetically, leaving nothing behind on the host. podman
//! runs as in `interop.rs`: a private mount namespace whose tmpfs hides
//! `/var/lib/containers`, its own storage, run root, tmp dir and
//! configuration, and a cgroup parent of its own. containerd runs in a private
//! mount namespace with a tmpfs over `/run/containerd` (or `/run`, where that
//! does not exist) for its shims' sockets, with its root, state, socket, fifo
//! dir and `opt` dir in the test's directory; its shims and their mounts live
//! in that namespace and go with it. Guards remove the containers, end the
//! daemons and shims by pid, unmount, and remove the cgroups even when a test
//! fails.

use crate::bundle::Bundle;
use crate::common::{
    Env, cgroup_dirs, cgroup_processes, eventually, in_ci, mounts_under, remove_cgroup,
    require_root, require_tool, run,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd` with stdin closed; its stdout and stderr.
fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Runs `cmd`, asserting success; its stdout.
fn ok(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd.stdin(Stdio::null())).stdout).unwrap()
}

/// The busybox fixture exported as an OCI archive `bb.img` (kiln's own format).
fn busybox_archive(env: &Env) -> PathBuf {
    env.busybox_image("bb");
    let img = env.path("bb.img");
    env.ok(&["image", "export", "bb", "-o", s(&img)]);
    img
}

/// A unique cgroup name for one engine of one test.
fn cgroup_name(env: &Env, engine: &str) -> String {
    let tag = env.tmp.path().file_name().unwrap().to_string_lossy();
    format!("kiln-{engine}-{tag}")
}

/// Processes whose command line mentions `needle` (daemons and shims started with our paths).
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

fn kill_all(pids: &[i32]) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Entries left in a kiln state root.
/// The containers kiln keeps state for under `root` (its caches, whose names
/// are not container ids, such as "@seccomp-cache", do not count).
fn state_entries(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('@'))
        .collect()
}

/// Writes an executable `#!/bin/sh` script.
fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether commands can run in a private mount namespace here.
fn private_mounts() -> bool {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Requires root, the tools, and private mount namespaces (see the module docs).
fn can_run(test: &str, tools: &[&str]) -> bool {
    if !require_root(test) || !tools.iter().all(|t| require_tool(test, t)) {
        return false;
    }
    if private_mounts() {
        return true;
    }
    assert!(
        !in_ci(),
        "{test}: needs private mount namespaces (unshare --mount), and CI=true forbids skipping"
    );
    eprintln!("skipping {test}: cannot make a private mount namespace");
    false
}

#[path = "runtime_interop/containerd.rs"]
mod containerd;
#[path = "runtime_interop/podman.rs"]
mod podman;

// ---------------------------------------------------------------------------
// console socket, log format and flags, without an engine

/// Receives one fd sent over `conn` with SCM_RIGHTS.
fn recv_fd(conn: RawFd) -> OwnedFd {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(conn, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed this descriptor in our table; we own it alone.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no file descriptor on the console socket");
}

/// Reads the pty master until `want` shows up (or end of file, or 20 s).
fn read_until(master: &mut fs::File, got: &mut String, want: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1024];
    while !got.contains(want) && Instant::now() < deadline {
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(200u16)).unwrap_or(0) == 0 {
            continue;
        }
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO: every slave end closed
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    got.contains(want)
}

#[test]
fn console_socket_receives_a_working_pty() {
    if !require_root("console_socket_receives_a_working_pty") {
        return;
    }
    let mut b = Bundle::new("");
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    b.config["process"]["args"] = json!(["sh"]);
    b.save();
    let sock = b.env.path("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    // run -d connects during set-up and sends the master before it returns.
    b.ok(&[
        "run",
        "-d",
        "--console-socket",
        s(&sock),
        "--bundle",
        s(&b.dir),
        "tty1",
    ]);
    let (conn, _) = listener.accept().unwrap();
    let mut master = fs::File::from(recv_fd(conn.as_raw_fd()));
    master.write_all(b"echo $((6*7))\n").unwrap();
    let mut got = String::new();
    assert!(read_until(&mut master, &mut got, "\n42\r\n"), "{got:?}");
    master.write_all(b"stty size\n").unwrap();
    let mut got = String::new();
    assert!(
        read_until(&mut master, &mut got, "\n33 101\r\n"),
        "consoleSize: {got:?}"
    );
    master.write_all(b"tty\n").unwrap();
    let mut got = String::new();
    assert!(read_until(&mut master, &mut got, "/dev/"), "{got:?}");
    assert!(
        got.contains("/dev/pts/0\r\n") || got.contains("/dev/console\r\n"),
        "{got:?}"
    );

    // exec -t: a second pty, over a second socket, while kiln exec waits.
    let sock2 = b.env.path("exec.sock");
    let listener2 = UnixListener::bind(&sock2).unwrap();
    let mut exec = b
        .kiln(&[
            "exec",
            "-t",
            "--console-socket",
            s(&sock2),
            "tty1",
            "sh",
            "-c",
        ])
        .arg("tty; exit 4")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (conn2, _) = listener2.accept().unwrap();
    let mut master2 = fs::File::from(recv_fd(conn2.as_raw_fd()));
    let mut got = String::new();
    read_until(&mut master2, &mut got, "\u{0}never");
    assert!(got.starts_with("/dev/pts/"), "{got:?}");
    let status = exec.wait().unwrap();
    assert_eq!(status.code(), Some(4), "exec's exit status passes through");

    master.write_all(b"exit\n").unwrap();
    assert!(eventually(10, || b.status("tty1") == "stopped"));
    b.ok(&["delete", "tty1"]);
    b.assert_clean();
}

#[test]
fn pidfd_socket_receives_a_pidfd_of_init() {
    if !require_root("pidfd_socket_receives_a_pidfd_of_init") {
        return;
    }
    let b = Bundle::new("exec sleep 60");
    b.save();
    let sock = b.env.path("pidfd.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let bundle = s(&b.dir);
    b.ok(&[
        "create",
        "--pidfd-socket",
        s(&sock),
        "--bundle",
        bundle,
        "p1",
    ]);
    let (conn, _) = listener.accept().unwrap();
    let pidfd = recv_fd(conn.as_raw_fd());
    let state: serde_json::Value = serde_json::from_str(&b.ok(&["state", "p1"])).unwrap();
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).unwrap();
    assert!(
        info.contains(&format!("Pid:\t{}\n", state["pid"])),
        "{info} vs {state}"
    );
    b.ok(&["delete", "--force", "p1"]);
}

#[test]
fn errors_go_to_log_in_runcs_json_format() {
    let env = Env::new();
    let log = env.path("log.json");
    let state = env.path("state");
    let fail = |format: &str| {
        let out = output(
            Command::new(KILN)
                .args([
                    "--root",
                    s(&state),
                    "--log",
                    s(&log),
                    "--log-format",
                    format,
                ])
                .args(["state", "no-such-container"]),
        );
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("does not exist"),
            "still on stderr"
        );
    };
    fail("json");
    fail("json");
    let lines: Vec<serde_json::Value> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "appended, one line per error");
    for l in &lines {
        assert_eq!(l["level"], "error");
        assert!(l["msg"].as_str().unwrap().contains("does not exist"), "{l}");
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    fs::remove_file(&log).unwrap();
    fail("text");
    let line = fs::read_to_string(&log).unwrap();
    assert!(
        line.starts_with("time=\"") && line.contains(" level=error msg=\"container "),
        "{line:?}"
    );
}

/// Every flag runc defines for the verbs engines call parses; a failure is
/// then kiln's own (125), never a usage error (2).
#[test]
fn runc_flags_are_accepted() {
    let env = Env::new();
    let (root, log, b) = (env.path("state"), env.path("log"), env.path("no-bundle"));
    let global = format!(
        "--root {} --log {} --log-format json --systemd-cgroup --debug \
         --criu /usr/sbin/criu --rootless=auto",
        s(&root),
        s(&log)
    );
    let b = s(&b);
    let verbs = [
        format!(
            "create --bundle {b} --console-socket /x --pid-file /x --no-pivot \
             --no-new-keyring --preserve-fds 0 --pidfd-socket /x id"
        ),
        "start id".into(),
        "state id".into(),
        "kill --all id 9".into(),
        "kill id".into(),
        "delete id".into(),
        "pause id".into(),
        "resume id".into(),
        "ps --format json id".into(),
        "events --stats --interval 1s id".into(),
        "exec --console-socket /x --cwd / --env A=b --tty --user 0:0 --additional-gids 1 \
         --process /x --detach --pid-file /x --process-label l --apparmor a --no-new-privs \
         --cap CAP_KILL --preserve-fds 0 --pidfd-socket /x --ignore-paused id true"
            .into(),
        "update --resources /x --cpu-share 2 id".into(),
        format!(
            "run --bundle {b} --console-socket /x --pid-file /x --detach --keep --no-pivot \
             --no-new-keyring --preserve-fds 0 id"
        ),
    ];
    for verb in &verbs {
        let out = output(
            Command::new(KILN)
                .args(global.split_whitespace())
                .args(verb.split_whitespace()),
        );
        assert_eq!(
            out.status.code(),
            Some(125),
            "kiln {verb}: {}",
            text(&out.stderr)
        );
    }
    let out = output(
        Command::new(KILN)
            .args(global.split_whitespace())
            .args(["list", "--format", "json", "--quiet"]),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}
