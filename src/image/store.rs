//! The content-addressed image store: verified blobs, staged atomic writes, and
//! refs kept in an OCI layout `index.json`, safe for concurrent kiln processes.
//!
//! ```text
//! <root>/oci-layout, index.json    the store is itself an OCI layout (skopeo can read it)
//! <root>/blobs/sha256/<hex>        blobs, only ever complete and verified
//! <root>/layers/sha256/<hex>/      extracted layers by diffID (see layer_cache)
//! <root>/tmp/                      staging for operations in progress
//! <root>/lock                      shared by every operation, exclusive for gc
//! <root>/index.lock                serializes ref updates
//! ```

use super::digest::{HashWriter, VerifyReader};
use super::lock::{FileLock, Mode};
use super::reference::Name;
use super::{Digest, Error, IoContext, Result};
use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The annotation that names a manifest in an OCI layout index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The largest JSON blob (manifest, index, config) kiln reads into memory.
pub const MAX_JSON_BLOB: u64 = 16 << 20;

/// An open store; holds a shared (or, for gc, exclusive) lock while alive.
pub struct Store {
    root: PathBuf,
    _lock: FileLock,
}

/// A name and the manifest it points to.
#[derive(Clone, Debug)]
pub struct Ref {
    pub name: Name,
    pub manifest: Descriptor,
}

