//! The directories of `kiln run IMAGE` containers (`<store>/containers/<id>/`:
//! the root's mount point, the overlay's upper and work dirs, and files/etc
//! with the container's /etc/hosts and /etc/hostname), reused
//! instead of made and removed for every container.
//!
//! Directories are what a file system charges most for: on this project's
//! ext4 dev VM, removing one costs ~0.3 ms, and a container used eight (its
//! own, rootfs, upper, work, overlayfs's work/work/incompat/volatile and a
//! copied-up etc) — over half of a `kiln run IMAGE true`. A released
//! directory is emptied down to its subdirectories (what the container wrote
//! and overlayfs's own work files go) and parked under
//! `<store>/containers/@free/`; the next container takes it over with one
//! rename. `@` cannot start a container id, so nothing mistakes the pool for
//! a container.

use std::fs;
use std::io;
use std::path::Path;

/// The pool, inside the containers directory.
const FREE: &str = "@free";
/// What a parked directory holds, all empty: these directories, and in
/// `files` the directory `etc`.
const KEEP: [&str; 4] = ["rootfs", "upper", "work", "files"];
const FILES_ETC: &str = "files/etc";
/// Parked directories beyond this many are removed instead.
const MAX_FREE: usize = 8;

/// Makes `dir` (`<containers>/<id>`, which must not exist) out of a parked
/// directory, with its empty rootfs, upper, work and files/etc. False when
/// none is left.
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

/// Gives a container's directory back: emptied and parked, or removed when
/// it cannot be parked (the pool is full, or something in it is not as kiln
/// left it).
pub fn release(dir: &Path) -> io::Result<()> {
    match park(dir) {
        Ok(()) => Ok(()),
        Err(_) => super::delete::remove_tree(dir),
    }
}

fn park(dir: &Path) -> io::Result<()> {
    let containers = dir.parent().ok_or(io::ErrorKind::InvalidInput)?;
    let free = containers.join(FREE);
    if fs::read_dir(&free).map_or(0, |d| d.count()) >= MAX_FREE {
        return Err(io::ErrorKind::QuotaExceeded.into());
    }
    empty(dir)?;
    fs::create_dir_all(&free)?;
    let name = dir.file_name().ok_or(io::ErrorKind::InvalidInput)?;
    let mut parked = name.to_os_string();
    parked.push(format!("-{}", std::process::id()));
    fs::rename(dir, free.join(parked))
}

/// Removes everything in `dir` but its (emptied) rootfs, upper, work and
/// files/etc.
fn empty(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
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
                    remove(&f?.path())?;
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
    fn a_released_directory_comes_back_empty() {
        let t = tempfile::tempdir().unwrap();
        let dir = container(t.path(), "a");
        fs::write(dir.join("layers.json"), "[]").unwrap();
        fs::create_dir_all(dir.join("upper/etc")).unwrap();
        fs::write(dir.join("upper/etc/hosts"), "x").unwrap();
        fs::create_dir_all(dir.join("work/work/incompat/volatile")).unwrap();
        fs::create_dir_all(dir.join("files/etc")).unwrap();
        fs::write(dir.join("files/etc/hostname"), "a").unwrap();
        release(&dir).unwrap();
        assert!(!dir.exists());
        let next = t.path().join("containers/b");
        assert!(claim(&next));
        let mut names: Vec<_> = fs::read_dir(&next)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut keep = KEEP.to_vec();
        keep.sort();
        assert_eq!(names, keep);
        for k in ["rootfs", "upper", "work", FILES_ETC] {
            assert_eq!(fs::read_dir(next.join(k)).unwrap().count(), 0, "{k}");
        }
        assert_eq!(fs::read_dir(next.join("files")).unwrap().count(), 1);
        assert!(!claim(&t.path().join("containers/c")), "the pool is empty");
    }

    #[test]
    fn the_pool_is_bounded() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..MAX_FREE + 2 {
            release(&container(t.path(), &format!("c{i}"))).unwrap();
        }
        let free = t.path().join("containers").join(FREE);
        assert_eq!(fs::read_dir(free).unwrap().count(), MAX_FREE);
        assert_eq!(
            fs::read_dir(t.path().join("containers")).unwrap().count(),
            1
        );
    }
}
