//! `kiln delete`: removes a stopped container (with `--force`, any), its
//! cgroup and state, and runs the poststop hooks.

use super::container::Container;
use super::kill::wait_gone;
use super::{Context, Error, Result, hooks};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use std::path::Path;
use std::time::Duration;

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    delete_with(root, id, force, None)
}

/// `delete` by the kiln that created the container and still holds its
/// config (`run`), which then is not read back from the state directory.
pub fn delete_with(root: &Path, id: &str, force: bool, config: Option<&Spec>) -> Result<()> {
    let c = match Container::load(root, id) {
        Ok(c) => c,
        Err(Error::NotFound(_)) => {
            // A create that died before writing state leaves only a directory.
            let dir = Container::dir_for(root, id);
            let existed = dir.exists();
            let _ = std::fs::remove_dir_all(&dir);
            return if force || existed {
                Ok(())
            } else {
                Err(Error::NotFound(id.to_string()))
            };
        }
        Err(e) => return Err(e),
    };
    let _lock = c.lock()?;
    let status = c.status();
    if !status.can_delete() && !force {
        return Err(Error::container(
            id,
            format!("cannot delete a {status} container (stop it first, or use --force)"),
        ));
    }
    if c.init_alive() {
        match c.cgroup() {
            Some(cg) => {
                cg.kill_all(libc::SIGKILL)?;
                let _ = cg.thaw();
            }
            None => kill(Pid::from_raw(c.record.pid), Signal::SIGKILL)
                .sys(|| format!("kill container {id}"))?,
        }
        if !wait_gone(&c, Duration::from_secs(10)) {
            return Err(Error::container(id, "init did not die after SIGKILL"));
        }
    }
    if let Some(cg) = c.cgroup() {
        cg.destroy()?;
    }
    let loaded;
    let config = match config {
        Some(spec) => Some(spec),
        None => {
            loaded = c.config().ok();
            loaded.as_ref()
        }
    };
    let poststop = config
        .and_then(|s| s.hooks().as_ref().and_then(|h| h.poststop().clone()))
        .unwrap_or_default();
    // The state the hooks get, taken while the state dir still exists.
    let state = (!poststop.is_empty()).then(|| {
        let mut state = c.oci_state();
        state["status"] = "stopped".into();
        state
    });
    std::fs::remove_dir_all(&c.dir).ctx("remove", &c.dir)?;
    let owned = super::image_spec::OWNED_BUNDLE_ANNOTATION;
    if config.is_some_and(|s| {
        s.annotations()
            .as_ref()
            .and_then(|a| a.get(owned))
            .map(String::as_str)
            == Some("true")
    }) {
        // The bundle `kiln run IMAGE` wrote: its upper and work dirs go too
        // (back to the pool of such directories).
        super::bundle_pool::release(&c.record.bundle).ctx("remove", &c.record.bundle)?;
    }
    // Poststop failures are warnings: the container is gone either way (runtime-spec).
    if let Some(state) = state
        && let Err(e) = hooks::run("poststop", &poststop, &state)
    {
        eprintln!("kiln: warning: {e}");
    }
    Ok(())
}

/// Removes a directory tree that may hold directories without permissions
/// for their owner: overlayfs leaves `work/work` at mode 000, which a rootless
/// kiln (not root, so no CAP_DAC_OVERRIDE) must open up to remove.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            open_up(path);
            std::fs::remove_dir_all(path)
        }
        other => other,
    }
}

fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        // file_type() does not follow symlinks: only real directories are opened up.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            open_up(&entry.path());
        }
    }
}
