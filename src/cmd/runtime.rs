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
use std::path::PathBuf;

pub fn state_root(g: &Global) -> PathBuf {
    g.root.clone().unwrap_or_else(default_state_root)
}

pub fn create_cmd(g: &Global, a: CreateArgs) -> Result<i32, Error> {
    let o = CreateOpts {
        id: a.id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: g.systemd_cgroup,
        kiln_init: false,
    };
    create(&state_root(g), &o, Mode::Create, None)?;
    Ok(0)
}

/// `kiln run --bundle B ID`.
pub fn run_bundle(g: &Global, a: RunArgs, bundle: PathBuf) -> Result<i32, Error> {
    let o = CreateOpts {
        id: a.target,
        bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: g.systemd_cgroup,
        kiln_init: false,
    };
    rt::run::run(&state_root(g), &o, a.detach, a.keep, None)
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
        println!(
            "{:<20} {:<8} {:<10} {:<40} {:<31} OWNER",
            "ID", "PID", "STATUS", "BUNDLE", "CREATED"
        );
        for s in &states {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {:<31} {}",
                s["id"].as_str().unwrap_or_default(),
                s["pid"],
                s["status"].as_str().unwrap_or_default(),
                s["bundle"].as_str().unwrap_or_default(),
                s["created"].as_str().unwrap_or_default(),
                s["owner"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(0)
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

pub fn spec(a: SpecArgs) -> Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("{}: already exists; remove it first", path.display());
    }
    rt::spec::default_spec(a.rootless)
        .save(&path)
        .with_context(|| format!("write {}", path.display()))?;
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
    loop {
        let c = Container::load(&root, &a.id)?;
        let cg = c
            .cgroup()
            .context(format!("container {}: has no cgroup", a.id))?;
        let stats = cg.stats()?;
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
