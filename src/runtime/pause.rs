//! `kiln pause` / `kiln resume`: freeze and thaw every process of a container.

use super::container::Container;
use super::state::Status;
use super::{Error, Result};
use std::path::Path;

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    let _lock = c.lock()?;
    c.require("pause", Status::can_pause)?;
    c.cgroup()
        .ok_or_else(|| Error::container(id, "has no cgroup to freeze"))?
        .freeze()?;
    Ok(())
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    let _lock = c.lock()?;
    c.require("resume", Status::can_resume)?;
    c.cgroup()
        .ok_or_else(|| Error::container(id, "has no cgroup to thaw"))?
        .thaw()?;
    Ok(())
}
