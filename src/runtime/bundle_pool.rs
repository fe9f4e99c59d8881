//! The directories of `kiln run IMAGE` containers (`<store>/containers/<id>/`:
//! the root's mount point, the overlay's upper and work dirs, and files/etc
//! with the container's /etc/hosts and /etc/hostname), reused
//! instead of made and removed for every container.
//!
//! Directories are what a file system charges most for: on this project's
//! ext4 dev VM, removing one costs ~0.1 ms (a synchronous discard of its
//! block), and a container used eight (its own, rootfs, upper, work,
//! overlayfs's work/work/incompat/volatile/dirty). So a finished container's
//! directory is parked as it is under `<store>/containers/@used/` (one
//! rename); the next `kiln run` empties it down to its subdirectories (what
//! the container wrote and overlayfs's own work files go) *while its own
//! container runs*, on time kiln otherwise spends waiting, and moves it to
//! `@free/`, where the run after takes it over with one rename. `@` cannot
//! start a container id, so nothing mistakes the pool for a container.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Emptied directories, ready to be taken.
const FREE: &str = "@free";
/// Directories of finished containers, still holding what they left.
const USED: &str = "@used";
/// What a parked directory holds, all empty: these directories, and in
/// `files` the directory `etc`.
const KEEP: [&str; 4] = ["rootfs", "upper", "work", "files"];
const FILES_ETC: &str = "files/etc";
/// Files every `kiln run` rewrites ([`write_in_place`]): kept, so that their
/// blocks are reused instead of freed and allocated again.
const KEEP_FILES: [&str; 3] = ["layers.json", "files/etc/hostname", "files/etc/hosts"];
/// Directories beyond this many in either stage are removed instead.
const MAX_PARKED: usize = 8;

/// Makes `dir` (`<containers>/<id>`, which must not exist) out of an
/// emptied directory, with its empty rootfs, upper, work and files/etc.
/// False when none is ready.
pub fn claim(dir: &Path) -> bool {
    let Some(free) = dir.parent().map(|p| p.join(FREE)) else {
        return false;
    };
    let Ok(entries) = fs::read_dir(&free) else {
        return false;
    };
    // Another kiln may take an entry first: its rename wins, ours moves on.
    entries.flatten().any(|e| fs::rename(e.path(), dir).is_ok())
}

/// Gives a container's directory back, parked as it is for a later
/// [`tidy`] to empty; removed instead when too many are waiting.
pub fn release(dir: &Path) -> io::Result<()> {
    let parked = dir
        .parent()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
        .and_then(|containers| park(dir, &containers.join(USED)));
    match parked {
        Ok(()) => Ok(()),
        Err(_) => super::delete::remove_tree(dir),
    }
}

/// Empties one directory a finished container left under `containers` and
/// makes it ready for [`claim`] (`kiln run` calls this while its container
/// runs). Best effort: a directory that cannot be emptied is removed.
pub fn tidy(containers: &Path) {
    let used = containers.join(USED);
    let Ok(entries) = fs::read_dir(&used) else {
        return;
    };
    // Taken by renaming it to a name only this process uses (a dot name,
    // which no parked directory has): a kiln tidying at the same time takes
    // another one.
    let mine = used.join(format!(".{}", std::process::id()));
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with('.') || fs::rename(e.path(), &mine).is_err()
        {
            continue;
        }
        if empty(&mine)
            .and_then(|()| park(&mine, &containers.join(FREE)))
            .is_err()
        {
            let _ = super::delete::remove_tree(&mine);
        }
        return;
    }
}

/// The pool's directories under `containers`, in both stages and half
/// tidied (for `kiln gc`, which removes them).
pub fn parked(containers: &Path) -> Vec<PathBuf> {
    [FREE, USED]
        .iter()
        .flat_map(|stage| fs::read_dir(containers.join(stage)).into_iter().flatten())
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// Moves `dir` into the pool directory `to`, unless that holds enough already.
fn park(dir: &Path, to: &Path) -> io::Result<()> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static PARKED: AtomicU32 = AtomicU32::new(0);
    if fs::read_dir(to).map_or(0, |d| d.count()) >= MAX_PARKED {
        return Err(io::ErrorKind::QuotaExceeded.into());
    }
    fs::create_dir_all(to)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = PARKED.fetch_add(1, Ordering::Relaxed);
    fs::rename(dir, to.join(format!("{}-{nanos}-{n}", std::process::id())))
}

/// Writes `data` over what `path` holds, making it if missing, without
/// truncating it first: truncating frees the file's block, which on a file
/// system mounted with `discard` and no journal (this project's dev VM) is
/// a synchronous discard, ~0.2 ms; writing over it reuses the block.
pub fn write_in_place(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    f.write_all(data)?;
    f.set_len(data.len() as u64)
}

