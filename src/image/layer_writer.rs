//! The deterministic layer writer: a directory tree → a tar+gzip layer blob,
//! entries sorted, times clamped, owners normalized, computing the diffID and
//! the blob digest in the same pass. The same tree always gives the same bytes.
//!
//! The tree is walked and tarred on the caller's thread; the tar stream is cut
//! into 1 MiB blocks that worker threads deflate in parallel (as pigz does),
//! and one more thread puts them in order, wraps them in a gzip header and
//! trailer, and hashes the result. Block boundaries depend only on the bytes,
//! never on timing or the number of threads, so the output does not either.

use super::digest::HashWriter;
use super::{Digest, Error, IoContext, Result};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

/// CNB's reproducible timestamp, 1980-01-01T00:00:01Z, used when
/// `SOURCE_DATE_EPOCH` is not set.
pub const DEFAULT_EPOCH: u64 = 315_532_801;

/// Tar bytes per independently deflated block.
const BLOCK: usize = 1 << 20;
/// Each block is primed with the 32 KiB before it (deflate's whole window),
/// so cutting the stream costs next to nothing in size.
const WINDOW: usize = 32 << 10;
/// Files up to this size are read with one system call into a reused buffer.
const SLURP: u64 = 4 << 20;

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
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    write_with(src, out, opts, workers)
}

