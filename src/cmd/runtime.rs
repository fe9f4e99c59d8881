//! Handlers for the OCI runtime verbs (runc's command line).

use crate::cli::Global;
use crate::cli::run::RunArgs;
use crate::cli::runtime::*;
use crate::runtime::container::Container;
use crate::runtime::create::{CreateOpts, create};
use crate::runtime::exec::ExecOpts;
use crate::runtime::process::Mode;
use crate::runtime::{self as rt, Error, default_state_root};
use anyhow::{Context, Result, bail};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub fn state_root(g: &Global) -> PathBuf {
    g.root.clone().unwrap_or_else(default_state_root)
}

/// Connects to `--console-socket` here, on the host: the container's init
/// may join a mount namespace where the socket's path is not visible.
fn console_fd(socket: Option<&std::path::Path>) -> Result<Option<OwnedFd>, Error> {
    socket.map(rt::console::connect_socket).transpose()
}

pub fn create_cmd(g: &Global, a: CreateArgs) -> Result<i32, Error> {
    let console = console_fd(a.console_socket.as_deref())?;
    let o = CreateOpts {
        id: a.id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: g.systemd_cgroup,
        kiln_init: false,
        output: None,
    };
    let c = create(&state_root(g), &o, Mode::Create, console)?;
    if let Some(sock) = &a.pidfd_socket
        && let Err(e) = rt::console::send_pidfd(sock, c.record.pid)
    {
        let _ = rt::delete::delete(&state_root(g), c.id(), true);
        return Err(e);
    }
    Ok(0)
}

/// `kiln run --bundle B ID`.
pub fn run_bundle(g: &Global, a: RunArgs, bundle: PathBuf) -> Result<i32, Error> {
    let console = console_fd(a.console_socket.as_deref())?;
    let o = CreateOpts {
        id: a.target,
        bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: g.systemd_cgroup,
        kiln_init: false,
        output: None,
    };
    rt::run::run(&state_root(g), &o, a.detach, a.keep, console)
}

pub fn exec_cmd(g: &Global, a: ExecArgs) -> Result<i32, Error> {
    let user = match &a.user {
        Some(u) => Some(parse_user(u)?),
        None => None,
    };
    let o = ExecOpts {
        id: a.id,
        process_file: a.process,
        args: a.command,
        env: a.env,
        cwd: a.cwd,
        user,
        additional_gids: a.additional_gids,
        tty: a.tty,
        console_socket: a.console_socket,
        detach: a.detach,
        pid_file: a.pid_file,
        preserve_fds: a.preserve_fds,
        caps: a.cap,
        no_new_privs: a.no_new_privs,
        pidfd_socket: a.pidfd_socket,
        ignore_paused: a.ignore_paused,
        sub_cgroup: a.cgroup,
    };
    rt::exec::exec(&state_root(g), &o, None)
}

/// `uid[:gid]` (numeric, as runc takes it).
pub fn parse_user(u: &str) -> Result<(u32, u32), Error> {
    let bad = || Error::Config(format!("user {u:?}: expected uid[:gid]"));
    let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
    Ok((
        uid.parse().map_err(|_| bad())?,
        gid.parse().map_err(|_| bad())?,
    ))
}

pub fn state(g: &Global, id: &str) -> Result<i32> {
    let c = Container::load(&state_root(g), id)?;
    println!("{}", serde_json::to_string_pretty(&c.oci_state())?);
    Ok(0)
}

pub fn list(g: &Global, a: ListArgs) -> Result<i32> {
    let states = rt::list::list(&state_root(g))?;
    if a.quiet {
        for s in &states {
            println!("{}", s["id"].as_str().unwrap_or_default());
        }
    } else if a.format == ListFormat::Json {
        println!("{}", serde_json::to_string(&states)?);
    } else {
        print_table(&states);
    }
    Ok(0)
}

