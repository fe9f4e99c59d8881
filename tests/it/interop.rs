//! Interop with the real peers: skopeo, umoci and podman read what kiln writes
//! (its archives, and its store, which is itself an OCI layout); kiln reads
//! what they write; and `kiln image unpack` gives the same tree as `umoci unpack`.
//!
//! The peers run hermetically, leaving nothing behind on the host: as root
//! each runs in a private mount namespace whose tmpfs hides the host's
//! `/var/lib/containers` (where containers/image keeps its blob-info cache),
//! with `HOME`, `XDG_DATA_HOME` and `TMPDIR` inside the test's directory.
//! podman also gets its own storage, run root, tmp dir, configuration files,
//! a runc wrapper whose state lives in the test's directory, and a cgroup
//! parent of its own; a guard removes containers, waits for conmon, unmounts
//! and removes the cgroups even when the test fails.

use crate::common::{Env, require_root, require_tool, run, snapshot};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Hides the host's containers/image caches behind a tmpfs (`/var/lib`
/// itself when `/var/lib/containers` does not exist), then runs the peer.
const HIDE_CACHES: &str = r#"d=/var/lib/containers; [ -d "$d" ] || d=/var/lib
mount -t tmpfs -o mode=0700 kiln-interop "$d" && exec "$@""#;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether peers can run in a private mount namespace (root, and allowed here).
fn private_mounts() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        is_root()
            && Command::new("unshare")
                .args(["--mount", "--propagation", "private", "true"])
                .output()
                .is_ok_and(|o| o.status.success())
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A command running the peer `tool` so that what it writes stays under `env`.
fn peer(env: &Env, tool: &str) -> Command {
    let (home, tmp) = (env.path("peer-home"), env.path("peer-tmp"));
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&tmp).unwrap();
    let mut c = if private_mounts() {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "--"]).args([
            "sh",
            "-c",
            HIDE_CACHES,
            "sh",
            tool,
        ]);
        c
    } else {
        Command::new(tool)
    };
    c.env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("share"))
        .env("TMPDIR", &tmp);
    c
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

fn skopeo(env: &Env, args: &[&str]) -> String {
    let tmp = env.path("peer-tmp");
    let mut c = peer(env, "skopeo");
    c.args(["--insecure-policy", "--tmpdir", s(&tmp)])
        .args(args);
    stdout(&mut c)
}

fn umoci(env: &Env, args: &[&str]) -> String {
    stdout(peer(env, "umoci").args(args))
}

/// `umoci unpack --image IMAGE BUNDLE` (rootless when not root); returns BUNDLE/rootfs.
fn umoci_unpack(env: &Env, image: &str, bundle: &Path) -> PathBuf {
    let mut c = peer(env, "umoci");
    c.arg("unpack");
    if !is_root() {
        c.arg("--rootless");
    }
    run(c.args(["--image", image, s(bundle)]));
    bundle.join("rootfs")
}

/// `kiln image unpack NAME` into a fresh directory under `env`.
fn kiln_unpack(env: &Env, name: &str, rel: &str) -> PathBuf {
    let dir = env.path(rel);
    env.ok(&["image", "unpack", name, s(&dir)]);
    dir
}

fn inspect(env: &Env, name: &str) -> Value {
    serde_json::from_str(&env.ok(&["image", "inspect", name])).unwrap()
}

fn layer_digests(v: &Value) -> Vec<String> {
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts two trees hold the same paths, modes, link targets and contents.
fn assert_same_tree(ours: &Path, theirs: &Path) {
    let (a, b) = (snapshot(ours), snapshot(theirs));
    if a == b {
        return;
    }
    let only_a: Vec<_> = a.iter().filter(|e| !b.contains(e)).take(20).collect();
    let only_b: Vec<_> = b.iter().filter(|e| !a.contains(e)).take(20).collect();
    panic!(
        "{} and {} differ\nonly in the first: {only_a:#?}\nonly in the second: {only_b:#?}",
        ours.display(),
        theirs.display()
    );
}

fn entry<'a>(tree: &'a [(String, String)], path: &str) -> Option<&'a str> {
    tree.iter()
        .find(|(p, _)| p == path)
        .map(|(_, what)| what.as_str())
}

/// The busybox fixture as image `name`, exported to `name.img`; returns the archive.
fn exported_busybox(env: &Env, name: &str) -> PathBuf {
    env.busybox_image(name);
    let img = env.path(&format!("{name}.img"));
    env.ok(&["image", "export", name, "-o", s(&img)]);
    img
}