/// `write_layer` with `workers` deflate threads (the output does not depend on it).
fn write_with<W: Write + Send>(
    src: &Path,
    out: W,
    opts: &WriteOptions,
    workers: usize,
) -> Result<Written> {
    let spawn_err = |e: io::Error| Error::invalid("layer writer", e);
    std::thread::scope(|scope| {
        let (blocks, todo) = sync_channel::<Block>(2 * workers);
        let (done, deflated) = channel();
        let todo = Arc::new(Mutex::new(todo));
        for _ in 0..workers {
            let (todo, done, level) = (Arc::clone(&todo), done.clone(), opts.level);
            std::thread::Builder::new()
                .name("kiln-deflate".into())
                .spawn_scoped(scope, move || deflate_blocks(&todo, &done, level))
                .map_err(spawn_err)?;
        }
        drop(done);
        let level = opts.level;
        let gzip = std::thread::Builder::new()
            .name("kiln-gzip".into())
            .spawn_scoped(scope, move || assemble(deflated, out, level))
            .map_err(spawn_err)?;
        let walked = (|| {
            let mut tar = tar::Builder::new(HashWriter::new(BlockWriter::new(blocks)));
            let mut walker = Walker {
                opts,
                links: HashMap::new(),
                buf: Vec::new(),
            };
            walker.walk(&mut tar, src, "")?;
            let hashed = tar.into_inner().ctx("write layer from", src)?;
            let (mut blocks, diff_id, _) = hashed.finish();
            blocks.finish().ctx("write layer from", src)?;
            Ok::<_, Error>(diff_id)
        })();
        let compressed = gzip
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

/// A block of the tar stream, with the window before it.
struct Block {
    seq: u64,
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
}

/// A block deflated: raw deflate data ending on a byte boundary (a sync
/// flush), or with the final block bit for the last one.
struct Deflated {
    seq: u64,
    data: Vec<u8>,
    crc: Crc,
    last: bool,
}

/// A worker: deflates blocks until the walker or the assembler stops.
fn deflate_blocks(todo: &Mutex<Receiver<Block>>, done: &Sender<io::Result<Deflated>>, level: u32) {
    loop {
        let block = match todo.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(block) = block else { return };
        if done.send(deflate(block, level)).is_err() {
            return;
        }
    }
}

fn deflate(block: Block, level: u32) -> io::Result<Deflated> {
    let mut z = Compress::new(Compression::new(level), false);
    if !block.dict.is_empty() {
        z.set_dictionary(&block.dict).map_err(io::Error::other)?;
    }
    let flush = if block.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(block.data.len() + block.data.len() / 8 + 64);
    loop {
        let input = &block.data[z.total_in() as usize..];
        let status = z
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        // Done once the final block is out, or, for a sync flush, once all
        // input is taken and output space is left over (zlib's rule).
        let all_in = z.total_in() as usize == block.data.len();
        if status == Status::StreamEnd || (!block.last && all_in && out.len() < out.capacity()) {
            break;
        }
        out.reserve(out.capacity().max(4096));
    }
    let mut crc = Crc::new();
    crc.update(&block.data);
    Ok(Deflated {
        seq: block.seq,
        data: out,
        crc,
        last: block.last,
    })
}

/// Writes the deflated blocks in order between a gzip header and trailer
/// into `out`, hashing the compressed bytes.
fn assemble<W: Write>(
    deflated: Receiver<io::Result<Deflated>>,
    out: W,
    level: u32,
) -> io::Result<(Digest, u64)> {
    let mut out = HashWriter::new(out);
    out.write_all(&gzip_header(level))?;
    let mut early = BTreeMap::new();
    let (mut next, mut crc) = (0u64, Crc::new());
    for d in deflated {
        let d = d?;
        early.insert(d.seq, d);
        while let Some(d) = early.remove(&next) {
            out.write_all(&d.data)?;
            crc.combine(&d.crc);
            next += 1;
            if d.last {
                out.write_all(&crc.sum().to_le_bytes())?;
                out.write_all(&crc.amount().to_le_bytes())?; // ISIZE: length mod 2^32
                let (mut out, digest, size) = out.finish();
                out.flush()?;
                return Ok((digest, size));
            }
        }
    }
    Err(io::Error::other("layer stream ended early"))
}

/// The 10-byte gzip header flate2's `GzBuilder` writes with mtime 0: no name,
/// no time, OS "unknown", and the level hint gzip(1) uses.
fn gzip_header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9.. => 2,
        ..=1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// Cuts the tar stream into `BLOCK`-sized blocks for the deflate workers.
struct BlockWriter {
    tx: Option<SyncSender<Block>>,
    buf: Vec<u8>,
    dict: Vec<u8>,
    seq: u64,
}

impl BlockWriter {
    fn new(tx: SyncSender<Block>) -> Self {
        Self {
            tx: Some(tx),
            buf: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            seq: 0,
        }
    }

    fn send(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        let window = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let dict = std::mem::replace(&mut self.dict, window);
        let block = Block {
            seq: self.seq,
            data,
            dict,
            last,
        };
        self.seq += 1;
        match &self.tx {
            Some(tx) if tx.send(block).is_ok() => Ok(()),
            _ => Err(io::Error::other("compressor stopped")),
        }
    }

    /// Sends the last block (possibly empty) and closes the stream.
    fn finish(&mut self) -> io::Result<()> {
        self.send(true)?;
        self.tx = None;
        Ok(())
    }
}

impl Write for BlockWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            let n = (BLOCK - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.buf.len() == BLOCK {
                self.send(false)?;
            }
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // blocks go out when full; `finish` sends the rest
    }
}

/// The walk's state: options, hard links seen, and the file read buffer.
struct Walker<'a> {
    opts: &'a WriteOptions,
    links: HashMap<(u64, u64), String>,
    buf: Vec<u8>,
}

impl Walker<'_> {
    fn walk<W: Write>(&mut self, tar: &mut tar::Builder<W>, dir: &Path, rel: &str) -> Result<()> {
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
            if self.append_entry(tar, &path, &entry, &meta)? {
                self.walk(tar, &path, &entry)?;
            }
        }
        Ok(())
    }

    /// Appends one entry; returns true for a directory to descend into.
    fn append_entry<W: Write>(
        &mut self,
        tar: &mut tar::Builder<W>,
        path: &Path,
        entry: &str,
        meta: &fs::Metadata,
    ) -> Result<bool> {
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_mtime((meta.mtime().max(0) as u64).min(self.opts.epoch));
        let (uid, gid) = if self.opts.keep_ownership {
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
            self.append_file(tar, &mut h, path, entry, meta)
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

    /// A regular file, or a hard link to one already written. Its data must
    /// be exactly as long as the header says, or the tar is corrupt.
    fn append_file<W: Write>(
        &mut self,
        tar: &mut tar::Builder<W>,
        h: &mut tar::Header,
        path: &Path,
        entry: &str,
        meta: &fs::Metadata,
    ) -> io::Result<()> {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                return tar.append_link(h, entry, first);
            }
            self.links.insert(key, entry.to_string());
        }
        h.set_entry_type(tar::EntryType::Regular);
        let len = meta.len();
        h.set_size(len);
        let file = fs::File::open(path)?;
        if len <= SLURP {
            self.buf.clear();
            self.buf.reserve(len as usize);
            file.take(len).read_to_end(&mut self.buf)?;
            check_len(self.buf.len() as u64, len)?;
            return tar.append_data(h, entry, &self.buf[..]);
        }
        let mut data = Exact {
            inner: file.take(len),
            left: len,
        };
        tar.append_data(h, entry, io::BufReader::with_capacity(1 << 20, &mut data))
    }
}