/// Removes everything in `dir` but its rootfs, upper, work and files/etc
/// (emptied) and the files in `KEEP_FILES` (left as they are).
fn empty(dir: &Path) -> io::Result<()> {
    let kept_file = |path: &Path, e: &fs::DirEntry| {
        KEEP_FILES.iter().any(|k| dir.join(k) == path) && e.file_type().is_ok_and(|t| t.is_file())
    };
    for e in fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        if kept_file(&path, &e) {
            continue;
        }
        let keep = KEEP.iter().any(|k| e.file_name() == *k);
        if !keep {
            remove(&path)?;
            continue;
        }
        if !e.file_type()?.is_dir() {
            return Err(io::ErrorKind::InvalidData.into());
        }
        for inner in fs::read_dir(&path)? {
            let inner = inner?.path();
            if inner == dir.join(FILES_ETC) && inner.is_dir() {
                for f in fs::read_dir(&inner)? {
                    let f = f?;
                    if !kept_file(&f.path(), &f) {
                        remove(&f.path())?;
                    }
                }
            } else {
                remove(&inner)?;
            }
        }
        // overlayfs's marks on the upper dir (origin, impure) belong to the
        // overlay that is gone.
        for attr in xattr::list(&path)? {
            let name = attr.to_string_lossy();
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                xattr::remove(&path, &attr)?;
            }
        }
    }
    for k in KEEP.into_iter().chain([FILES_ETC]) {
        match fs::create_dir(dir.join(k)) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
    }
    Ok(())
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path)?.is_dir() {
        true => super::delete::remove_tree(path),
        false => fs::remove_file(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(root: &Path, id: &str) -> std::path::PathBuf {
        let dir = root.join("containers").join(id);
        for k in KEEP {
            fs::create_dir_all(dir.join(k)).unwrap();
        }
        dir
    }

    #[test]
    fn a_released_directory_comes_back_empty_after_a_tidy() {
        let t = tempfile::tempdir().unwrap();
        let containers = t.path().join("containers");
        let dir = container(t.path(), "a");
        fs::write(dir.join("layers.json"), "[]").unwrap();
        fs::create_dir_all(dir.join("upper/etc")).unwrap();
        fs::write(dir.join("upper/etc/hosts"), "x").unwrap();
        fs::create_dir_all(dir.join("work/work/incompat/volatile")).unwrap();
        fs::create_dir_all(dir.join("files/etc")).unwrap();
        fs::write(dir.join("files/etc/hostname"), "a").unwrap();
        fs::write(dir.join("files/etc/resolv.conf"), "nameserver 1.1.1.1").unwrap();
        fs::write(dir.join("output.log"), "a's output").unwrap();
        release(&dir).unwrap();
        assert!(!dir.exists());
        let next = containers.join("b");
        assert!(!claim(&next), "nothing is ready before a tidy");
        assert_eq!(parked(&containers).len(), 1);
        tidy(&containers);
        assert!(claim(&next));
        let mut names: Vec<_> = fs::read_dir(&next)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut keep = KEEP.to_vec();
        keep.push("layers.json");
        keep.sort();
        assert_eq!(names, keep, "what every run rewrites stays");
        for k in ["rootfs", "upper", "work"] {
            assert_eq!(fs::read_dir(next.join(k)).unwrap().count(), 0, "{k}");
        }
        let etc: Vec<_> = fs::read_dir(next.join(FILES_ETC))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(etc, ["hostname"]);
        assert_eq!(fs::read_dir(next.join("files")).unwrap().count(), 1);
        assert!(!claim(&containers.join("c")), "the pool is empty");
        assert!(parked(&containers).is_empty());
    }

    #[test]
    fn a_tidy_empties_one_directory() {
        let t = tempfile::tempdir().unwrap();
        let containers = t.path().join("containers");
        for i in 0..3 {
            let dir = container(t.path(), &format!("c{i}"));
            fs::write(dir.join("upper/f"), "x").unwrap();
            release(&dir).unwrap();
        }
        tidy(&containers);
        let count = |stage| fs::read_dir(containers.join(stage)).unwrap().count();
        assert_eq!((count(FREE), count(USED)), (1, 2));
        tidy(&containers);
        tidy(&containers);
        tidy(&containers);
        assert_eq!((count(FREE), count(USED)), (3, 0));
    }

    #[test]
    fn writing_in_place_replaces_the_whole_content() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("hosts");
        write_in_place(&f, b"a much longer first text\n").unwrap();
        write_in_place(&f, b"short\n").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"short\n");
    }

    #[test]
    fn the_pool_is_bounded() {
        let t = tempfile::tempdir().unwrap();
        let containers = t.path().join("containers");
        for i in 0..MAX_PARKED + 2 {
            release(&container(t.path(), &format!("c{i}"))).unwrap();
        }
        assert_eq!(parked(&containers).len(), MAX_PARKED);
        for _ in 0..MAX_PARKED + 2 {
            tidy(&containers);
            release(&container(t.path(), "again")).unwrap();
        }
        let count = |stage| fs::read_dir(containers.join(stage)).unwrap().count();
        assert_eq!((count(FREE), count(USED)), (MAX_PARKED, MAX_PARKED));
        assert_eq!(fs::read_dir(&containers).unwrap().count(), 2);
    }
}
