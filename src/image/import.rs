//! `kiln image import`: copies the images of an OCI layout or archive into the
//! store, all or nothing, and names them.

use super::layout::{self, Opened};
use super::model::{self, Blobs, Compression, Kind, Layer};
use super::reference::Name;
use super::store::REF_NAME;
use super::{Digest, Error, IoContext, Result, Store};
use oci_spec::image::{Descriptor, ImageIndex};
use std::path::Path;

/// An image that an import stored.
#[derive(Debug)]
pub struct Imported {
    pub name: Name,
    pub manifest: Digest,
}

/// Imports every image of the layout at `path` (for multi-platform indexes,
/// the host's platform). `name` names the image if there is exactly one.
pub fn import(store: &Store, path: &Path, name: Option<&Name>) -> Result<Vec<Imported>> {
    let mut opened = layout::open(store, path)?;
    let index = opened.index.clone();
    let mut found = Vec::new();
    collect(&opened, &index, None, &mut found, 0)?;
    if found.is_empty() {
        return Err(Error::invalid(
            path.display(),
            "index.json lists no image for this platform",
        ));
    }
    if name.is_some() && found.len() > 1 {
        return Err(Error::invalid(
            path.display(),
            format!("holds {} images; --name needs exactly one", found.len()),
        ));
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut named = Vec::new();
    for (desc, ann_name) in found {
        let image = model::load_image(&opened, &desc).map_err(|e| missing_in(e, &desc))?;
        opened.stage(&image.manifest_digest, desc.size())?;
        opened.stage(&image.config_digest, image.manifest.config().size())?;
        for layer in &image.layers {
            opened
                .stage(&layer.digest, layer.size)
                .map_err(|e| missing_in(e, &desc))?;
            check_layer(&opened, layer)?;
        }
        let n = match (name, ann_name) {
            (Some(n), _) => n.clone(),
            (None, Some(a)) => name_from_annotation(&a, &stem)?,
            (None, None) => Name::from_file_stem(&stem, None)?,
        };
        named.push((n, desc));
    }
    let Opened { staging, .. } = opened;
    staging.commit(store)?;
    let mut out = Vec::new();
    for (n, desc) in named {
        let manifest = model::descriptor_digest(&desc)?;
        let mut clean = desc.clone();
        clean.set_annotations(None);
        clean.set_platform(None);
        store.set_ref(&n, clean)?;
        out.push(Imported { name: n, manifest });
    }
    Ok(out)
}

/// Reads a staged layer in full, so a bad layer never reaches the store. An
/// uncompressed layer is its own tar, so its diffID must be its digest (the
/// layer cache trusts diffIDs as keys). A gzipped layer's diffID is checked
/// when it is unpacked, where the size limits bound the decompression.
fn check_layer(opened: &Opened, layer: &Layer) -> Result<()> {
    let object = format!("layer {}", layer.digest);
    if layer.compression == Compression::None && layer.diff_id != layer.digest {
        return Err(Error::invalid(
            object,
            format!(
                "diffID mismatch (config says {}, the uncompressed layer is {})",
                layer.diff_id, layer.digest
            ),
        ));
    }
    let mut blob = opened.open_blob(&layer.digest, Some(layer.size))?;
    std::io::copy(&mut blob, &mut std::io::sink()).obj(object)?;
    Ok(())
}

fn missing_in(e: Error, desc: &Descriptor) -> Error {
    match e {
        Error::NotFound(what) => Error::invalid(
            format!("manifest {}", desc.digest()),
            format!("{what} is missing"),
        ),
        e => e,
    }
}

/// A name from `org.opencontainers.image.ref.name`: a full name
/// (`app:v1`, `docker.io/library/busybox:latest`) or just a tag (`v1`).
fn name_from_annotation(ann: &str, stem: &str) -> Result<Name> {
    if ann.contains(':') || ann.contains('/') {
        Name::parse(ann)
    } else {
        Name::from_file_stem(stem, Some(ann))
    }
}

/// Walks an index (and nested indexes) for manifests of the host platform.
fn collect(
    opened: &Opened,
    index: &ImageIndex,
    inherited: Option<String>,
    out: &mut Vec<(Descriptor, Option<String>)>,
    depth: u32,
) -> Result<()> {
    if depth > 4 {
        return Err(Error::invalid("index", "nested more than 4 deep"));
    }
    for desc in index.manifests() {
        if !platform_matches(desc) {
            continue;
        }
        let ann = desc.annotations().as_ref();
        let name = ann
            .and_then(|a| {
                a.get("io.containerd.image.name")
                    .or_else(|| a.get(REF_NAME))
            })
            .cloned()
            .or_else(|| inherited.clone());
        match model::kind_of(desc)? {
            Kind::Manifest => out.push((desc.clone(), name)),
            Kind::Index => {
                let d = model::descriptor_digest(desc)?;
                let nested = model::read_index(opened, &d, Some(desc.size()))
                    .map_err(|e| missing_in(e, desc))?;
                let before = out.len();
                collect(opened, &nested, name, out, depth + 1)?;
                // Only one manifest per nested index: the first for this platform.
                out.truncate(before + 1.min(out.len() - before));
            }
        }
    }
    Ok(())
}

fn platform_matches(desc: &Descriptor) -> bool {
    let Some(p) = desc.platform() else {
        return true;
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    p.os().to_string() == "linux" && p.architecture().to_string() == arch
}
