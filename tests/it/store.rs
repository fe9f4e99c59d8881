//! The image store through the CLI: from-dir, export/import, ls, inspect, rm,
//! gc, reproducibility, and many kiln processes on one store at once.

use crate::common::{Env, snapshot};
use std::process::Command;

fn digest_of(line: &str) -> String {
    line.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn from_dir_is_reproducible() {
    let env = Env::new();
    let rootfs = env.busybox_rootfs();
    let r = rootfs.to_str().unwrap();
    let a = env.ok(&["image", "from-dir", r, "--name", "a", "--cmd", "/bin/sh"]);
    // Touch every file: mtimes later than the epoch are clamped, so nothing changes.
    crate::common::run(
        Command::new("find")
            .arg(&rootfs)
            .args(["-exec", "touch", "{}", "+"]),
    );
    let b = env.ok(&["image", "from-dir", r, "--name", "b", "--cmd", "/bin/sh"]);
    assert_eq!(digest_of(&a), digest_of(&b));
    let other = Env::new();
    let c = other.ok(&["image", "from-dir", r, "--name", "c", "--cmd", "/bin/sh"]);
    assert_eq!(
        digest_of(&a),
        digest_of(&c),
        "a different store gives the same bytes"
    );
    let epoch = env
        .kiln(&["image", "from-dir", r, "--name", "d", "--cmd", "/bin/sh"])
        .env("SOURCE_DATE_EPOCH", "1000000000")
        .output()
        .unwrap();
    assert_ne!(
        digest_of(&String::from_utf8_lossy(&epoch.stdout)),
        digest_of(&a),
        "SOURCE_DATE_EPOCH is honoured"
    );
}

#[test]
fn export_import_round_trip() {
    let env = Env::new();
    env.busybox_image("bb:v1");
    let img = env.path("bb.img");
    env.ok(&["image", "export", "bb:v1", "-o", img.to_str().unwrap()]);
    // Exporting twice gives identical archives.
    let img2 = env.path("bb2.img");
    env.ok(&["image", "export", "bb:v1", "-o", img2.to_str().unwrap()]);
    assert_eq!(std::fs::read(&img).unwrap(), std::fs::read(&img2).unwrap());

    let other = Env::new();
    let out = other.ok(&["image", "import", img.to_str().unwrap()]);
    assert!(
        out.starts_with("bb:v1 sha256:"),
        "the archive's name is kept: {out}"
    );
    let out = other.ok(&[
        "image",
        "import",
        img.to_str().unwrap(),
        "--name",
        "renamed",
    ]);
    assert!(out.starts_with("renamed:latest "), "{out}");
    let ls: serde_json::Value =
        serde_json::from_str(&other.ok(&["image", "ls", "--format", "json"])).unwrap();
    let names: Vec<_> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["bb:v1", "renamed:latest"]);
    assert_eq!(ls[0]["digest"], ls[1]["digest"]);

    // Unpacked, the tree matches what went in.
    let dir = other.path("out");
    other.ok(&["image", "unpack", "renamed", dir.to_str().unwrap()]);
    assert_eq!(snapshot(&dir), snapshot(&env.busybox_rootfs()));
}

#[test]
fn import_layout_dir_and_gzipped_archive() {
    let env = Env::new();
    env.busybox_image("bb");
    let img = env.path("bb.img");
    env.ok(&["image", "export", "bb", "-o", img.to_str().unwrap()]);
    let layout = env.path("layout");
    std::fs::create_dir(&layout).unwrap();
    crate::common::run(
        Command::new("tar")
            .arg("-xf")
            .arg(&img)
            .arg("-C")
            .arg(&layout),
    );
    let gz = env.path("bb.img.gz");
    crate::common::run(Command::new("sh").arg("-c").arg(format!(
        "gzip -c {} > {}",
        img.display(),
        gz.display()
    )));
    let other = Env::new();
    other.ok(&[
        "image",
        "import",
        layout.to_str().unwrap(),
        "--name",
        "fromdir",
    ]);
    other.ok(&["image", "import", gz.to_str().unwrap(), "--name", "fromgz"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&other.ok(&["image", "inspect", "fromdir"])).unwrap();
    let inspect2: serde_json::Value =
        serde_json::from_str(&other.ok(&["image", "inspect", "fromgz"])).unwrap();
    assert_eq!(inspect["digest"], inspect2["digest"]);
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 1);
    assert_eq!(inspect["config"]["config"]["Cmd"][0], "/bin/sh");
    assert_eq!(inspect["os"], "linux");
}

#[test]
fn inspect_by_digest_prefix_and_rm_then_gc() {
    let env = Env::new();
    env.busybox_image("bb");
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "bb"])).unwrap();
    let digest = inspect["digest"].as_str().unwrap().to_string();
    let by_prefix: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", &digest[7..19]])).unwrap();
    assert_eq!(by_prefix["name"], "bb:latest");
    assert!(env.ok(&["image", "ls"]).contains("bb:latest"));

    // gc keeps what a ref reaches.
    let kept = env.ok(&["gc"]);
    assert!(kept.starts_with("removed 0 blobs"), "{kept}");
    assert_eq!(env.ok(&["image", "rm", "bb"]), "untagged bb:latest\n");
    let err = env.fails(&["image", "inspect", "bb"], 125);
    assert!(err.contains("image bb: not found"), "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&env.ok(&["gc", "--format", "json"])).unwrap();
    assert_eq!(
        report["blobs"], 3,
        "manifest, config and layer go: {report}"
    );
    let blobs = std::fs::read_dir(env.store().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
}

/// 8 imports and 8 unpacks at once on one store, then every blob checks out.
#[test]
fn parallel_imports_and_unpacks_keep_the_store_sound() {
    let env = Env::new();
    env.busybox_image("seed");
    let img = env.path("seed.img");
    env.ok(&["image", "export", "seed", "-o", img.to_str().unwrap()]);
    let mut children = Vec::new();
    for i in 0..8 {
        let name = format!("copy{i}");
        children.push(
            env.kiln(&["image", "import", img.to_str().unwrap(), "--name", &name])
                .spawn()
                .unwrap(),
        );
        let out = env.path(&format!("unpack{i}"));
        children.push(
            env.kiln(&["image", "unpack", "seed", out.to_str().unwrap()])
                .spawn()
                .unwrap(),
        );
    }
    children.push(env.kiln(&["gc"]).spawn().unwrap());
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let ls: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "ls", "--format", "json"])).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 9);
    for entry in std::fs::read_dir(env.store().join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        use sha2::Digest;
        let got = hex::encode(sha2::Sha256::digest(std::fs::read(entry.path()).unwrap()));
        assert_eq!(
            got,
            entry.file_name().to_string_lossy(),
            "blob content matches its name"
        );
    }
    let expected = snapshot(&env.busybox_rootfs());
    for i in 0..8 {
        assert_eq!(snapshot(&env.path(&format!("unpack{i}"))), expected);
    }
    assert!(
        std::fs::read_dir(env.store().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no staging left behind"
    );
}

#[test]
fn unpack_refuses_a_non_empty_destination() {
    let env = Env::new();
    env.busybox_image("bb");
    let dir = env.path("full");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep"), "mine").unwrap();
    let err = env.fails(&["image", "unpack", "bb", dir.to_str().unwrap()], 125);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("keep")).unwrap(), "mine");
}

#[test]
fn store_location_follows_flag_and_environment() {
    let env = Env::new();
    let alt = env.path("alt");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["image", "ls"])
        .env("KILN_STORE", &alt)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(alt.join("oci-layout").is_file() && alt.join("blobs/sha256").is_dir());
}
