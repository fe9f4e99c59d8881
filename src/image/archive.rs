//! Writing an image as an OCI archive (a tar of an OCI layout, what skopeo's
//! `oci-archive:` and `podman load` read), byte-for-byte reproducible.

use super::layer_writer::epoch;
use super::model::Image;
use super::store::{REF_NAME, Ref};
use super::{Digest, Error, IoContext, Result, Store};
use oci_spec::image::{ImageIndexBuilder, MediaType};
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

/// Writes the image `r` (loaded as `image`) to `out` as an OCI archive.
pub fn write_archive(store: &Store, r: &Ref, image: &Image, out: impl Write) -> Result<()> {
    let mtime = epoch();
    let mut tar = tar::Builder::new(out);
    let mut desc = r.manifest.clone();
    desc.set_annotations(Some(HashMap::from([(
        REF_NAME.to_string(),
        r.name.to_string(),
    )])));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![desc])
        .build()
        .map_err(|e| Error::invalid("archive index", e))?;
    let index = serde_json::to_vec(&index).map_err(|e| Error::invalid("archive index", e))?;
    let w = |e: io::Error| Error::invalid("archive", format!("write: {e}"));
    append(
        &mut tar,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        mtime,
    )
    .map_err(w)?;
    append(&mut tar, "index.json", &index, mtime).map_err(w)?;
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
        tar.append_data(&mut h, dir, io::empty()).map_err(w)?;
    }
    let mut blobs: Vec<(Digest, u64)> = vec![
        (image.manifest_digest.clone(), r.manifest.size()),
        (image.config_digest.clone(), image.manifest.config().size()),
    ];
    blobs.extend(image.layers.iter().map(|l| (l.digest.clone(), l.size)));
    blobs.sort();
    blobs.dedup();
    for (d, size) in blobs {
        let reader = store.open_blob(&d, Some(size))?;
        let mut h = header(tar::EntryType::Regular, 0o644, size, mtime);
        tar.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), reader)
            .obj(format!("blob {d}"))?;
    }
    tar.into_inner().and_then(|mut o| o.flush()).map_err(w)
}

/// Exports to `dest` (a file written atomically) or to stdout for `-`.
pub fn export(store: &Store, r: &Ref, image: &Image, dest: &Path) -> Result<()> {
    if dest == Path::new("-") {
        return write_archive(store, r, image, io::BufWriter::new(io::stdout().lock()));
    }
    let tmp = dest.with_file_name(format!(
        ".{}.kiln-tmp-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let file = std::fs::File::create(&tmp).ctx("create", &tmp)?;
    let result = (|| {
        let mut w = io::BufWriter::with_capacity(1 << 20, file);
        write_archive(store, r, image, &mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx("write", &tmp)?;
        file.sync_all().ctx("sync", &tmp)?;
        std::fs::rename(&tmp, dest).ctx("rename to", dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
    mtime: u64,
) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64, mtime);
    tar.append_data(&mut h, path, data)
}
