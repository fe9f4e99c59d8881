//! `kiln run IMAGE`: import the image if it is a file, extract its layers into
//! the cache (once), write a bundle whose root is an overlay of them, and run
//! it through the same engine as `kiln run --bundle`.

use super::runtime::{parse_user, state_root};
use super::store_root;
use crate::cli::Global;
use crate::cli::run::RunArgs;
use crate::image::{Store, import, layer_cache, model, unpack};
use crate::runtime::create::CreateOpts;
use crate::runtime::image_spec::{self, RunSpec};
use crate::runtime::{self as rt};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

pub fn run_image(g: &Global, a: RunArgs) -> Result<i32> {
    if a.tty && a.detach {
        bail!("-t with -d: a detached container has no terminal to relay");
    }
    let id = a.name.clone().unwrap_or_else(generate_id);
    rt::container::validate_id(&id)?;
    // The engine keeps its own copy of the config (in the state dir): the
    // bundle directory holds none.
    let (dir, spec) = prepare(g, &a, &id)?;
    let o = CreateOpts {
        id: id.clone(),
        bundle: dir.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        systemd_cgroup: g.systemd_cgroup,
        kiln_init: !a.no_init,
        ..Default::default()
    };
    let o = CreateOpts {
        // A detached container does not write on the caller's terminal after
        // kiln returns: its output goes to output.log in its directory.
        output: a.detach.then(|| dir.join("output.log")),
        ..o
    };
    // While the container runs, the directory a finished one left is
    // emptied for the next run (see bundle_pool).
    let containers = dir.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut tidy = || rt::bundle_pool::tidy(&containers);
    let result = rt::run::run_with(&state_root(g), &o, &spec, a.detach, false, None, &mut tidy);
    if a.detach && result.is_ok() {
        println!("{id}");
        return Ok(0);
    }
    remove_dir(&dir);
    Ok(result?)
}

/// Resolves the image, makes sure its layers are extracted, and writes the
/// container's directory under `<store>/containers/<id>/`.
fn prepare(g: &Global, a: &RunArgs, id: &str) -> Result<(PathBuf, oci_spec::runtime::Spec)> {
    let store = Store::open(&store_root(g))?;
    // A name in the store wins over a file of the same name in the cwd.
    let r = match store.resolve(&a.target) {
        Ok(r) => r,
        Err(_) if Path::new(&a.target).exists() => {
            let imported = import::import(&store, Path::new(&a.target), None)?;
            let first = imported.first().context("the archive holds no image")?;
            store.resolve(&first.name.to_string())?
        }
        Err(e) => return Err(e.into()),
    };
    let image = model::load_image(&store, &r.manifest)?;
    let layers = image
        .layers
        .iter()
        .map(|l| layer_cache::ensure(&store, l))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = store.root().join("containers").join(id);
    if dir.exists() {
        bail!("container {id}: already exists");
    }
    // Whatever fails from here on leaves no container directory behind.
    let spec = (|| -> Result<oci_spec::runtime::Spec> {
        // Private, like the state dir: config.json and output.log may hold
        // secrets. A directory a finished container left (see bundle_pool)
        // saves making it and its rootfs, upper and work.
        if !rt::bundle_pool::claim(&dir) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("create {}", dir.display()))?;
            for sub in ["rootfs", "upper", "work"] {
                std::fs::create_dir(dir.join(sub))
                    .with_context(|| format!("create {}", dir.join(sub).display()))?;
            }
        }
        // gc keeps the layers a container directory names.
        let pins: Vec<String> = image.layers.iter().map(|l| l.diff_id.to_string()).collect();
        let pins_file = dir.join("layers.json");
        rt::bundle_pool::write_in_place(&pins_file, &serde_json::to_vec(&pins)?)
            .with_context(|| format!("write {}", pins_file.display()))?;
        let overlay = overlay_supported(store.root());
        if !overlay {
            unpack::render(&store, &image, &dir.join("rootfs"))?;
        }
        let rs = run_spec(a, id, &dir, &image.config, &layers, overlay)?;
        Ok(image_spec::build(
            &image.config,
            &rs,
            &layers,
            &dir,
            overlay,
        )?)
    })();
    if spec.is_err() {
        remove_dir(&dir);
    }
    Ok((dir, spec?))
}