#[test]
fn skopeo_inspects_kiln_archive() {
    let env = Env::new();
    if !require_tool("skopeo_inspects_kiln_archive", "skopeo") {
        return;
    }
    let img = exported_busybox(&env, "bb");
    let ours = inspect(&env, "bb");
    let theirs: Value = serde_json::from_str(&skopeo(
        &env,
        &["inspect", &format!("oci-archive:{}", s(&img))],
    ))
    .unwrap();
    assert_eq!(theirs["Digest"], ours["digest"], "{theirs:#}");
    let layers: Vec<String> = serde_json::from_value(theirs["Layers"].clone()).unwrap();
    assert_eq!(layers, layer_digests(&ours));
    assert_eq!(theirs["Architecture"], ours["architecture"]);
    assert_eq!(theirs["Os"], ours["os"]);
    // The manifest skopeo reads is byte for byte the one the digest names.
    let raw = skopeo(
        &env,
        &["inspect", "--raw", &format!("oci-archive:{}", s(&img))],
    );
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(raw.as_bytes()))
    );
    assert_eq!(Value::from(digest), ours["digest"]);
    let config: Value = serde_json::from_str(&skopeo(
        &env,
        &["inspect", "--config", &format!("oci-archive:{}", s(&img))],
    ))
    .unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
}

