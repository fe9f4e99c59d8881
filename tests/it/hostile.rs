//! Hostile layers (path traversal, link escapes, whiteout tricks, bombs) and
//! the layer semantics they must not break, from `rootfs-fixtures/hostile.py`.
//!
//! Each case is a real image whose layer is hostile: the test imports it and
//! runs `kiln image unpack CASE DIR`. Whatever kiln does, nothing outside DIR
//! may change (a sentinel directory and a decoy passwd file sit next to it,
//! and the cases aim at them by absolute and relative paths), the store stays
//! as it was, and a refused layer leaves DIR as it found it.

use crate::common::{self, Env};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch dir `T` laid out for the cases:
/// `T/sentinel/{keep,sub/deep}`, `T/decoy-passwd`, `T/cases/<case>`, `T/store`,
/// and `T/dest`, the directory kiln unpacks into.
struct Scene {
    env: Env,
}

const SCRATCH: [&str; 3] = ["store", "cases", "dest"];

impl Scene {
    /// Generates and imports `cases`.
    fn new(cases: &[&str]) -> Self {
        let env = Env::new();
        let t = env.tmp.path();
        fs::create_dir_all(t.join("sentinel/sub")).unwrap();
        fs::write(t.join("sentinel/keep"), "precious\n").unwrap();
        fs::write(t.join("sentinel/sub/deep"), "deep\n").unwrap();
        fs::write(t.join("decoy-passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        common::run(
            Command::new("python3")
                .arg(common::repo().join("rootfs-fixtures/hostile.py"))
                .arg(t.join("cases"))
                .arg("--outside")
                .arg(t)
                .args(cases),
        );
        env.ok(&["image", "ls"]); // creates the store
        let scene = Scene { env };
        for case in cases {
            let dir = scene.case_dir(case);
            scene
                .env
                .ok(&["image", "import", dir.to_str().unwrap(), "--name", case]);
        }
        scene
    }

    fn t(&self) -> &Path {
        self.env.tmp.path()
    }

    fn case_dir(&self, case: &str) -> PathBuf {
        self.t().join("cases").join(case)
    }

    fn dest(&self) -> PathBuf {
        self.t().join("dest")
    }

    /// Everything in `T` except the store, the cases and the target.
    fn outside(&self) -> Vec<(String, String)> {
        common::snapshot(self.t())
            .into_iter()
            .filter(|(p, _)| {
                !SCRATCH
                    .iter()
                    .any(|s| p == s || p.starts_with(&format!("{s}/")))
            })
            .collect()
    }

    fn decoy_links(&self) -> u64 {
        fs::metadata(self.t().join("decoy-passwd")).unwrap().nlink()
    }

    /// Unpacks `case` into `T/dest` with `vars` set, checking that nothing
    /// outside it and nothing in the store changed.
    fn unpack(&self, case: &str, vars: &[(&str, &str)]) -> Output {
        self.unpack_with(
            case,
            vars,
            self.env
                .kiln(&["image", "unpack", case, self.dest().to_str().unwrap()]),
        )
    }

    fn unpack_with(&self, case: &str, vars: &[(&str, &str)], mut cmd: Command) -> Output {
        let (outside, store) = (self.outside(), self.env.store_snapshot());
        assert!(!outside.is_empty() && !store.is_empty());
        let out = cmd.envs(vars.iter().copied()).output().unwrap();
        assert_eq!(
            self.outside(),
            outside,
            "{case}: something outside the target changed"
        );
        assert_eq!(
            self.env.store_snapshot(),
            store,
            "{case}: the store changed"
        );
        assert_eq!(
            self.decoy_links(),
            1,
            "{case}: the decoy passwd file gained a hard link"
        );
        out
    }

    /// Unpacks `case`, expecting success; returns stderr.
    fn contained(&self, case: &str) -> String {
        let out = self.unpack(case, &[]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{case}: unpack failed: {err}");
        err
    }

    /// Unpacks `case`, expecting kiln to refuse it with one line naming the
    /// layer, `entry` and `reason`, and to leave no target directory behind.
    fn refused(&self, case: &str, entry: &str, reason: &str, vars: &[(&str, &str)]) -> String {
        let out = self.unpack(case, vars);
        let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
        assert_eq!(
            out.status.code(),
            Some(125),
            "{case}: expected failure, stderr: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{case}: not one line: {err}");
        assert!(
            err.starts_with("kiln: layer sha256:"),
            "{case}: does not name the layer: {err}"
        );
        assert!(
            err.contains(&format!("entry {entry:?}")),
            "{case}: does not name entry {entry:?}: {err}"
        );
        assert!(err.contains(reason), "{case}: lacks {reason:?}: {err}");
        assert!(!self.dest().exists(), "{case}: the target was left behind");
        err
    }

    /// The path inside the target that an absolute path `T/rel` maps to.
    fn inside(&self, rel: &str) -> PathBuf {
        let abs = self.t().join(rel);
        self.dest().join(abs.strip_prefix("/").unwrap())
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn is_symlink(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

#[test]
fn dotdot_entry_is_refused() {
    let s = Scene::new(&["dotdot"]);
    s.refused("dotdot", "a/b/../../../sentinel/pwned", "'..'", &[]);
    // A target that exists (empty) is emptied again rather than removed.
    fs::create_dir(s.dest()).unwrap();
    let out = s.unpack("dotdot", &[]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        fs::read_dir(s.dest()).unwrap().count(),
        0,
        "the target was not emptied"
    );
}

#[test]
fn absolute_entry_lands_inside() {
    let s = Scene::new(&["absolute"]);
    s.contained("absolute");
    assert_eq!(read(&s.inside("sentinel/pwned")), "inside");
}

#[test]
fn write_through_symlink_to_root_lands_inside() {
    let s = Scene::new(&["symlink-root"]);
    s.contained("symlink-root");
    assert_eq!(
        fs::read_link(s.dest().join("root")).unwrap(),
        Path::new("/")
    );
    assert_eq!(read(&s.inside("sentinel/pwned")), "inside");
}

#[test]
fn write_through_dotdot_symlink_lands_inside() {
    let s = Scene::new(&["symlink-dotdot"]);
    s.contained("symlink-dotdot");
    assert!(is_symlink(&s.dest().join("up")));
    assert_eq!(read(&s.inside("sentinel/pwned")), "inside");
}

#[test]
fn hardlink_to_absolute_path_never_links_the_host_file() {
    let s = Scene::new(&["hardlink-abs", "hardlink-abs-inside"]);
    s.refused("hardlink-abs", "passwd", "No such file", &[]);
    // With a file at that path inside the layer, the link goes to it.
    s.contained("hardlink-abs-inside");
    let link = fs::metadata(s.dest().join("passwd")).unwrap();
    let inner = fs::metadata(s.inside("decoy-passwd")).unwrap();
    assert_eq!((link.ino(), link.nlink()), (inner.ino(), 2));
    assert_eq!(read(&s.dest().join("passwd")), "inner copy");
}

#[test]
fn hardlink_with_dotdot_is_refused() {
    let s = Scene::new(&["hardlink-dotdot"]);
    s.refused(
        "hardlink-dotdot",
        "passwd",
        "hard link target: path contains '..'",
        &[],
    );
}

#[test]
fn planted_symlink_is_replaced_not_written_through() {
    let s = Scene::new(&["symlink-then-file"]);
    s.contained("symlink-then-file");
    for (name, text) in [("abs", "replaced abs"), ("rel", "replaced rel")] {
        let p = s.dest().join(name);
        assert!(
            fs::symlink_metadata(&p).unwrap().is_file(),
            "{name} is still a symlink"
        );
        assert_eq!(read(&p), text);
    }
}

#[test]
fn hardlink_to_planted_symlink_links_the_symlink() {
    let s = Scene::new(&["symlink-then-hardlink", "symlinkdir-then-hardlink"]);
    s.contained("symlink-then-hardlink");
    let (link, hard) = (s.dest().join("link"), s.dest().join("hard"));
    assert!(is_symlink(&hard), "the hard link followed the symlink");
    let (a, b) = (
        fs::symlink_metadata(link).unwrap(),
        fs::symlink_metadata(hard).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    fs::remove_dir_all(s.dest()).unwrap();
    // Through a symlinked directory the target resolves inside, where there is none.
    s.refused("symlinkdir-then-hardlink", "hard", "out/decoy-passwd", &[]);
}

#[test]
fn dir_replaced_by_symlink_stays_inside() {
    let s = Scene::new(&["dir-to-symlink", "dangling-symlink-parent"]);
    s.contained("dir-to-symlink");
    assert!(is_symlink(&s.dest().join("d")));
    assert_eq!(read(&s.inside("sentinel/pwned")), "inside");
    assert!(!s.inside("sentinel/a").exists() && !s.dest().join("d/a").exists());
    fs::remove_dir_all(s.dest()).unwrap();
    s.refused(
        "dangling-symlink-parent",
        "d/pwned",
        "open parent directory",
        &[],
    );
}

#[test]
fn gzip_bomb_stops_at_byte_limit() {
    let s = Scene::new(&["gzip-bomb"]);
    let blob = fs::read_dir(s.case_dir("gzip-bomb").join("blobs/sha256")).unwrap();
    assert!(
        blob.map(|e| e.unwrap().metadata().unwrap().len())
            .max()
            .unwrap()
            < 4 << 20
    );
    s.refused(
        "gzip-bomb",
        "zeros",
        "KILN_LAYER_MAX_BYTES",
        &[("KILN_LAYER_MAX_BYTES", "64m")],
    );
}

#[test]
fn many_small_files_stop_at_byte_limit() {
    let s = Scene::new(&["size-bomb"]);
    s.refused(
        "size-bomb",
        "f08",
        "expands past 8388608 bytes",
        &[("KILN_LAYER_MAX_BYTES", "8m")],
    );
}

/// Regression: sparse entries were counted by their stored size only.
#[test]
fn sparse_files_count_their_expanded_size() {
    let s = Scene::new(&["sparse-bomb"]);
    s.refused(
        "sparse-bomb",
        "sparse2",
        "KILN_LAYER_MAX_BYTES",
        &[("KILN_LAYER_MAX_BYTES", "8m")],
    );
}

/// Regression: the tar reader buffered a PAX header of any size in memory.
#[test]
fn pax_header_bomb_is_refused() {
    let s = Scene::new(&["pax-bomb"]);
    let out = s.unpack("pax-bomb", &[]);
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.starts_with("kiln: layer sha256:") && err.contains("16 MiB of tar headers"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!s.dest().exists());
}

#[test]
fn entry_bomb_stops_at_entry_limit() {
    let s = Scene::new(&["entry-bomb"]);
    s.refused(
        "entry-bomb",
        "d1/f1000",
        "more than 1000 entries",
        &[("KILN_LAYER_MAX_ENTRIES", "1000")],
    );
}

#[test]
fn whiteout_with_dotdot_is_refused() {
    let s = Scene::new(&["whiteout-dotdot"]);
    s.refused("whiteout-dotdot", "../.wh.sentinel", "'..'", &[]);
}

/// Regression: `.wh...` emptied the parent of the target directory.
#[test]
fn whiteout_naming_dot_or_dotdot_is_refused() {
    let s = Scene::new(&["whiteout-dotdot-name", "whiteout-dot-name"]);
    s.refused(
        "whiteout-dotdot-name",
        ".wh...",
        "whiteout names \"..\"",
        &[],
    );
    s.refused(
        "whiteout-dot-name",
        "sub/.wh..",
        "whiteout names \".\"",
        &[],
    );
}

#[test]
fn whiteout_through_symlink_stays_inside() {
    let s = Scene::new(&["whiteout-via-symlink"]);
    s.contained("whiteout-via-symlink");
    assert_eq!(read(&s.dest().join("done")), "extraction finished");
}

#[test]
fn device_nodes_need_root() {
    let s = Scene::new(&["device"]);
    let err = s.contained("device");
    let fifo = fs::symlink_metadata(s.dest().join("dev/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    let dev = s.dest().join("dev/null");
    if nix::unistd::geteuid().is_root() {
        let m = fs::symlink_metadata(&dev).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(
            (
                nix::sys::stat::major(m.rdev()),
                nix::sys::stat::minor(m.rdev())
            ),
            (1, 3)
        );
        unprivileged_unpack_skips_devices(&s);
    } else {
        assert!(!dev.exists());
        assert!(err.contains("skipped 1 device nodes"), "{err}");
    }
}

/// As root, runs the unprivileged path for real: kiln as nobody, on a copy
/// of the store that nobody owns.
fn unprivileged_unpack_skips_devices(s: &Scene) {
    if !common::require_tool("device_nodes_need_root", "setpriv") {
        return;
    }
    fs::remove_dir_all(s.dest()).unwrap();
    let store = s.t().join("nobody-store");
    common::run(Command::new("cp").arg("-a").arg(s.env.store()).arg(&store));
    common::run(
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&store),
    );
    fs::set_permissions(s.t(), fs::Permissions::from_mode(0o711)).unwrap();
    fs::create_dir(s.dest()).unwrap();
    std::os::unix::fs::chown(s.dest(), Some(65534), Some(65534)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .arg("--store")
        .arg(&store)
        .args(["image", "unpack", "device"])
        .arg(s.dest());
    let out = s.unpack_with("device", &[], cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: skipped 1 device nodes"), "{err}");
    assert!(!s.dest().join("dev/null").exists());
    assert!(
        fs::symlink_metadata(s.dest().join("dev/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(read(&s.dest().join("after")), "x");
}

#[test]
fn whiteout_removes_lower_layer_entries() {
    let s = Scene::new(&["whiteout-two-layers"]);
    s.contained("whiteout-two-layers");
    let d = s.dest();
    assert!(!d.join("etc/a").exists() && !d.join("gone").exists());
    for (p, text) in [("etc/b", "b"), ("etc/c", "c"), ("keep", "k")] {
        assert_eq!(read(&d.join(p)), text);
    }
    assert!(!d.join("etc/.wh.a").exists() && !d.join(".wh.never-existed").exists());
}

#[test]
fn opaque_dir_hides_lower_but_keeps_same_layer_entries() {
    let s = Scene::new(&["opaque"]);
    s.contained("opaque");
    let d = s.dest();
    let mut found: Vec<String> = walk(&d.join("d"));
    found.sort();
    assert_eq!(
        found,
        ["after", "before", "sub", "sub/new", "sub3", "sub3/new"]
    );
    assert_eq!(read(&d.join("other")), "1");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()).into_iter().map(|c| format!("{name}/{c}")));
        }
        out.push(name);
    }
    out
}

#[test]
fn hardlinks_inside_the_layer_share_one_inode() {
    let s = Scene::new(&["hardlinks"]);
    s.contained("hardlinks");
    let a = fs::metadata(s.dest().join("a")).unwrap();
    assert_eq!(a.nlink(), 4);
    assert_eq!(a.permissions().mode() & 0o7777, 0o600);
    for p in ["b", "dir/c", "dir/d"] {
        assert_eq!(
            fs::metadata(s.dest().join(p)).unwrap().ino(),
            a.ino(),
            "{p}"
        );
    }
}

/// Regression (unprivileged): a later layer could not write into a lower
/// layer's read-only directory.
#[test]
fn readonly_dir_gets_its_children_then_its_mode() {
    let s = Scene::new(&["readonly-dir"]);
    s.contained("readonly-dir");
    let ro = s.dest().join("ro");
    let mut found = walk(&ro);
    found.sort();
    assert_eq!(found, ["later", "sub", "sub/g", "sub/later"]);
    assert_eq!(read(&ro.join("sub/g")), "g");
    for dir in [&ro, &ro.join("sub")] {
        assert_eq!(
            fs::metadata(dir).unwrap().permissions().mode() & 0o7777,
            0o555
        );
    }
    // Unprivileged, the scratch dir could not be removed with these modes.
    for dir in [&ro, &ro.join("sub")] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
}