/// The flags and the image's user, environment and files, as a `RunSpec`.
fn run_spec(
    a: &RunArgs,
    id: &str,
    dir: &Path,
    config: &oci_spec::image::ImageConfiguration,
    layers: &[PathBuf],
    overlay: bool,
) -> Result<RunSpec> {
    let image_user = config
        .config()
        .as_ref()
        .and_then(|c| c.user().clone())
        .filter(|u| !u.is_empty());
    let user = match (&a.user, image_user) {
        (Some(u), _) => {
            Some(image_spec::resolve_user(u, layers).or_else(|e| parse_user(u).map_err(|_| e))?)
        }
        (None, Some(u)) => Some(image_spec::resolve_user(&u, layers)?),
        (None, None) => None,
    };
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(read_env_file(f)?);
    }
    env.extend(a.env.iter().cloned());
    let host_net = match a.net.as_str() {
        "host" => true,
        "none" => false,
        other => bail!("--net {other}: kiln supports host and none"),
    };
    let hostname: String = id.chars().take(63).collect();
    let (mut volumes, files_layer) = etc_files(dir, &hostname, host_net, layers, overlay)?;
    volumes.extend(a.volume.iter().cloned());
    let (uid, gid) = user.unwrap_or((0, 0));
    Ok(RunSpec {
        hostname,
        process_type: a.process.clone(),
        command: a.command.clone(),
        env,
        volumes,
        memory: a
            .memory
            .as_deref()
            .map(crate::units::parse_size)
            .transpose()
            .map_err(anyhow::Error::msg)?
            .map(|v| v as i64),
        pids: a.pids,
        cpus: a.cpus,
        read_only: a.read_only,
        host_net,
        user,
        tty: a.tty,
        home: image_spec::home_of(uid, layers),
        additional_gids: image_spec::groups_of(uid, gid, layers),
        cgroups_path: a
            .cgroup_parent
            .as_ref()
            .map(|p| format!("{}/kiln-{id}", p.trim_end_matches('/'))),
        files_layer,
    })
}

/// Whether the root can be an overlay of the cached layers; `KILN_OVERLAY=0`
/// asks for a private copy instead (file systems that cannot be overlay
/// upper dirs, nested container hosts).
/// /etc/hostname and /etc/hosts naming the container, and with the host's
/// network its /etc/resolv.conf. On an overlay root they go in
/// `files/etc/` of the container's directory, a layer stacked on the
/// image's (returned second): no copy of the image's /etc in the upper dir,
/// no bind mounts. Where the image's /etc is not a directory (a layer above
/// would hide it), or without an overlay, they are written in the container's
/// directory and bound over the image's, as podman does (returned as `-v`
/// specs).
fn etc_files(
    dir: &Path,
    hostname: &str,
    host_net: bool,
    layers: &[PathBuf],
    overlay: bool,
) -> Result<(Vec<String>, Option<PathBuf>)> {
    let mut hosts = if host_net {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string()
    };
    hosts.push_str(&format!("127.0.1.1\t{hostname}\n"));
    let mut files = vec![("hostname", format!("{hostname}\n")), ("hosts", hosts)];
    if host_net && let Ok(resolv) = std::fs::read_to_string("/etc/resolv.conf") {
        files.push(("resolv.conf", resolv));
    }
    let layer = (overlay && etc_is_a_directory(layers)).then(|| dir.join("files"));
    let etc = layer.as_ref().map_or(dir.to_path_buf(), |l| l.join("etc"));
    std::fs::create_dir_all(&etc).with_context(|| format!("create {}", etc.display()))?;
    let mut volumes = Vec::new();
    for (name, text) in files {
        let path = etc.join(name);
        rt::bundle_pool::write_in_place(&path, text.as_bytes())
            .with_context(|| format!("write {}", path.display()))?;
        if layer.is_none() {
            volumes.push(format!("{}:/etc/{name}", path.display()));
        }
    }
    Ok((volumes, layer))
}

/// Whether the topmost of `layers` (bottom first) that has an /etc has a
/// directory there (or none has one).
fn etc_is_a_directory(layers: &[PathBuf]) -> bool {
    for l in layers.iter().rev() {
        match std::fs::symlink_metadata(l.join("etc")) {
            Ok(m) => return m.is_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return false,
        }
    }
    true
}

fn overlay_supported(store: &Path) -> bool {
    if std::env::var_os("KILN_OVERLAY").is_some_and(|v| v == "0") {
        return false;
    }
    // An overlayfs cannot hold another overlay's upper dir (kiln inside a
    // container whose root is an overlay).
    let on_overlay = nix::sys::statfs::statfs(store)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC);
    !on_overlay
        && std::fs::read_to_string("/proc/filesystems")
            .is_ok_and(|f| f.lines().any(|l| l.ends_with("\toverlay")))
}

fn read_env_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.contains('=') {
            bail!("{}:{}: expected K=V", path.display(), n + 1);
        }
        out.push(line.to_string());
    }
    Ok(out)
}

fn generate_id() -> String {
    let mut b = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    format!("kiln-{}", hex::encode(b))
}

/// Removes a container directory (overlay work dirs can hold 000 dirs).
fn remove_dir(dir: &Path) {
    // `delete` removes the directory of a container it ran; this covers failures before that.
    if !dir.exists() {
        return;
    }
    let _ = rt::bundle_pool::release(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files layer goes on top only where the image's /etc is a
    /// directory it can merge with; a symlinked /etc gets bind mounts.
    #[test]
    fn the_files_layer_needs_a_directory_etc() {
        let t = tempfile::tempdir().unwrap();
        let (low, high) = (t.path().join("low"), t.path().join("high"));
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::create_dir_all(&high).unwrap();
        assert!(etc_is_a_directory(&[]));
        assert!(etc_is_a_directory(&[low.clone(), high.clone()]));
        std::os::unix::fs::symlink("usr/etc", high.join("etc")).unwrap();
        assert!(!etc_is_a_directory(&[low.clone(), high.clone()]));
        assert!(etc_is_a_directory(&[high, low]));
    }
}
