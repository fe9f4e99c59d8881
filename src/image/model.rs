//! Reading manifests, indexes and image configs (OCI and Docker v2 media types)
//! from any blob source, with the checks that keep malformed images out.

use super::store::{Store, read_verified};
use super::{Digest, Error, Result, digest::VerifyReader};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use std::fs::File;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Anything that serves verified blobs: the store, an OCI layout being imported.
pub trait Blobs {
    fn open_blob(&self, d: &Digest, size: Option<u64>) -> Result<VerifyReader<File>>;

    fn read_blob(&self, d: &Digest, size: Option<u64>) -> Result<Vec<u8>> {
        read_verified(self.open_blob(d, size)?, d)
    }
}

impl Blobs for Store {
    fn open_blob(&self, d: &Digest, size: Option<u64>) -> Result<VerifyReader<File>> {
        Store::open_blob(self, d, size)
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// One layer of an image: its blob and the digest of its uncompressed tar.
#[derive(Clone, Debug)]
pub struct Layer {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub compression: Compression,
}

/// A manifest with its config, loaded and checked.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    pub layers: Vec<Layer>,
}

impl Image {
    /// The sum of the blob sizes: manifest, config and layers, as stored.
    pub fn size(&self) -> u64 {
        self.manifest.config().size() + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// What kind of object a descriptor points to.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    Index,
}

pub fn descriptor_digest(desc: &Descriptor) -> Result<Digest> {
    Ok(Digest::try_from(desc.digest())?)
}

/// Classifies a descriptor in an index, rejecting unknown media types.
pub fn kind_of(desc: &Descriptor) -> Result<Kind> {
    match desc.media_type() {
        MediaType::ImageManifest => Ok(Kind::Manifest),
        MediaType::ImageIndex => Ok(Kind::Index),
        MediaType::Other(s) if s == DOCKER_MANIFEST => Ok(Kind::Manifest),
        MediaType::Other(s) if s == DOCKER_LIST => Ok(Kind::Index),
        other => Err(Error::invalid(
            format!("descriptor {}", desc.digest()),
            format!("unknown media type {other}"),
        )),
    }
}

pub fn layer_compression(desc: &Descriptor) -> Result<Compression> {
    match desc.media_type() {
        MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => Ok(Compression::None),
        MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
            Ok(Compression::Gzip)
        }
        MediaType::Other(s) if s == DOCKER_LAYER_GZIP => Ok(Compression::Gzip),
        MediaType::Other(s) if s == DOCKER_LAYER => Ok(Compression::None),
        other => Err(Error::invalid(
            format!("layer {}", desc.digest()),
            format!("unsupported media type {other}"),
        )),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(data: &[u8], what: &str, d: &Digest) -> Result<T> {
    serde_json::from_slice(data)
        .map_err(|e| Error::invalid(format!("{what} {d}"), format!("malformed JSON: {e}")))
}

pub fn read_index(blobs: &impl Blobs, d: &Digest, size: Option<u64>) -> Result<ImageIndex> {
    parse_json(&blobs.read_blob(d, size)?, "index", d)
}

/// Loads a manifest and its config, checking media types and layer/diffID counts.
pub fn load_image(blobs: &impl Blobs, desc: &Descriptor) -> Result<Image> {
    let manifest_digest = descriptor_digest(desc)?;
    if kind_of(desc)? != Kind::Manifest {
        return Err(Error::invalid(
            format!("manifest {manifest_digest}"),
            "is an index, not a manifest",
        ));
    }
    let data = blobs.read_blob(&manifest_digest, Some(desc.size()))?;
    let manifest: ImageManifest = parse_json(&data, "manifest", &manifest_digest)?;
    let cfg_desc = manifest.config();
    let config_digest = descriptor_digest(cfg_desc)?;
    let cfg_ok = matches!(cfg_desc.media_type(), MediaType::ImageConfig)
        || matches!(cfg_desc.media_type(), MediaType::Other(s) if s == DOCKER_CONFIG);
    if !cfg_ok {
        return Err(Error::invalid(
            format!("manifest {manifest_digest}"),
            format!("unknown config media type {}", cfg_desc.media_type()),
        ));
    }
    let data = blobs
        .read_blob(&config_digest, Some(cfg_desc.size()))
        .map_err(|e| match e {
            Error::NotFound(what) => Error::invalid(
                format!("manifest {manifest_digest}"),
                format!("config {what} is missing"),
            ),
            e => e,
        })?;
    let config: ImageConfiguration = parse_json(&data, "config", &config_digest)?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::invalid(
            format!("manifest {manifest_digest}"),
            format!(
                "{} layers but config {config_digest} lists {} diffIDs",
                manifest.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (l, diff) in manifest.layers().iter().zip(diff_ids) {
        layers.push(Layer {
            digest: descriptor_digest(l)?,
            diff_id: Digest::parse(diff)?,
            size: l.size(),
            compression: layer_compression(l)?,
        });
    }
    Ok(Image {
        manifest_digest,
        manifest,
        config_digest,
        config,
        layers,
    })
}
