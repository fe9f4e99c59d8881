//! Small helpers for reading and writing cgroup control files, each error
//! naming the file (and the value written).

use super::{Error, Result};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `value` to the control file `dir/name`.
pub fn write(dir: &Path, name: &str, value: &str) -> Result<()> {
    write_path(&dir.join(name), value)
}

/// Writes `value` to `path` in one write(2), as the kernel expects.
///
/// `create` only matters for unit tests on fake trees: cgroupfs files always
/// exist. A missing file on a real cgroupfs fails with EACCES (no create op),
/// which is reported as "not found" so the message points at the real cause.
pub fn write_path(path: &Path, value: &str) -> Result<()> {
    let res = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|mut source| {
        if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM)) && !path.exists() {
            source = io::Error::from(io::ErrorKind::NotFound);
        }
        Error::Write {
            path: path.to_path_buf(),
            value: value.to_string(),
            source,
        }
    })
}

/// Reads `dir/name`.
pub fn read(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    fs::read_to_string(&path).map_err(|source| Error::Io {
        what: "read",
        path,
        source,
    })
}

/// Reads `dir/name`, or `None` when it does not exist.
pub fn read_opt(dir: &Path, name: &str) -> Result<Option<String>> {
    match read(dir, name) {
        Ok(s) => Ok(Some(s)),
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a single-number file; "max" and a missing file read as `None`.
pub fn read_u64(dir: &Path, name: &str) -> Result<Option<u64>> {
    let Some(text) = read_opt(dir, name)? else {
        return Ok(None);
    };
    let t = text.trim();
    if t == "max" || t.is_empty() {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| Error::Parse {
        path: dir.join(name),
        reason: format!("expected a number, found {t:?}"),
    })
}

/// Reads a "key value" per line file (memory.stat, cpu.stat, memory.events);
/// a missing file reads as empty. Lines that are not "key number" are skipped.
pub fn read_keyed(dir: &Path, name: &str) -> Result<BTreeMap<String, u64>> {
    let text = read_opt(dir, name)?.unwrap_or_default();
    Ok(parse_keyed(&text))
}

pub fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(char::is_whitespace)?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The pids listed in `dir/cgroup.procs`; a removed cgroup has none.
pub fn procs(dir: &Path) -> Result<Vec<i32>> {
    let text = read_opt(dir, "cgroup.procs")?.unwrap_or_default();
    text.split_whitespace()
        .map(|p| {
            p.parse().map_err(|_| Error::Parse {
                path: dir.join("cgroup.procs"),
                reason: format!("bad pid {p:?}"),
            })
        })
        .collect()
}

/// The pids of `dir` and every cgroup below it.
pub fn procs_recursive(dir: &Path) -> Result<Vec<i32>> {
    let mut out = procs(dir)?;
    for sub in subdirs(dir)? {
        out.extend(procs_recursive(&sub)?);
    }
    Ok(out)
}

/// Child cgroups (subdirectories) of `dir`; none when `dir` is gone.
pub fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                what: "list",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Creates `dir` (not its parents); true when this call created it.
pub fn mkdir(dir: &Path) -> Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(Error::Io {
            what: "create cgroup",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes the cgroup `dir` and any cgroups below it, deepest first, retrying
/// while the kernel still reports it busy (tasks still exiting). Gone is fine.
pub fn rmdir_tree(dir: &Path) -> Result<()> {
    for sub in subdirs(dir)? {
        rmdir_tree(&sub)?;
    }
    let mut delay = std::time::Duration::from_millis(1);
    let mut tries = 0;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 12 => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(200));
                tries += 1;
            }
            Err(source) => {
                return Err(Error::Io {
                    what: "remove cgroup",
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}
