//! Rendering an image's root filesystem into a directory, and the layer stream
//! that every extraction reads: blob → verify digest → gunzip → verify diffID,
//! run on its own thread so decompression and file writing overlap.

use super::digest::VerifyReader;
use super::extract::{self, Stats, Whiteouts};
use super::model::{Compression, Image, Layer};
use super::{Error, IoContext, Result, Store};
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};
use std::thread::JoinHandle;

const CHUNK: usize = 1 << 20;

/// The uncompressed, verified tar stream of a layer.
pub struct LayerStream {
    rx: Receiver<io::Result<Vec<u8>>>,
    /// Read chunks go back to the worker to be filled again, so the stream
    /// allocates (and zeroes) a handful of buffers, not one per chunk.
    recycle: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    worker: Option<JoinHandle<()>>,
}

/// Opens `layer` for reading its tar. Errors in the blob (digest, size,
/// gzip, diffID) surface as read errors, at the latest at end of stream.
pub fn layer_reader(store: &Store, layer: &Layer) -> Result<LayerStream> {
    let blob = store.open_blob(&layer.digest, Some(layer.size))?;
    let (tx, rx) = sync_channel(4);
    let (recycle, spare) = channel();
    let what = format!("layer {}", layer.digest);
    let layer = layer.clone();
    let worker = std::thread::Builder::new()
        .name("kiln-gunzip".into())
        .spawn(move || {
            let result = pump(blob, &layer, spare, |chunk| tx.send(Ok(chunk)).is_ok());
            if let Err(e) = result {
                let _ = tx.send(Err(e));
            }
        })
        .obj(what)?;
    Ok(LayerStream {
        rx,
        recycle,
        cur: Vec::new(),
        pos: 0,
        done: false,
        worker: Some(worker),
    })
}

/// Decompresses and verifies on the worker thread, handing chunks to `send`
/// and reusing the buffers that come back on `spare`.
fn pump(
    blob: VerifyReader<fs::File>,
    layer: &Layer,
    spare: Receiver<Vec<u8>>,
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> io::Result<()> {
    let buffered = BufReader::with_capacity(CHUNK, blob);
    let mut tar: Box<dyn Read> = match layer.compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::None => Box::new(buffered),
    };
    if layer.compression == Compression::Gzip {
        tar = Box::new(VerifyReader::new(tar, layer.diff_id.clone(), None));
    }
    loop {
        let mut chunk = spare.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0); // zeroes only what is new
        let mut filled = 0;
        while filled < CHUNK {
            let n = tar.read(&mut chunk[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(());
        }
        chunk.truncate(filled);
        if !send(chunk) {
            return Ok(()); // the reader went away
        }
    }
}

impl Read for LayerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let used = std::mem::replace(&mut self.cur, chunk);
                    if used.capacity() >= CHUNK {
                        let _ = self.recycle.send(used); // the worker may be gone
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    self.done = true;
                    if let Some(w) = self.worker.take() {
                        let _ = w.join();
                    }
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Renders `image`'s root filesystem into `dest`, which must be missing or
/// empty. On failure, what was written is removed again.
pub fn render(store: &Store, image: &Image, dest: &Path) -> Result<Stats> {
    let created = !dest.exists();
    if created {
        fs::create_dir_all(dest).ctx("create", dest)?;
    } else if fs::read_dir(dest).ctx("read", dest)?.next().is_some() {
        return Err(Error::invalid(dest.display(), "destination is not empty"));
    }
    let result = render_into(store, image, dest);
    if result.is_err() {
        if created {
            let _ = fs::remove_dir_all(dest);
        } else if let Ok(d) = fs::File::open(dest) {
            let _ = crate::inroot::clear_dir(std::os::fd::AsFd::as_fd(&d), |_| true);
        }
    }
    result
}

fn render_into(store: &Store, image: &Image, dest: &Path) -> Result<Stats> {
    let opts = extract::Options::new(Whiteouts::Apply);
    let mut total = Stats::default();
    for layer in &image.layers {
        let stream = layer_reader(store, layer)?;
        let s = extract::extract(stream, dest, &opts, &format!("layer {}", layer.digest))?;
        total.entries += s.entries;
        total.bytes += s.bytes;
        total.skipped_devices += s.skipped_devices;
        total.skipped_xattrs += s.skipped_xattrs;
    }
    Ok(total)
}
