//! `kiln gc`: with every other kiln operation on the store locked out, removes
//! blobs no ref reaches, extracted layers no ref uses, and leftovers in tmp/.

use super::model;
use super::{Digest, IoContext, Result, Store};
use std::collections::HashSet;
use std::fs;
use std::path::Path;

/// What gc removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub layers: u64,
    pub layer_bytes: u64,
    pub temp_entries: u64,
}

/// Collects garbage in `store`, which must be opened exclusively.
pub fn gc(store: &Store) -> Result<Report> {
    let mut keep_blobs = HashSet::new();
    let mut keep_layers = HashSet::new();
    for r in store.refs()? {
        // A ref whose manifest cannot be read stops gc: deleting blindly could lose data.
        let image = model::load_image(store, &r.manifest)?;
        keep_blobs.insert(image.manifest_digest.clone());
        keep_blobs.insert(image.config_digest.clone());
        for l in &image.layers {
            keep_blobs.insert(l.digest.clone());
            keep_layers.insert(l.diff_id.hex().to_string());
        }
    }
    // Containers of `kiln run` pin the layers their overlay root is made of.
    let containers = store.root().join("containers");
    for entry in fs::read_dir(&containers).into_iter().flatten().flatten() {
        let pins = fs::read(entry.path().join("layers.json")).ok();
        let pins: Vec<String> = pins
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        keep_layers.extend(
            pins.iter()
                .map(|p| p.trim_start_matches("sha256:").to_string()),
        );
    }
    let mut report = Report::default();
    let blobs = store.root().join("blobs/sha256");
    for entry in fs::read_dir(&blobs).ctx("read", &blobs)? {
        let entry = entry.ctx("read", &blobs)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep = Digest::from_hex(&name).is_ok_and(|d| keep_blobs.contains(&d));
        if !keep {
            report.blob_bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(entry.path()).ctx("remove", &entry.path())?;
            report.blobs += 1;
        }
    }
    let layers = store.root().join("layers/sha256");
    for entry in fs::read_dir(&layers).ctx("read", &layers)? {
        let entry = entry.ctx("read", &layers)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let hex = name.strip_suffix(".lock").unwrap_or(&name);
        if keep_layers.contains(hex) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            report.layer_bytes += du(&path);
            report.layers += 1;
        }
        remove_any(&path)?;
    }
    let tmp = store.root().join("tmp");
    for entry in fs::read_dir(&tmp).ctx("read", &tmp)? {
        let entry = entry.ctx("read", &tmp)?;
        remove_any(&entry.path())?;
        report.temp_entries += 1;
    }
    // Container directories `kiln run` keeps for reuse
    // (runtime::bundle_pool); one being parked meanwhile may stay.
    for path in crate::runtime::bundle_pool::parked(&store.root().join("containers")) {
        if remove_any(&path).is_ok() {
            report.temp_entries += 1;
        }
    }
    Ok(report)
}

fn remove_any(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).ctx("stat", path)?;
    if meta.is_dir() {
        // Extracted layers may hold read-only directories; make them writable first.
        make_writable(path);
        fs::remove_dir_all(path).ctx("remove", path)
    } else {
        fs::remove_file(path).ctx("remove", path)
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::symlink_metadata(path)
        && meta.is_dir()
    {
        let _ = fs::set_permissions(
            path,
            fs::Permissions::from_mode(meta.permissions().mode() | 0o700),
        );
        if let Ok(rd) = fs::read_dir(path) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// Disk usage of a tree, in bytes of file content.
pub fn du(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}
