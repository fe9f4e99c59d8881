//! The deterministic layer writer: a directory tree → a tar+gzip layer blob,
//! entries sorted, times clamped, owners normalized, computing the diffID and
//! the blob digest in the same pass. The same tree always gives the same bytes.
//!
//! The tree is walked and tarred on one thread while another compresses and
//! hashes, so the two halves overlap as they do in `tar -c | gzip`.

use super::digest::HashWriter;
use super::{Digest, Error, IoContext, Result};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// CNB's reproducible timestamp, 1980-01-01T00:00:01Z, used when
/// `SOURCE_DATE_EPOCH` is not set.
pub const DEFAULT_EPOCH: u64 = 315_532_801;

/// `SOURCE_DATE_EPOCH` if set and valid, else `DEFAULT_EPOCH`.
pub fn epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_EPOCH)
}

/// How to write a layer.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// Latest mtime written; later ones are clamped down to it.
    pub epoch: u64,
    /// Keep uid/gid (otherwise everything is owned by 0:0).
    pub keep_ownership: bool,
    /// gzip level, 1 (fast) to 9 (small).
    pub level: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            epoch: epoch(),
            keep_ownership: false,
            level: 6,
        }
    }
}

/// The digests and size of a written layer.
#[derive(Clone, Debug)]
pub struct Written {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
}

/// Writes `src` as a gzipped layer to `out`.
pub fn write_layer<W: Write + Send>(src: &Path, out: W, opts: &WriteOptions) -> Result<Written> {
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Vec<u8>>(8);
        let level = opts.level;
        let compressor = std::thread::Builder::new()
            .name("kiln-gzip".into())
            .spawn_scoped(scope, move || compress(rx, out, level))
            .map_err(|e| Error::invalid("layer writer", e))?;
        let walked = (|| {
            let mut tar = tar::Builder::new(HashWriter::new(ChunkWriter::new(tx)));
            let mut links = HashMap::new();
            walk(&mut tar, src, "", opts, &mut links)?;
            let hashed = tar.into_inner().ctx("write layer from", src)?;
            let (mut chunks, diff_id, _) = hashed.finish();
            chunks.flush().ctx("write layer from", src)?;
            Ok::<_, Error>(diff_id)
        })();
        let compressed = compressor
            .join()
            .map_err(|_| Error::invalid("layer writer", "compressor panicked"))?;
        let diff_id = walked?;
        let (digest, size) = compressed.ctx("compress layer from", src)?;
        Ok(Written {
            digest,
            diff_id,
            size,
        })
    })
}

/// Compresses the tar chunks into `out`, hashing the compressed bytes.
fn compress<W: Write>(rx: Receiver<Vec<u8>>, out: W, level: u32) -> io::Result<(Digest, u64)> {
    let hashed = HashWriter::new(out);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(hashed, flate2::Compression::new(level));
    for chunk in rx {
        gz.write_all(&chunk)?;
    }
    let (mut out, d, n) = gz.finish()?.finish();
    out.flush()?;
    Ok((d, n))
}

/// Sends whole 1 MiB chunks to the compressor thread.
struct ChunkWriter {
    tx: Option<SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn new(tx: SyncSender<Vec<u8>>) -> Self {
        Self {
            tx: Some(tx),
            buf: Vec::with_capacity(1 << 20),
        }
    }
    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(1 << 20));
        match &self.tx {
            Some(tx) if tx.send(chunk).is_ok() => Ok(()),
            _ => Err(io::Error::other("compressor stopped")),
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 1 << 20 {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.tx = None; // closing the channel ends the compressor
        Ok(())
    }
}

fn walk<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    rel: &str,
    opts: &WriteOptions,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .ctx("read directory", dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .ctx("read directory", dir)?;
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for name in names {
        let path = dir.join(&name);
        let name = name
            .to_str()
            .ok_or_else(|| Error::invalid(path.display(), "file name is not UTF-8"))?;
        let entry = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::symlink_metadata(&path).ctx("stat", &path)?;
        if append_entry(tar, &path, &entry, &meta, opts, links)? {
            walk(tar, &path, &entry, opts, links)?;
        }
    }
    Ok(())
}

/// Appends one entry; returns true for a directory to descend into.
fn append_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    entry: &str,
    meta: &fs::Metadata,
    opts: &WriteOptions,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<bool> {
    let ft = meta.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_mode(meta.mode() & 0o7777);
    h.set_mtime((meta.mtime().max(0) as u64).min(opts.epoch));
    let (uid, gid) = if opts.keep_ownership {
        (meta.uid() as u64, meta.gid() as u64)
    } else {
        (0, 0)
    };
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(0);
    let e = |err: io::Error| Error::Io {
        what: "add to layer",
        path: path.to_path_buf(),
        source: err,
    };
    append_xattrs(tar, path, &ft).map_err(e)?;
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        tar.append_data(&mut h, format!("{entry}/"), io::empty())
            .map_err(e)?;
        return Ok(true);
    }
    if ft.is_file() {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                tar.append_link(&mut h, entry, first).map_err(e)?;
                return Ok(false);
            }
            links.insert(key, entry.to_string());
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(meta.len());
        let file = fs::File::open(path).map_err(e)?;
        tar.append_data(&mut h, entry, file.take(meta.len()))
            .map_err(e)?;
    } else if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        let target = fs::read_link(path).map_err(e)?;
        tar.append_link(&mut h, entry, target).map_err(e)?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            tar::EntryType::Fifo
        };
        h.set_entry_type(kind);
        let rdev = meta.rdev();
        h.set_device_major(nix::sys::stat::major(rdev) as u32)
            .map_err(e)?;
        h.set_device_minor(nix::sys::stat::minor(rdev) as u32)
            .map_err(e)?;
        tar.append_data(&mut h, entry, io::empty()).map_err(e)?;
    }
    // Sockets have no place in a layer.
    Ok(false)
}

/// File capabilities and user xattrs travel as PAX `SCHILY.xattr.*` records.
fn append_xattrs<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    ft: &fs::FileType,
) -> io::Result<()> {
    if ft.is_symlink() {
        return Ok(());
    }
    let Ok(names) = xattr::list(path) else {
        return Ok(());
    };
    let mut records = Vec::new();
    for name in names {
        let Some(n) = name.to_str() else { continue };
        if !(n.starts_with("user.") || n == "security.capability") {
            continue;
        }
        if let Ok(Some(v)) = xattr::get(path, n) {
            records.push((format!("SCHILY.xattr.{n}"), v));
        }
    }
    if records.is_empty() {
        return Ok(());
    }
    records.sort();
    tar.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}