#[test]
fn umoci_unpacks_kiln_archive_like_kiln() {
    let env = Env::new();
    let t = "umoci_unpacks_kiln_archive_like_kiln";
    if !require_tool(t, "skopeo") || !require_tool(t, "umoci") {
        return;
    }
    let img = exported_busybox(&env, "bb");
    let ours = kiln_unpack(&env, "bb", "kiln-rootfs");

    // Through skopeo: the archive converted to a layout directory.
    let layout = env.path("layout");
    skopeo(
        &env,
        &[
            "copy",
            &format!("oci-archive:{}", s(&img)),
            &format!("oci:{}:bb", s(&layout)),
        ],
    );
    let theirs = umoci_unpack(&env, &format!("{}:bb", s(&layout)), &env.path("bundle"));
    let fixture = snapshot(&env.busybox_rootfs());
    let unpacked = snapshot(&theirs);
    let busybox = entry(&unpacked, "bin/busybox").expect("umoci's rootfs lacks /bin/busybox");
    assert_eq!(
        Some(busybox),
        entry(&fixture, "bin/busybox"),
        "mode or content differ"
    );
    assert_eq!(entry(&unpacked, "bin/sh"), Some("link busybox"));
    assert_same_tree(&ours, &theirs);
    // umoci turns kiln's image config into the runtime spec.
    let spec: Value =
        serde_json::from_slice(&fs::read(env.path("bundle/config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["/bin/sh"]));

    // Untarred as is: the archive is a plain OCI layout in a tar.
    let untarred = env.path("untarred");
    tar::Archive::new(fs::File::open(&img).unwrap())
        .unpack(&untarred)
        .unwrap();
    let theirs = umoci_unpack(
        &env,
        &format!("{}:bb:latest", s(&untarred)),
        &env.path("bundle2"),
    );
    assert_same_tree(&ours, &theirs);
}

#[test]
fn skopeo_copies_of_kiln_archive_import_into_kiln() {
    let env = Env::new();
    if !require_tool("skopeo_copies_of_kiln_archive_import_into_kiln", "skopeo") {
        return;
    }
    let img = exported_busybox(&env, "bb");
    let digest = inspect(&env, "bb")["digest"].clone();
    let src = format!("oci-archive:{}", s(&img));
    let (dir, other, plain) = (
        env.path("copy-dir"),
        env.path("other.tar"),
        env.path("plain.tar"),
    );
    skopeo(&env, &["copy", &src, &format!("oci:{}:v3", s(&dir))]);
    skopeo(
        &env,
        &["copy", &src, &format!("oci-archive:{}:other:v2", s(&other))],
    );
    skopeo(&env, &["copy", &src, &format!("oci-archive:{}", s(&plain))]);
    for (path, name) in [
        (&dir, "copy-dir:v3"),
        (&other, "other:v2"),
        (&plain, "plain:latest"),
    ] {
        let out = env.ok(&["image", "import", s(path)]);
        assert_eq!(
            out.split_whitespace().next(),
            Some(name),
            "import {}: {out}",
            path.display()
        );
        assert_eq!(inspect(&env, name)["digest"], digest, "{name}");
    }
    let ours = kiln_unpack(&env, "bb", "bb-rootfs");
    assert_same_tree(&ours, &kiln_unpack(&env, "other:v2", "other-rootfs"));
}

/// Copies the busybox fixture into an unpacked umoci bundle.
fn fill_rootfs(env: &Env, rootfs: &Path) {
    let src = env.busybox_rootfs();
    run(Command::new("cp").arg("-a").arg(src.join(".")).arg(rootfs));
}

/// A four-layer image built by umoci: busybox and /opt/app; a repack that
/// deletes a file and a directory (whiteouts), adds one, changes a mode and a
/// link; an opaque /opt/app; a whiteout inserted for /bin/vi.
fn umoci_layered_image(env: &Env) -> PathBuf {
    let lay = env.path("lay");
    let image = format!("{}:app", s(&lay));
    umoci(env, &["init", "--layout", s(&lay)]);
    umoci(env, &["new", "--image", &image]);

    let rootfs = umoci_unpack(env, &image, &env.path("b1"));
    fill_rootfs(env, &rootfs);
    fs::create_dir_all(rootfs.join("opt/app/sub")).unwrap();
    fs::write(rootfs.join("opt/app/old"), "old\n").unwrap();
    fs::write(rootfs.join("opt/app/sub/x"), "x\n").unwrap();
    umoci(env, &["repack", "--image", &image, s(&env.path("b1"))]);

    let rootfs = umoci_unpack(env, &image, &env.path("b2"));
    fs::remove_file(rootfs.join("etc/hostname")).unwrap();
    fs::remove_dir_all(rootfs.join("var/empty")).unwrap();
    fs::write(rootfs.join("etc/motd"), "hello from layer 2\n").unwrap();
    fs::set_permissions(rootfs.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::remove_file(rootfs.join("bin/ls")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", rootfs.join("bin/ls")).unwrap();
    umoci(env, &["repack", "--image", &image, s(&env.path("b2"))]);

    // 512 bytes: umoci 0.4.7 leaves the tar of `insert` unterminated (see
    // umoci_insert_layer_without_tar_footer), harmless only at a block boundary.
    let newapp = env.path("newapp");
    fs::create_dir_all(&newapp).unwrap();
    fs::write(newapp.join("new"), [b'n'; 512]).unwrap();
    umoci(
        env,
        &[
            "insert",
            "--image",
            &image,
            "--opaque",
            s(&newapp),
            "/opt/app",
        ],
    );
    umoci(env, &["insert", "--image", &image, "--whiteout", "/bin/vi"]);
    lay
}

#[test]
fn umoci_layers_with_whiteouts_unpack_like_umoci() {
    let env = Env::new();
    if !require_tool("umoci_layers_with_whiteouts_unpack_like_umoci", "umoci") {
        return;
    }
    let lay = umoci_layered_image(&env);
    let out = env.ok(&["image", "import", s(&lay)]);
    assert_eq!(out.split_whitespace().next(), Some("lay:app"), "{out}");
    assert_eq!(layer_digests(&inspect(&env, "lay:app")).len(), 4);
    let ours = kiln_unpack(&env, "lay:app", "kiln-rootfs");
    let theirs = umoci_unpack(&env, &format!("{}:app", s(&lay)), &env.path("bundle"));
    assert_same_tree(&ours, &theirs);

    let tree = snapshot(&ours);
    for gone in [
        "etc/hostname",
        "var/empty",
        "opt/app/old",
        "opt/app/sub",
        "bin/vi",
    ] {
        assert_eq!(entry(&tree, gone), None, "{gone} should be whited out");
    }
    assert!(entry(&tree, "opt/app/new").is_some_and(|e| e.starts_with("file 644 ")));
    assert!(entry(&tree, "etc/motd").is_some());
    assert_eq!(entry(&tree, "root"), Some("dir 700"));
    assert_eq!(entry(&tree, "bin/ls"), Some("link /bin/busybox"));
    assert!(entry(&tree, "bin/busybox").is_some_and(|e| e.starts_with("file 755 ")));
}

/// umoci 0.4.7's `insert` never closes its tar writer (opencontainers/umoci#436,
/// fixed upstream by #534): the layer ends right after the last file's data,
/// with neither padding nor end-of-archive blocks. Its digest and diffID are
/// right, and Go readers (umoci, podman, containerd) accept it, so kiln should
/// too.
#[test]
fn umoci_insert_layer_without_tar_footer() {
    let env = Env::new();
    if !require_tool("umoci_insert_layer_without_tar_footer", "umoci") {
        return;
    }
    let lay = env.path("lay");
    let image = format!("{}:t", s(&lay));
    umoci(&env, &["init", "--layout", s(&lay)]);
    umoci(&env, &["new", "--image", &image]);
    let rootfs = umoci_unpack(&env, &image, &env.path("b1"));
    fill_rootfs(&env, &rootfs);
    umoci(&env, &["repack", "--image", &image, s(&env.path("b1"))]);
    let file = env.path("note");
    fs::write(&file, "3b\n").unwrap();
    umoci(&env, &["insert", "--image", &image, s(&file), "/etc/note"]);
    env.ok(&["image", "import", s(&lay)]);
    let ours = kiln_unpack(&env, "lay:t", "kiln-rootfs");
    let theirs = umoci_unpack(&env, &image, &env.path("bundle"));
    assert_same_tree(&ours, &theirs);
    assert_eq!(fs::read_to_string(ours.join("etc/note")).unwrap(), "3b\n");
}

#[test]
fn zstd_layers_from_skopeo_are_refused_clearly() {
    let env = Env::new();
    if !require_tool("zstd_layers_from_skopeo_are_refused_clearly", "skopeo") {
        return;
    }
    let img = exported_busybox(&env, "bb");
    let zs = env.path("zs");
    skopeo(
        &env,
        &[
            "copy",
            "--dest-compress",
            "--dest-compress-format",
            "zstd",
            &format!("oci-archive:{}", s(&img)),
            &format!("oci:{}:z", s(&zs)),
        ],
    );
    let before = env.store_snapshot();
    let err = env.fails(&["image", "import", s(&zs)], 125);
    assert!(
        err.contains("unsupported media type application/vnd.oci.image.layer.v1.tar+zstd"),
        "{err}"
    );
    assert_eq!(
        env.store_snapshot(),
        before,
        "a refused import changed the store"
    );
}

#[test]
fn skopeo_and_umoci_read_the_kiln_store_as_a_layout() {
    let env = Env::new();
    let t = "skopeo_and_umoci_read_the_kiln_store_as_a_layout";
    if !require_tool(t, "skopeo") || !require_tool(t, "umoci") {
        return;
    }
    env.busybox_image("busybox");
    env.busybox_image("localhost:5000/team/app:v1");
    let store = env.store();
    let before = env.store_snapshot();
    for name in ["busybox:latest", "localhost:5000/team/app:v1"] {
        let ours = inspect(&env, name);
        let theirs: Value = serde_json::from_str(&skopeo(
            &env,
            &["inspect", &format!("oci:{}:{name}", s(&store))],
        ))
        .unwrap();
        assert_eq!(theirs["Digest"], ours["digest"], "{name}");
        let layers: Vec<String> = serde_json::from_value(theirs["Layers"].clone()).unwrap();
        assert_eq!(layers, layer_digests(&ours), "{name}");
    }
    let tags = umoci(&env, &["ls", "--layout", s(&store)]);
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, ["busybox:latest", "localhost:5000/team/app:v1"]);

    // skopeo copies out of the store (every blob read and verified on the way).
    let out = env.path("from-store.tar");
    skopeo(
        &env,
        &[
            "copy",
            &format!("oci:{}:busybox:latest", s(&store)),
            &format!("oci-archive:{}:copied:v1", s(&out)),
        ],
    );
    let theirs = umoci_unpack(
        &env,
        &format!("{}:busybox:latest", s(&store)),
        &env.path("bundle"),
    );
    assert_same_tree(&kiln_unpack(&env, "busybox", "kiln-rootfs"), &theirs);
    assert_eq!(env.store_snapshot(), before, "reading the store changed it");

    let other = Env::new();
    other.ok(&["image", "import", s(&out)]);
    assert_eq!(
        inspect(&other, "copied:v1")["digest"],
        inspect(&env, "busybox")["digest"]
    );
}

/// A hermetic podman (see the module docs); dropping it cleans up.
struct Podman<'e> {
    env: &'e Env,
    dir: PathBuf,
    /// The cgroup parent given to `podman run`, under every hierarchy's root.
    cgroup: String,
}

impl<'e> Podman<'e> {
    fn new(env: &'e Env) -> Self {
        let dir = env.path("podman");
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::create_dir_all(dir.join("tmp")).unwrap();
        crate::common::write_podman_config(&dir);
        // conmon's exit command (`podman container cleanup`) does not pass on
        // --runtime-flag, so runc's state dir is set by a wrapper instead.
        let runc = stdout(Command::new("sh").args(["-c", "command -v runc"]));
        let wrapper = dir.join("bin/runc");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} --root {} \"$@\"\n",
                runc.trim(),
                s(&dir.join("runc"))
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        let tag = env
            .tmp
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        Self {
            env,
            dir,
            cgroup: format!("kiln-interop-{tag}"),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = peer(self.env, "podman");
        crate::common::podman_args(&mut c, &self.dir, &self.dir.join("bin/runc")).args(args);
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout(&mut self.cmd(args))
    }

    fn policy(&self) -> String {
        s(&self.dir.join("policy.json")).to_string()
    }

    /// Our cgroup under each mounted hierarchy.
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        crate::common::cgroup_dirs(&self.cgroup)
    }

    /// Processes left in our cgroups (conmon, its exit command, containers).
    fn processes(&self) -> Vec<i32> {
        crate::common::cgroup_processes(&self.cgroup)
    }

    /// Mount points under the test's directory, deepest first.
    fn mounts(&self) -> Vec<String> {
        crate::common::mounts_under(self.env.tmp.path())
    }

    /// What podman leaves behind: mounts under the test dir, processes, cgroups.
    fn leftovers(&self) -> Vec<String> {
        let mut out = self.mounts();
        out.extend(self.processes().iter().map(|p| format!("process {p}")));
        out.extend(self.cgroup_dirs().iter().map(|d| d.display().to_string()));
        out
    }

    /// Removes containers, waits for conmon (then ends stragglers by pid),
    /// unmounts, and removes our cgroups. Safe to call more than once.
    fn cleanup(&self) {
        let _ = self
            .cmd(&["rm", "--all", "--force", "--time", "0"])
            .output();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in self.processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for m in self.mounts() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for top in self.cgroup_dirs() {
            crate::common::remove_cgroup(&top);
        }
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        self.cleanup();
    }
}

#[test]
fn podman_loads_and_runs_kiln_archive() {
    let t = "podman_loads_and_runs_kiln_archive";
    if !require_root(t) || !require_tool(t, "podman") || !require_tool(t, "runc") {
        return;
    }
    let env = Env::new();
    let img = exported_busybox(&env, "bb");
    let ours = inspect(&env, "bb");
    let podman = Podman::new(&env);

    let policy = podman.policy();
    let loaded = podman.ok(&["load", "--signature-policy", &policy, "-i", s(&img)]);
    assert!(loaded.contains("localhost/bb:latest"), "{loaded}");
    let ids = podman.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{.Digest}}",
        "localhost/bb:latest",
    ]);
    let config = ours["manifest"]["config"]["digest"].as_str().unwrap();
    let want = format!(
        "{} {}",
        config.trim_start_matches("sha256:"),
        ours["digest"].as_str().unwrap()
    );
    assert_eq!(ids.trim(), want, "podman's image id and digest");

    let cgroup = format!("/{}", podman.cgroup);
    let out = podman.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--cgroup-parent",
        &cgroup,
        "localhost/bb:latest",
        "sh",
        "-c",
        "echo hi-from-kiln; readlink /bin/ls; stat -c %a /tmp /bin/busybox",
    ]);
    assert_eq!(out, "hi-from-kiln\nbusybox\n1777\n755\n");

    // And back: podman's own archive of the image (layers recompressed) imports into kiln.
    let saved = env.path("saved.tar");
    podman.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        s(&saved),
        "localhost/bb:latest",
    ]);
    let out = env.ok(&["image", "import", s(&saved)]);
    assert_eq!(
        out.split_whitespace().next(),
        Some("localhost/bb:latest"),
        "{out}"
    );
    let theirs = inspect(&env, "localhost/bb:latest");
    assert_eq!(
        theirs["config"]["rootfs"], ours["config"]["rootfs"],
        "diffIDs differ"
    );
    assert_same_tree(
        &kiln_unpack(&env, "bb", "bb-rootfs"),
        &kiln_unpack(&env, "localhost/bb:latest", "saved-rootfs"),
    );

    podman.cleanup();
    assert_eq!(
        podman.leftovers(),
        Vec::<String>::new(),
        "podman left these behind"
    );
}
