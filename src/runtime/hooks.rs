//! OCI hooks: each runs with the container's state JSON on stdin, its own
//! args and env, and a timeout; a failing hook fails the lifecycle step.

use super::{Error, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `spec` has hooks the runtime runs from the host while the
/// container is being created (prestart, createRuntime).
pub fn in_parent(spec: &oci_spec::runtime::Spec) -> bool {
    let Some(h) = spec.hooks() else { return false };
    #[allow(deprecated)]
    let prestart = h.prestart();
    [prestart, h.create_runtime()]
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
}

/// The poststart hooks of `spec` (none when it has no hooks).
pub fn poststart(spec: &oci_spec::runtime::Spec) -> &[Hook] {
    let hooks = spec.hooks().as_ref();
    hooks.and_then(|h| h.poststart().as_deref()).unwrap_or(&[])
}

/// Runs `hooks` in order for lifecycle stage `stage`.
pub fn run(stage: &str, hooks: &[Hook], state: &serde_json::Value) -> Result<()> {
    let input = serde_json::to_vec(state).expect("state serializes");
    for hook in hooks {
        run_one(stage, hook, &input, None)?;
    }
    Ok(())
}

/// Runs `hooks` from inside the container (createContainer, startContainer),
/// each handed over through kiln-dmz (`dmz`), like the container's process:
/// a hook path that leads to `/proc/self/exe` reaches kiln-dmz, not kiln.
pub fn run_inside(
    stage: &str,
    hooks: &[Hook],
    state: &serde_json::Value,
    dmz: &OwnedFd,
) -> Result<()> {
    let input = serde_json::to_vec(state).expect("state serializes");
    for hook in hooks {
        run_one(stage, hook, &input, Some(dmz))?;
    }
    Ok(())
}

fn run_one(stage: &str, hook: &Hook, input: &[u8], dmz: Option<&OwnedFd>) -> Result<()> {
    let path = hook.path();
    let fail = |reason: String| Error::Config(format!("{stage} hook {}: {reason}", path.display()));
    let args = hook.args().clone().unwrap_or_default();
    // kiln-dmz PATH ARGV0 ARGS...; its fd is close-on-exec, but still open
    // while the kernel looks the path up. Without a /proc in the container
    // there is no path to it: the hook runs directly.
    let via = dmz
        .map(super::dmz::proc_path)
        .filter(|p| std::path::Path::new(p).exists());
    let mut cmd = match via {
        Some(via) => {
            let mut cmd = Command::new(via);
            cmd.arg0(path);
            cmd.arg(args.first().map_or(path.as_os_str(), |a| a.as_ref()));
            cmd
        }
        None => {
            let mut cmd = Command::new(path);
            cmd.arg0(args.first().map_or(path.as_os_str(), |a| a.as_ref()));
            cmd
        }
    };
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(input);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        if let Some(status) = child.try_wait().map_err(|e| fail(e.to_string()))? {
            return if status.success() {
                Ok(())
            } else {
                Err(fail(format!("exited with {status}")))
            };
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {}s",
                hook.timeout().unwrap_or(0)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