fn check_len(read: u64, expected: u64) -> io::Result<()> {
    if read == expected {
        return Ok(());
    }
    Err(shrank())
}

fn shrank() -> io::Error {
    io::Error::other("file shrank while being read")
}

/// A file's data, counting what is left so a shrunken file is caught.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left -= n as u64;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(shrank());
        }
        Ok(n)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    /// Compressible but not trivial bytes.
    fn data(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_u32;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 7 == 0 {
                    (x % 26) as u8 + b'a'
                } else {
                    b' '
                }
            })
            .collect()
    }

    fn write(dir: &Path) -> (Vec<u8>, Written) {
        write_n(dir, 2)
    }

    fn write_n(dir: &Path, workers: usize) -> (Vec<u8>, Written) {
        let mut out = Vec::new();
        let opts = WriteOptions {
            epoch: DEFAULT_EPOCH,
            keep_ownership: false,
            level: 6,
        };
        let w = write_with(dir, &mut out, &opts, workers).unwrap();
        (out, w)
    }

    /// Decompresses with flate2's own gzip reader, which checks CRC and length.
    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut tar)
            .unwrap();
        tar
    }

    fn check(dir: &Path) -> Vec<u8> {
        let (gz, w) = write(dir);
        assert_eq!(w.size, gz.len() as u64);
        assert_eq!(w.digest.hex(), hex::encode(Sha256::digest(&gz)));
        let tar = gunzip(&gz);
        assert_eq!(w.diff_id.hex(), hex::encode(Sha256::digest(&tar)));
        for workers in [1, 3] {
            let (again, _) = write_n(dir, workers);
            assert!(
                gz == again,
                "same tree, different bytes with {workers} workers"
            );
        }
        tar
    }

    #[test]
    fn blocks_round_trip_and_repeat() {
        let t = tempfile::tempdir().unwrap();
        let big = data(3 * BLOCK + 12_345);
        fs::write(t.path().join("big"), &big).unwrap();
        fs::create_dir(t.path().join("d")).unwrap();
        fs::write(t.path().join("d/small"), b"hello").unwrap();
        let tar = check(t.path());
        let mut archive = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            seen.push((e.path().unwrap().display().to_string(), body));
        }
        assert_eq!(seen[0], ("big".to_string(), big));
        assert_eq!(seen[1].0, "d/");
        assert_eq!(seen[2], ("d/small".to_string(), b"hello".to_vec()));
    }

    #[test]
    fn a_tar_of_whole_blocks_ends_with_an_empty_one() {
        let t = tempfile::tempdir().unwrap();
        // One 512-byte header + the data + 1024 bytes of end-of-archive.
        fs::write(t.path().join("f"), data(2 * BLOCK - 1536)).unwrap();
        assert_eq!(check(t.path()).len(), 2 * BLOCK);
    }

    #[test]
    fn an_empty_tree_is_a_valid_layer() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(check(t.path()), vec![0u8; 1024]);
    }
}
