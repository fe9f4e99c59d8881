//! `kiln image from-dir`: a directory tree → a single-layer image in the store,
//! reproducible (same tree and options → same manifest digest).

use super::layer_writer::{self, WriteOptions};
use super::reference::Name;
use super::store::Store;
use super::{Digest, Error, IoContext, Result};
use oci_spec::image::{
    ConfigBuilder, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder,
    ImageManifestBuilder, MediaType, RootFsBuilder,
};
use std::path::Path;

/// The runtime defaults written into the image config.
#[derive(Clone, Debug, Default)]
pub struct ImageSettings {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: Vec<(String, String)>,
}

/// The host architecture in OCI spelling.
pub fn host_arch() -> oci_spec::image::Arch {
    match std::env::consts::ARCH {
        "x86_64" => oci_spec::image::Arch::Amd64,
        "aarch64" => oci_spec::image::Arch::ARM64,
        other => oci_spec::image::Arch::Other(other.to_string()),
    }
}

fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn invalid(e: impl ToString) -> Error {
    Error::invalid("image config", e)
}

/// Writes `dir` as one layer plus config and manifest, and names it `name`.
pub fn from_dir(
    store: &Store,
    dir: &Path,
    name: &Name,
    settings: &ImageSettings,
    opts: &WriteOptions,
) -> Result<Digest> {
    if !dir.is_dir() {
        return Err(Error::invalid(dir.display(), "not a directory"));
    }
    let mut staging = store.staging()?;
    let tmp = staging.dir().join("layer");
    let file = std::fs::File::create(&tmp).ctx("create", &tmp)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let layer = layer_writer::write_layer(dir, &mut w, opts)?;
    let file = w
        .into_inner()
        .map_err(|e| e.into_error())
        .ctx("write", &tmp)?;
    drop(file);
    let f = std::fs::File::open(&tmp).ctx("open", &tmp)?;
    staging.write_blob(f, Some(&layer.digest), Some(layer.size))?;
    std::fs::remove_file(&tmp).ctx("remove", &tmp)?;

    let config = image_config(settings, &layer.diff_id, &rfc3339(opts.epoch))?;
    let config_json = serde_json::to_vec(&config).map_err(invalid)?;
    let (config_digest, config_size) = staging.write_blob(&config_json[..], None, None)?;
    let descriptor = |media: MediaType, digest: &Digest, size: u64| {
        DescriptorBuilder::default()
            .media_type(media)
            .digest(oci_spec::image::Digest::from(digest))
            .size(size)
            .build()
            .map_err(invalid)
    };
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config_size,
        )?)
        .layers(vec![descriptor(
            MediaType::ImageLayerGzip,
            &layer.digest,
            layer.size,
        )?])
        .build()
        .map_err(invalid)?;
    let manifest_json = serde_json::to_vec(&manifest).map_err(invalid)?;
    let (manifest_digest, manifest_size) = staging.write_blob(&manifest_json[..], None, None)?;
    staging.commit(store)?;
    let desc = descriptor(MediaType::ImageManifest, &manifest_digest, manifest_size)?;
    store.set_ref(name, desc)?;
    Ok(manifest_digest)
}

/// The image config: entrypoint, cmd, env (PATH first), workdir, user and
/// labels from `settings`, one layer, one history entry, all dated `created`.
fn image_config(
    settings: &ImageSettings,
    diff_id: &Digest,
    created: &str,
) -> Result<oci_spec::image::ImageConfiguration> {
    let mut cfg = ConfigBuilder::default();
    if !settings.entrypoint.is_empty() {
        cfg = cfg.entrypoint(settings.entrypoint.clone());
    }
    if !settings.cmd.is_empty() {
        cfg = cfg.cmd(settings.cmd.clone());
    }
    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    env.extend(settings.env.iter().cloned());
    cfg = cfg.env(env);
    if let Some(w) = &settings.workdir {
        cfg = cfg.working_dir(w.clone());
    }
    if let Some(u) = &settings.user {
        cfg = cfg.user(u.clone());
    }
    if !settings.labels.is_empty() {
        cfg = cfg.labels(
            settings
                .labels
                .iter()
                .cloned()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    ImageConfigurationBuilder::default()
        .created(created.to_string())
        .architecture(host_arch())
        .os(oci_spec::image::Os::Linux)
        .config(cfg.build().map_err(invalid)?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id.to_string()])
                .build()
                .map_err(invalid)?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(created.to_string())
                .created_by("kiln image from-dir")
                .build()
                .map_err(invalid)?,
        ])
        .build()
        .map_err(invalid)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(315_532_801), "1980-01-01T00:00:01Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
