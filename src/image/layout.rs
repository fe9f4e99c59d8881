//! Reading OCI image layouts: a directory (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) or the same packed as a tar (an "oci-archive", plain or
//! gzipped), whose blobs are staged into the store's tmp as they stream past.

use super::digest::VerifyReader;
use super::model::Blobs;
use super::store::{MAX_JSON_BLOB, Staging, Store};
use super::{Digest, Error, IoContext, Result};
use oci_spec::image::ImageIndex;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// An OCI layout to import from.
pub enum Source {
    Dir(PathBuf),
    /// An archive whose blobs sit in `staging` already, digests checked.
    Archive(PathBuf),
}

/// A layout opened for reading: its index and where its blobs are.
pub struct Opened<'s> {
    pub index: ImageIndex,
    pub source: Source,
    pub staging: Staging,
    pub store: &'s Store,
}

impl Opened<'_> {
    /// Blobs referenced by the import are in staging (archive) or get copied
    /// there (directory), verified on the way.
    pub fn stage(&mut self, d: &Digest, size: u64) -> Result<()> {
        if self.staging.get(d).is_some() {
            return Ok(());
        }
        match &self.source {
            Source::Dir(dir) => {
                let r = open_dir_blob(dir, d, Some(size))?;
                self.staging.write_blob(r, Some(d), Some(size))?;
                Ok(())
            }
            Source::Archive(path) => Err(Error::invalid(
                path.display(),
                format!("blob {d} is missing from the archive"),
            )),
        }
    }
}

impl Blobs for Opened<'_> {
    fn open_blob(&self, d: &Digest, size: Option<u64>) -> Result<VerifyReader<File>> {
        if let Some(p) = self.staging.get(d) {
            let f = File::open(p).ctx("open", p)?;
            return Ok(VerifyReader::new(f, d.clone(), size));
        }
        match &self.source {
            Source::Dir(dir) => open_dir_blob(dir, d, size),
            Source::Archive(_) => Err(Error::NotFound(format!("blob {d}"))),
        }
    }
}

fn open_dir_blob(dir: &Path, d: &Digest, size: Option<u64>) -> Result<VerifyReader<File>> {
    let path = dir.join("blobs/sha256").join(d.hex());
    match File::open(&path) {
        Ok(f) => Ok(VerifyReader::new(f, d.clone(), size)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::NotFound(format!("blob {d}")))
        }
        Err(e) => Err(e).ctx("open", &path),
    }
}

/// Opens a layout directory or archive file for import into `store`.
pub fn open<'s>(store: &'s Store, path: &Path) -> Result<Opened<'s>> {
    let mut staging = store.staging()?;
    let meta = std::fs::metadata(path).ctx("open", path)?;
    let (index, source) = if meta.is_dir() {
        check_layout_file(
            &std::fs::read(path.join("oci-layout")).ctx("read", &path.join("oci-layout"))?,
            path,
        )?;
        let ipath = path.join("index.json");
        let data = std::fs::read(&ipath).ctx("read", &ipath)?;
        (parse_index(&data, &ipath)?, Source::Dir(path.to_path_buf()))
    } else {
        let index = read_archive(path, &mut staging)?;
        (index, Source::Archive(path.to_path_buf()))
    };
    Ok(Opened {
        index,
        source,
        staging,
        store,
    })
}

fn parse_index(data: &[u8], path: &Path) -> Result<ImageIndex> {
    serde_json::from_slice(data)
        .map_err(|e| Error::invalid(path.display(), format!("malformed JSON: {e}")))
}

fn check_layout_file(data: &[u8], at: &Path) -> Result<()> {
    let v: serde_json::Value = serde_json::from_slice(data).map_err(|e| {
        Error::invalid(
            at.join("oci-layout").display(),
            format!("malformed JSON: {e}"),
        )
    })?;
    match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some(ver) if ver.starts_with("1.") => Ok(()),
        other => Err(Error::invalid(
            at.join("oci-layout").display(),
            format!("unsupported imageLayoutVersion {other:?}"),
        )),
    }
}

/// Streams an archive once: blobs go to staging (checked against the digest in
/// their name), `index.json` and `oci-layout` are kept in memory.
fn read_archive(path: &Path, staging: &mut Staging) -> Result<ImageIndex> {
    let file = File::open(path).ctx("open", path)?;
    let mut buf = BufReader::with_capacity(1 << 20, file);
    let gz = buf.fill_buf().ctx("read", path)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::bufread::MultiGzDecoder::new(buf))
    } else {
        Box::new(buf)
    };
    let corrupt = |e: std::io::Error| {
        Error::invalid(path.display(), format!("truncated or corrupt archive: {e}"))
    };
    let mut archive = tar::Archive::new(reader);
    let (mut index, mut layout) = (None, None);
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes())
            .trim_start_matches("./")
            .to_string();
        let size = entry.header().size().map_err(corrupt)?;
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            let d = Digest::from_hex(hex).map_err(|_| {
                Error::invalid(
                    path.display(),
                    format!("entry {name:?} is not a sha256 digest"),
                )
            })?;
            let data = Exact {
                inner: &mut entry,
                left: size,
            };
            staging
                .write_blob(data, Some(&d), Some(size))
                .map_err(|e| match e {
                    Error::Content { source, .. } => corrupt(source),
                    e => e,
                })?;
        } else if name == "index.json" || name == "oci-layout" {
            if size > MAX_JSON_BLOB {
                return Err(Error::invalid(
                    path.display(),
                    format!("{name} is larger than 16 MiB"),
                ));
            }
            let mut data = Vec::new();
            let mut exact = Exact {
                inner: &mut entry,
                left: size,
            };
            exact.read_to_end(&mut data).map_err(corrupt)?;
            if name == "index.json" {
                index = Some(data)
            } else {
                layout = Some(data)
            }
        }
    }
    let missing =
        |what: &str| Error::invalid(path.display(), format!("not an OCI archive: no {what}"));
    check_layout_file(&layout.ok_or_else(|| missing("oci-layout"))?, path)?;
    parse_index(
        &index.ok_or_else(|| missing("index.json"))?,
        &path.join("index.json"),
    )
}

/// An archive entry read to exactly its size: the tar reader ends the last
/// entry of an archive cut short without an error, which must not pass for
/// a short blob (or be blamed on its digest).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("an entry ends {} bytes early", self.left),
            ));
        }
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}