impl Store {
    /// `/var/lib/kiln` as root, else `$XDG_DATA_HOME/kiln` (or `~/.local/share/kiln`).
    pub fn default_root() -> PathBuf {
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/kiln");
        }
        match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d).join("kiln"),
            None => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
                PathBuf::from(home).join(".local/share/kiln")
            }
        }
    }

    /// Opens (creating if needed) the store at `root` for normal operations.
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_mode(root, Mode::Shared)
    }

    /// Opens the store with no other kiln operation running on it (for gc).
    pub fn open_exclusive(root: &Path) -> Result<Self> {
        Self::open_mode(root, Mode::Exclusive)
    }

    fn open_mode(root: &Path, mode: Mode) -> Result<Self> {
        for sub in ["blobs/sha256", "layers/sha256", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).ctx("create store directory", &dir)?;
        }
        let lock = FileLock::acquire(&root.join("lock"), mode)?;
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Opens a blob for streaming; the reader fails at end of file if the
    /// content does not match `d` (and `size`, when given).
    pub fn open_blob(&self, d: &Digest, size: Option<u64>) -> Result<VerifyReader<File>> {
        let path = self.blob_path(d);
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(format!("blob {d}")),
            _ => Error::Io {
                what: "open blob",
                path: path.clone(),
                source: e,
            },
        })?;
        Ok(VerifyReader::new(file, d.clone(), size))
    }

    /// Reads a whole (small, JSON) blob, verified against its digest.
    pub fn read_blob(&self, d: &Digest, size: Option<u64>) -> Result<Vec<u8>> {
        read_verified(self.open_blob(d, size)?, d)
    }

    /// A fresh staging area for blobs that become visible only on commit.
    pub fn staging(&self) -> Result<Staging> {
        Staging::new(&self.root)
    }

    /// Stores `data` as a blob and returns its digest.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        let mut staging = self.staging()?;
        let (d, _) = staging.write_blob(data, None, None)?;
        staging.commit(self)?;
        Ok(d)
    }

    /// All refs, sorted by name.
    pub fn refs(&self) -> Result<Vec<Ref>> {
        let path = self.root.join("index.json");
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx("read", &path),
        };
        let index: ImageIndex =
            serde_json::from_slice(&data).map_err(|e| Error::invalid(path.display(), e))?;
        let mut refs = Vec::new();
        for desc in index.manifests() {
            let name = desc.annotations().as_ref().and_then(|a| a.get(REF_NAME));
            if let Some(name) = name.and_then(|n| Name::parse(n).ok()) {
                refs.push(Ref {
                    name,
                    manifest: desc.clone(),
                });
            }
        }
        refs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(refs)
    }

    /// Changes the refs under the index lock and writes them back atomically.
    pub fn update_refs<T>(&self, f: impl FnOnce(&mut Vec<Ref>) -> Result<T>) -> Result<T> {
        let _guard = FileLock::acquire(&self.root.join("index.lock"), Mode::Exclusive)?;
        let mut refs = self.refs()?;
        let out = f(&mut refs)?;
        refs.sort_by(|a, b| a.name.cmp(&b.name));
        refs.dedup_by(|a, b| a.name == b.name);
        let manifests: Vec<Descriptor> = refs
            .into_iter()
            .map(|r| {
                let mut desc = r.manifest;
                let mut ann = desc.annotations().clone().unwrap_or_default();
                ann.insert(REF_NAME.to_string(), r.name.to_string());
                desc.set_annotations(Some(ann));
                desc
            })
            .collect();
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|e| Error::invalid("store index", e))?;
        let json =
            serde_json::to_vec_pretty(&index).map_err(|e| Error::invalid("store index", e))?;
        write_atomic(&self.root.join("index.json"), &json)?;
        Ok(out)
    }

    /// Points `name` at `manifest`, replacing what it named before.
    pub fn set_ref(&self, name: &Name, manifest: Descriptor) -> Result<()> {
        self.update_refs(|refs| {
            refs.retain(|r| &r.name != name);
            refs.push(Ref {
                name: name.clone(),
                manifest,
            });
            Ok(())
        })
    }

    /// Finds an image by name (`app`, `app:v2`) or by manifest digest or a
    /// unique prefix of it (`sha256:ab12…`, `ab12…`).
    pub fn resolve(&self, query: &str) -> Result<Ref> {
        let refs = self.refs()?;
        if let Ok(name) = Name::parse(query)
            && let Some(r) = refs.iter().find(|r| r.name == name)
        {
            return Ok(r.clone());
        }
        let hex = query.strip_prefix("sha256:").unwrap_or(query);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut hits: HashMap<String, &Ref> = HashMap::new();
            for r in &refs {
                let d = r.manifest.digest().to_string();
                if d.trim_start_matches("sha256:").starts_with(hex) {
                    hits.insert(d, r);
                }
            }
            match hits.len() {
                1 => return Ok(hits.into_values().next().unwrap().clone()),
                n if n > 1 => {
                    return Err(Error::invalid(
                        format!("image {query}"),
                        "digest prefix is ambiguous",
                    ));
                }
                _ => {}
            }
        }
        Err(Error::NotFound(format!("image {query}")))
    }
}

/// Reads a verified reader to its end into memory, up to `MAX_JSON_BLOB`.
pub fn read_verified<R: Read>(reader: VerifyReader<R>, d: &Digest) -> Result<Vec<u8>> {
    // Room for the size the descriptor gives and the read that finds the
    // end: one read instead of a series of growing ones.
    let hint = reader.expected_size().unwrap_or(0).min(MAX_JSON_BLOB) as usize;
    let mut data = Vec::with_capacity(hint + 1);
    reader
        .take(MAX_JSON_BLOB + 1)
        .read_to_end(&mut data)
        .obj(format!("blob {d}"))?;
    if data.len() as u64 > MAX_JSON_BLOB {
        return Err(Error::invalid(format!("blob {d}"), "larger than 16 MiB"));
    }
    Ok(data)
}

/// Blobs written into a private directory under `<root>/tmp`, moved into the
/// store only by `commit`; dropped uncommitted, they vanish.
pub struct Staging {
    dir: PathBuf,
    blobs: HashMap<Digest, PathBuf>,
}

static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

