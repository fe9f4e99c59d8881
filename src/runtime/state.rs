//! Container status: what is persisted in `state.json`, how the live status is
//! derived when nothing watches the container, and which verbs each allows.

use super::cgroups::CgroupPaths;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

/// The OCI status values, plus runc's `paused`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

impl Status {
    /// `start` runs the user process of a created container only.
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    /// Signals reach created, running and paused containers.
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    /// Without `--force`, only stopped (or never started) containers are deleted.
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Stopped | Status::Created | Status::Creating)
    }
    pub fn can_pause(self) -> bool {
        self == Status::Running
    }
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }
    pub fn can_exec(self) -> bool {
        matches!(self, Status::Running | Status::Created)
    }
}

/// What kiln keeps about a container in `<root>/<id>/state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub oci_version: String,
    pub id: String,
    /// The container's init process (host pid), 0 until it exists.
    pub pid: i32,
    /// Its start time in clock ticks (/proc/PID/stat field 22), to tell a reused pid apart.
    pub pid_start: u64,
    /// The last status kiln wrote; the live status is derived (see `Container::status`).
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    /// The uid that created the container (shown as its user name).
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub cgroup: Option<CgroupPaths>,
    /// Set when the container's init is a kiln process that reaps zombies (kiln run --init).
    #[serde(default)]
    pub kiln_init: bool,
}

/// The start time of `pid`, or None if there is no such (non-zombie) process.
pub fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parens: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        assert!(Status::Created.can_start() && !Status::Running.can_start());
        assert!(Status::Paused.can_kill() && !Status::Stopped.can_kill());
        assert!(Status::Stopped.can_delete() && !Status::Running.can_delete());
        assert!(Status::Running.can_pause() && Status::Paused.can_resume());
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id() as i32;
        assert!(process_start(me).unwrap() > 0);
        assert_eq!(process_start(i32::MAX), None);
    }
}