/// `kiln list`'s table, each column as wide as its widest cell (as runc's tabwriter).
fn print_table(states: &[serde_json::Value]) {
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
    let rows: Vec<[String; 6]> = states
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            [
                text("id"),
                s["pid"].as_i64().unwrap_or(0).to_string(),
                text("status"),
                text("bundle"),
                text("created"),
                text("owner"),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 < cells.len() {
                out.push_str(&format!("{c:<w$}   ", w = width[i]));
            } else {
                out.push_str(c);
            }
        }
        println!("{out}");
    };
    line(header);
    for r in &rows {
        line(r.each_ref().map(String::as_str));
    }
}

/// runc's ps: JSON pids, or ps(1)'s table filtered to the container's processes.
pub fn ps(g: &Global, a: PsArgs) -> Result<i32> {
    let pids = rt::list::pids(&state_root(g), &a.id)?;
    if a.format == ListFormat::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(0)
}

pub fn spec(g: &Global, a: SpecArgs) -> Result<i32> {
    let rootless = g.rootless.as_deref().is_some_and(|v| v != "false");
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("{}: already exists; remove it first", path.display());
    }
    // Indented, as runc writes it: people edit this file.
    let mut text = serde_json::to_string_pretty(&rt::spec::default_spec(rootless))?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}

pub fn update(g: &Global, a: UpdateArgs) -> Result<i32> {
    let c = Container::load(&state_root(g), &a.id)?;
    let cg = c
        .cgroup()
        .context(format!("container {}: has no cgroup", a.id))?;
    let res = super::resources::from_update_args(&a)?;
    cg.update(&res)?;
    Ok(0)
}

pub fn events(g: &Global, a: EventsArgs) -> Result<i32> {
    let root = state_root(g);
    let interval = super::resources::parse_duration(&a.interval)?;
    let mut oom_kills = None;
    loop {
        let c = Container::load(&root, &a.id)?;
        let cg = c
            .cgroup()
            .context(format!("container {}: has no cgroup", a.id))?;
        let stats = serde_json::to_value(cg.stats()?)?;
        // runc's "oom" event: the kernel killed in the container since the last look.
        let kills = stats["memory"]["oomKill"].as_u64().unwrap_or(0);
        if oom_kills.is_some_and(|before| kills > before) {
            println!("{}", serde_json::json!({"type": "oom", "id": a.id}));
        }
        oom_kills = Some(kills);
        println!(
            "{}",
            serde_json::json!({"type": "stats", "id": a.id, "data": stats})
        );
        if a.stats || c.status() == rt::state::Status::Stopped {
            return Ok(0);
        }
        std::thread::sleep(interval);
    }
}

/// Appends an error to `--log` as runc does: logrus's JSON line
/// (`{"level":"error","msg":…,"time":…}`) with `--log-format json`, its text
/// line otherwise. containerd's shim and podman read the last error from this
/// file to report why the runtime failed. Does nothing without `--log`.
pub fn log_error(g: &Global, msg: &str) {
    let Some(path) = &g.log else { return };
    let line = log_line(&g.log_format, "error", msg, &rt::container::now_rfc3339());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut f) = file {
        use std::io::Write;
        let _ = f.write_all(line.as_bytes());
    }
}

/// One log line in runc's `json` or `text` format.
fn log_line(format: &str, level: &str, msg: &str, time: &str) -> String {
    if format == "json" {
        let v = serde_json::json!({"level": level, "msg": msg, "time": time});
        format!("{v}\n")
    } else {
        let quoted = serde_json::Value::from(msg);
        format!("time=\"{time}\" level={level} msg={quoted}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_runcs() {
        let t = "2024-01-02T03:04:05.000000006Z";
        let json = log_line("json", "error", "container x: \"bad\"", t);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container x: \"bad\"");
        assert_eq!(v["time"], t);
        assert!(json.ends_with('\n') && json.lines().count() == 1);
        assert_eq!(
            log_line("text", "error", "a\nb", t),
            format!("time=\"{t}\" level=error msg=\"a\\nb\"\n")
        );
    }

    #[test]
    fn users() {
        assert_eq!(parse_user("1000").unwrap(), (1000, 0));
        assert_eq!(parse_user("1:2").unwrap(), (1, 2));
        assert!(parse_user("root").is_err());
    }
}