impl Staging {
    fn new(root: &Path) -> Result<Self> {
        let seq = STAGING_SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = root
            .join("tmp")
            .join(format!("stage-{}-{seq}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).ctx("create staging directory", &dir)?;
        Ok(Self {
            dir,
            blobs: HashMap::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Copies `reader` into a staged blob, checking it against `expected`.
    pub fn write_blob(
        &mut self,
        reader: impl Read,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<(Digest, u64)> {
        let tmp = self.dir.join(format!("blob-{}", self.blobs.len()));
        let file = File::create(&tmp).ctx("create", &tmp)?;
        let mut w = HashWriter::new(io::BufWriter::with_capacity(1 << 20, file));
        let what = expected.map_or("blob".to_string(), |d| format!("blob {d}"));
        io::copy(&mut { reader }, &mut w).obj(&what)?;
        let (buf, digest, n) = w.finish();
        let file = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx("write", &tmp)?;
        if let Some(want) = expected.filter(|want| **want != digest) {
            return Err(Error::invalid(
                format!("blob {want}"),
                format!("digest mismatch (expected {want}, got {digest})"),
            ));
        }
        if let Some(want) = size.filter(|s| *s != n) {
            return Err(Error::invalid(
                format!("blob {digest}"),
                format!("size mismatch (expected {want}, got {n})"),
            ));
        }
        file.sync_all().ctx("sync", &tmp)?;
        let path = self.dir.join(digest.hex());
        fs::rename(&tmp, &path).ctx("rename", &tmp)?;
        self.blobs.insert(digest.clone(), path);
        Ok((digest, n))
    }

    /// The staged copy of `d`, if this staging area holds it.
    pub fn get(&self, d: &Digest) -> Option<&Path> {
        self.blobs.get(d).map(PathBuf::as_path)
    }

    /// Moves every staged blob into the store. Blobs are content-addressed, so
    /// a blob another process stored meanwhile is identical and simply kept.
    pub fn commit(self, store: &Store) -> Result<()> {
        for (d, path) in &self.blobs {
            let dest = store.blob_path(d);
            if !dest.exists() {
                fs::rename(path, &dest).ctx("rename blob into", &dest)?;
            }
        }
        let dir = store.root.join("blobs/sha256");
        File::open(&dir)
            .and_then(|f| f.sync_all())
            .ctx("sync", &dir)?;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Writes `data` to `path` through a temp file, fsync and rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).ctx("create", &tmp)?;
    f.write_all(data).ctx("write", &tmp)?;
    f.sync_all().ctx("sync", &tmp)?;
    fs::rename(&tmp, path).ctx("rename", path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::DescriptorBuilder;

    fn desc(d: &Digest) -> Descriptor {
        DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .digest(oci_spec::image::Digest::from(d))
            .size(2u64)
            .build()
            .unwrap()
    }

    #[test]
    fn blobs_round_trip_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_bytes(b"{}").unwrap();
        assert_eq!(store.read_blob(&d, Some(2)).unwrap(), b"{}");
        fs::write(store.blob_path(&d), b"[]").unwrap();
        let err = store.read_blob(&d, None).unwrap_err().to_string();
        assert!(err.contains("digest mismatch"), "{err}");
        assert!(
            fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn refs_resolve_by_name_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_bytes(b"{}").unwrap();
        store
            .set_ref(&Name::parse("app").unwrap(), desc(&d))
            .unwrap();
        assert_eq!(
            store.resolve("app:latest").unwrap().name.to_string(),
            "app:latest"
        );
        assert_eq!(store.resolve("app").unwrap().name.tag(), "latest");
        assert!(store.resolve(&d.hex()[..8]).is_ok());
        assert!(matches!(store.resolve("nope"), Err(Error::NotFound(_))));
    }

    #[test]
    fn failed_staging_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut st = store.staging().unwrap();
        let wrong = Digest::of_bytes(b"x");
        assert!(st.write_blob(&b"y"[..], Some(&wrong), None).is_err());
        drop(st);
        assert!(
            fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
        assert!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .next()
                .is_none()
        );
    }
}
