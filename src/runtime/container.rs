//! A container on disk: `<root>/<id>/` holding `state.json`, the `config.json`
//! it was created from, and `exec.fifo` while it waits for `start`.

use super::state::{Record, Status, process_start};
use super::{Context, Error, Result, cgroups::Cgroup};
use crate::image::lock::{FileLock, Mode};
use oci_spec::runtime::Spec;
use std::fs;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// A container's state directory and record.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
}

/// Container ids: what runc accepts, and nothing that could be a path.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-+".contains(&b))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid container id {id:?}: use letters, digits, '_', '.', '-' and '+'"
        )))
    }
}

impl Container {
    pub fn dir_for(root: &Path, id: &str) -> PathBuf {
        root.join(id)
    }

    /// Loads container `id` from the state root.
    pub fn load(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        let dir = Self::dir_for(root, id);
        let path = dir.join(STATE_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()));
            }
            Err(e) => return Err(e).ctx("read", &path),
        };
        let record: Record = serde_json::from_slice(&data)
            .map_err(|e| Error::container(id, format!("corrupt {}: {e}", path.display())))?;
        Ok(Self { dir, record })
    }

    /// Every container under `root`, sorted by id; unreadable ones are skipped.
    pub fn list(root: &Path) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).ctx("read", root),
        };
        for entry in rd.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Ok(c) = Self::load(root, &id) {
                out.push(c);
            }
        }
        out.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        Ok(out)
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Writes the record atomically.
    pub fn save(&self) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec(&self.record).expect("state serializes");
        fs::write(&tmp, data).ctx("write", &tmp)?;
        fs::rename(&tmp, &path).ctx("rename", &path)
    }

    /// Serializes verbs on one container (create/start/kill/delete/...).
    pub fn lock(&self) -> Result<FileLock> {
        FileLock::acquire(&self.dir.join("lock"), Mode::Exclusive)
            .map_err(|e| Error::container(self.id(), e))
    }

    /// The config the container was created with.
    pub fn config(&self) -> Result<Spec> {
        let path = self.dir.join(CONFIG_FILE);
        super::spec::read(&path)
            .map_err(|e| Error::container(self.id(), format!("read {}: {e}", path.display())))
    }

    pub fn cgroup(&self) -> Option<Cgroup> {
        self.record.cgroup.as_ref().map(Cgroup::open)
    }

    /// True while the init process (same pid, same start time) is alive.
    pub fn init_alive(&self) -> bool {
        self.record.pid > 0 && process_start(self.record.pid) == Some(self.record.pid_start)
    }

    /// The live status, derived from the process, the exec fifo and the freezer.
    pub fn status(&self) -> Status {
        if self.record.pid == 0 {
            return if self.record.status == Status::Creating {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if let Some(cg) = self.cgroup()
            && cg.is_frozen().unwrap_or(false)
        {
            return Status::Paused;
        }
        Status::Running
    }

    /// The state as `kiln state` prints it (runc's fields).
    pub fn oci_state(&self) -> serde_json::Value {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.record.pid
        };
        serde_json::json!({
            "ociVersion": self.record.oci_version,
            "id": self.record.id,
            "pid": pid,
            "status": status.to_string(),
            "bundle": self.record.bundle,
            "rootfs": self.record.rootfs,
            "created": self.record.created,
            "owner": owner_name(&self.record.owner),
            "annotations": self.record.annotations,
        })
    }

    /// Refuses unless `allowed(status)`; names the verb and status otherwise.
    pub fn require(&self, verb: &str, allowed: fn(Status) -> bool) -> Result<Status> {
        let status = self.status();
        if allowed(status) {
            Ok(status)
        } else {
            Err(Error::container(
                self.id(),
                format!("cannot {verb} a {status} container"),
            ))
        }
    }
}

/// Now, as RFC 3339 with nanoseconds (as runc writes `created`).
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_nanos()
    )
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The user name for the uid a container's record holds (looked up when
/// shown, not on the way to starting the container), else the uid itself.
fn owner_name(uid: &str) -> String {
    uid.parse()
        .ok()
        .and_then(|u| nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(u)).ok())
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x").is_ok());
        for bad in ["", "..", "a/b", "a b", "\u{e9}"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_675), (2023, 11, 14));
        assert!(now_rfc3339().ends_with('Z'));
    }
}
