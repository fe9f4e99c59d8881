//! Extracted layers cached per diffID: extracted once, shared, never seen half done.

use crate::common::{Env, require_root, run, snapshot};
use kiln::image::{Store, layer_cache, model};
use std::os::unix::fs::MetadataExt;
use std::process::Command;

fn load(env: &Env, name: &str) -> (Store, model::Image) {
    let store = Store::open(&env.store()).unwrap();
    let r = store.resolve(name).unwrap();
    let image = model::load_image(&store, &r.manifest).unwrap();
    (store, image)
}

#[test]
fn a_layer_is_extracted_once_and_shared() {
    let env = Env::new();
    env.busybox_image("a");
    let img = env.path("a.img");
    env.ok(&["image", "export", "a", "-o", img.to_str().unwrap()]);
    env.ok(&["image", "import", img.to_str().unwrap(), "--name", "b"]);
    let (store, a) = load(&env, "a");
    let (_, b) = load(&env, "b");
    let da = layer_cache::ensure(&store, &a.layers[0]).unwrap();
    let ino = std::fs::metadata(da.join("bin/busybox")).unwrap().ino();
    let db = layer_cache::ensure(&store, &b.layers[0]).unwrap();
    assert_eq!(da, db);
    assert_eq!(
        std::fs::metadata(db.join("bin/busybox")).unwrap().ino(),
        ino,
        "not extracted again"
    );
    assert_eq!(snapshot(&da), snapshot(&env.busybox_rootfs()));
}

#[test]
fn a_half_extracted_layer_is_never_taken_for_complete() {
    let env = Env::new();
    env.busybox_image("a");
    let (store, a) = load(&env, "a");
    let hex = a.layers[0].diff_id.hex().to_string();
    // What a killed extraction leaves: a partial tree in tmp/.
    let partial = env.store().join("tmp").join(format!("layer-{hex}"));
    std::fs::create_dir_all(partial.join("bin")).unwrap();
    std::fs::write(partial.join("bin/busybox"), "trunc").unwrap();
    let dir = layer_cache::ensure(&store, &a.layers[0]).unwrap();
    assert_eq!(snapshot(&dir), snapshot(&env.busybox_rootfs()));
    assert!(!partial.exists());
}

#[test]
fn a_corrupt_blob_leaves_no_cached_layer() {
    let env = Env::new();
    env.busybox_image("a");
    let (store, a) = load(&env, "a");
    let blob = env
        .store()
        .join("blobs/sha256")
        .join(a.layers[0].digest.hex());
    let mut data = std::fs::read(&blob).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&blob, data).unwrap();
    let err = layer_cache::ensure(&store, &a.layers[0])
        .unwrap_err()
        .to_string();
    assert!(err.contains(&a.layers[0].digest.to_string()), "{err}");
    assert!(!layer_cache::layer_path(&store, &a.layers[0]).exists());
    assert!(
        std::fs::read_dir(env.store().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// Cached layers are real overlayfs lower dirs: whiteouts and opaque dirs hide
/// lower content when mounted.
#[test]
fn cached_layers_mount_as_overlay_with_whiteouts() {
    if !require_root("cached_layers_mount_as_overlay_with_whiteouts") {
        return;
    }
    let env = Env::new();
    // Lower layer: busybox plus /data/{a,b}; upper layer: whiteout of data/a, opaque /etc.
    let lower = env.path("lower");
    let upper = env.path("upper");
    std::fs::create_dir_all(lower.join("data")).unwrap();
    std::fs::write(lower.join("data/a"), "a").unwrap();
    std::fs::write(lower.join("data/b"), "b").unwrap();
    std::fs::create_dir_all(lower.join("etc")).unwrap();
    std::fs::write(lower.join("etc/old"), "old").unwrap();
    std::fs::create_dir_all(upper.join("data")).unwrap();
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::fs::write(upper.join("data/.wh.a"), "").unwrap();
    std::fs::write(upper.join("etc/.wh..wh..opq"), "").unwrap();
    std::fs::write(upper.join("etc/new"), "new").unwrap();
    let layout = two_layer_layout(&env, &lower, &upper);
    env.ok(&["image", "import", layout.to_str().unwrap(), "--name", "two"]);
    let (store, image) = load(&env, "two");
    let dirs: Vec<_> = image
        .layers
        .iter()
        .map(|l| layer_cache::ensure(&store, l).unwrap())
        .collect();
    let mnt = env.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let lowerdir = format!("lowerdir={}:{}", dirs[1].display(), dirs[0].display());
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &lowerdir])
        .arg(&mnt));
    let seen = (
        mnt.join("data/a").exists(),
        mnt.join("data/b").exists(),
        mnt.join("etc/old").exists(),
        mnt.join("etc/new").exists(),
    );
    run(Command::new("umount").arg(&mnt));
    assert_eq!(seen, (false, true, false, true));
    // Rendering the same image flat applies the same whiteouts.
    let flat = env.path("flat");
    env.ok(&["image", "unpack", "two", flat.to_str().unwrap()]);
    assert!(!flat.join("data/a").exists() && flat.join("data/b").exists());
    assert!(!flat.join("etc/old").exists() && flat.join("etc/new").exists());
}

/// Builds an OCI layout with two layers made by `tar` from the given trees.
fn two_layer_layout(
    env: &Env,
    lower: &std::path::Path,
    upper: &std::path::Path,
) -> std::path::PathBuf {
    use sha2::Digest;
    let layout = env.path("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let mut layers = Vec::new();
    for dir in [lower, upper] {
        let out = run(Command::new("tar")
            .arg("-C")
            .arg(dir)
            .args(["-cf", "-", "."]));
        let d = hex::encode(sha2::Sha256::digest(&out.stdout));
        std::fs::write(layout.join("blobs/sha256").join(&d), &out.stdout).unwrap();
        layers.push((d, out.stdout.len()));
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(d, _)| format!("sha256:{d}")).collect::<Vec<_>>()}});
    let put = |data: Vec<u8>| {
        let d = hex::encode(sha2::Sha256::digest(&data));
        std::fs::write(layout.join("blobs/sha256").join(&d), &data).unwrap();
        (d, data.len())
    };
    let (cd, cs) = put(serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cd}"), "size": cs},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{d}"), "size": s})).collect::<Vec<_>>()});
    let (md, ms) = put(serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{md}"), "size": ms}]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}
