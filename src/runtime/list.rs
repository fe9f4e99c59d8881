//! `kiln list` (containers) and `kiln ps` (the processes in one container).

use super::container::Container;
use super::{Error, Result};
use std::path::Path;

/// All containers' states, as `kiln state` prints each.
pub fn list(root: &Path) -> Result<Vec<serde_json::Value>> {
    Ok(Container::list(root)?
        .iter()
        .map(Container::oci_state)
        .collect())
}

/// The host pids of every process in the container (its cgroup, else its init).
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let c = Container::load(root, id)?;
    match c.cgroup() {
        Some(cg) => {
            let mut pids = cg.pids()?;
            pids.sort_unstable();
            Ok(pids)
        }
        None if c.init_alive() => Ok(vec![c.record.pid]),
        None => Err(Error::container(id, "is not running")),
    }
}
