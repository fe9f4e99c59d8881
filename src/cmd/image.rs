//! Handlers for `kiln image …` and `kiln gc`.

use super::store_root;
use crate::cli::Global;
use crate::cli::image::{Format, GcArgs, ImageCmd};
use crate::image::create::{self, ImageSettings};
use crate::image::layer_writer::WriteOptions;
use crate::image::reference::Name;
use crate::image::{Store, archive, gc as gcmod, import, model, unpack};
use crate::units::human;
use anyhow::{Context, Result, bail};
use serde_json::json;

pub fn run(g: &Global, cmd: ImageCmd) -> Result<i32> {
    let store = Store::open(&store_root(g))?;
    match cmd {
        ImageCmd::Import(a) => {
            let name = a.name.as_deref().map(Name::parse).transpose()?;
            for im in import::import(&store, &a.source, name.as_ref())? {
                println!("{} {}", im.name, im.manifest);
            }
        }
        ImageCmd::Ls(a) => ls(&store, a.format)?,
        ImageCmd::Inspect(a) => inspect(&store, &a.image)?,
        ImageCmd::Export(a) => {
            let r = store.resolve(&a.image)?;
            let image = model::load_image(&store, &r.manifest)?;
            archive::export(&store, &r, &image, &a.output)?;
        }
        ImageCmd::Rm(a) => rm(&store, &a.images)?,
        ImageCmd::Unpack(a) => {
            let r = store.resolve(&a.image)?;
            let image = model::load_image(&store, &r.manifest)?;
            let stats = unpack::render(&store, &image, &a.dir)?;
            if stats.skipped_devices > 0 {
                eprintln!(
                    "kiln: warning: skipped {} device nodes (creating them needs root)",
                    stats.skipped_devices
                );
            }
            if stats.skipped_xattrs > 0 {
                eprintln!(
                    "kiln: warning: could not set {} extended attributes",
                    stats.skipped_xattrs
                );
            }
        }
        ImageCmd::FromDir(a) => {
            let name = Name::parse(&a.name)?;
            let settings = ImageSettings {
                entrypoint: a.entrypoint,
                cmd: a.cmd,
                env: a.env,
                workdir: a.workdir,
                user: a.user,
                labels: a
                    .labels
                    .iter()
                    .map(|l| {
                        l.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .context(format!("label {l:?}: expected K=V"))
                    })
                    .collect::<Result<_>>()?,
            };
            let opts = WriteOptions {
                keep_ownership: a.keep_ownership,
                level: a.level,
                ..WriteOptions::default()
            };
            let d = create::from_dir(&store, &a.dir, &name, &settings, &opts)?;
            println!("{name} {d}");
        }
    }
    Ok(0)
}

fn ls(store: &Store, format: Format) -> Result<()> {
    let mut rows = Vec::new();
    for r in store.refs()? {
        let image = model::load_image(store, &r.manifest)?;
        rows.push(json!({
            "name": r.name.to_string(),
            "digest": image.manifest_digest.to_string(),
            "size": image.size(),
            "created": image.config.created().clone().unwrap_or_default(),
        }));
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<40} {:<14} {:>10}  CREATED", "NAME", "ID", "SIZE");
    for row in rows {
        let digest = row["digest"].as_str().unwrap_or_default();
        println!(
            "{:<40} {:<14} {:>10}  {}",
            row["name"].as_str().unwrap_or_default(),
            &digest.trim_start_matches("sha256:")[..12],
            human(row["size"].as_u64().unwrap_or(0)),
            row["created"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

fn inspect(store: &Store, query: &str) -> Result<()> {
    let r = store.resolve(query)?;
    let image = model::load_image(store, &r.manifest)?;
    let layers: Vec<_> = image
        .layers
        .iter()
        .zip(image.manifest.layers())
        .map(|(l, d)| json!({"digest": l.digest.to_string(), "diffId": l.diff_id.to_string(), "size": l.size, "mediaType": d.media_type().to_string()}))
        .collect();
    let out = json!({
        "name": r.name.to_string(),
        "digest": image.manifest_digest.to_string(),
        "size": image.size(),
        "created": image.config.created(),
        "architecture": image.config.architecture().to_string(),
        "os": image.config.os().to_string(),
        "layers": layers,
        "manifest": image.manifest,
        "config": image.config,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn rm(store: &Store, queries: &[String]) -> Result<()> {
    for q in queries {
        let found = store.resolve(q)?;
        let exact_name = Name::parse(q).is_ok_and(|n| n == found.name);
        let removed = store.update_refs(|refs| {
            let before: Vec<_> = refs.iter().map(|r| r.name.clone()).collect();
            refs.retain(|r| {
                if exact_name {
                    r.name != found.name
                } else {
                    r.manifest.digest() != found.manifest.digest()
                }
            });
            Ok(before
                .into_iter()
                .filter(|n| !refs.iter().any(|r| &r.name == n))
                .collect::<Vec<_>>())
        })?;
        if removed.is_empty() {
            bail!("image {q}: not found");
        }
        for n in removed {
            println!("untagged {n}");
        }
    }
    Ok(())
}

pub fn gc(g: &Global, args: GcArgs) -> Result<i32> {
    let store = Store::open_exclusive(&store_root(g))?;
    let r = gcmod::gc(&store)?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "removed {} blobs ({}), {} extracted layers ({}), {} temporary entries",
            r.blobs,
            human(r.blob_bytes),
            r.layers,
            human(r.layer_bytes),
            r.temp_entries
        );
    }
    Ok(0)
}
