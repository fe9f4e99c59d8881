//! The safe layer extractor: applies one layer tar onto a directory with OCI
//! whiteout semantics, confined to that directory whatever the archive says.
//!
//! Every path is cleaned (entries with `..` are refused) and resolved inside the
//! destination (`crate::inroot`), final components are created with `O_EXCL`
//! / `O_NOFOLLOW` after removing what was there, and entry count, expanded
//! size and tar metadata between entries are bounded so bombs stop with an error.

use super::{Error, Result};
use crate::inroot;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, futimens, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchown, fchownat, linkat, symlinkat};
use std::cell::Cell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;
use tar::EntryType;

/// Bounds that stop archive bombs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_entries: u64,
    pub max_bytes: u64,
}

impl Limits {
    /// The defaults (2 million entries, 32 GiB), overridable with
    /// `KILN_LAYER_MAX_ENTRIES` and `KILN_LAYER_MAX_BYTES` (suffixes k, m, g).
    pub fn from_env() -> Self {
        let get = |var: &str, default: u64| {
            std::env::var(var)
                .ok()
                .and_then(|v| crate::units::parse_size(&v).ok())
                .unwrap_or(default)
        };
        Self {
            max_entries: get("KILN_LAYER_MAX_ENTRIES", 2_000_000),
            max_bytes: get("KILN_LAYER_MAX_BYTES", 32 << 30),
        }
    }
}

/// What to do with whiteout entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// Delete what they name (rendering a flat root filesystem).
    Apply,
    /// Record them as overlayfs whiteouts (a layer cached for overlay mounts).
    Overlay,
}

/// How to extract.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub limits: Limits,
    pub whiteouts: Whiteouts,
    /// Set owners and create device nodes (needs root).
    pub privileged: bool,
}

impl Options {
    pub fn new(whiteouts: Whiteouts) -> Self {
        Self {
            limits: Limits::from_env(),
            whiteouts,
            privileged: nix::unistd::geteuid().is_root(),
        }
    }
}

/// What an extraction did, including what it had to leave out.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
    pub skipped_devices: u64,
    pub skipped_xattrs: u64,
}

struct DirFixup {
    path: String,
    mode: u32,
    mtime: i64,
}

struct Extractor<'a> {
    root: OwnedFd,
    opts: &'a Options,
    object: &'a str,
    stats: Stats,
    created: HashSet<String>,
    dirs: Vec<DirFixup>,
    /// Directories `writable` opened up, with their modes before.
    restore: Vec<(OwnedFd, u32)>,
    /// Shared, not dup'ed: a cache hit costs no system call.
    parent_cache: Option<(String, Rc<OwnedFd>)>,
    /// The copy buffer for file data, allocated once, not once per file.
    buf: Vec<u8>,
}

/// Extracts the tar stream `tar` onto `dest` (an existing directory).
/// `object` names the layer in errors.
pub fn extract(tar: impl Read, dest: &Path, opts: &Options, object: &str) -> Result<Stats> {
    let root = File::open(dest).map_err(|e| Error::Io {
        what: "open destination",
        path: dest.to_path_buf(),
        source: e,
    })?;
    let mut ex = Extractor {
        root: root.into(),
        opts,
        object,
        stats: Stats::default(),
        created: HashSet::new(),
        dirs: Vec::new(),
        restore: Vec::new(),
        parent_cache: None,
        buf: Vec::new(),
    };
    let meter = Rc::new(Meter::default());
    let mut archive = tar::Archive::new(Metered {
        inner: tar,
        meter: Rc::clone(&meter),
    });
    let entries = archive
        .entries()
        .map_err(|e| ex.err_io("read archive", e))?;
    meter.counting.set(true);
    let mut last_complete = false;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            // The stream ends right after the last entry's data, without the
            // padding to 512 bytes and the end-of-archive blocks: umoci 0.4's
            // `insert` writes such layers (opencontainers/umoci#436), and Go's
            // reader accepts them. Nothing of any entry is missing.
            Err(e) if last_complete && e.to_string() == "unexpected EOF during skip" => break,
            Err(e) => return Err(ex.err_io("read archive", e)),
        };
        meter.counting.set(false);
        meter.data.set(0);
        // The bytes stored in the archive: the header's size field (a sparse
        // file expands to more; a PAX size record can only be larger).
        let size = entry.size().min(entry.header().entry_size().unwrap_or(0));
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        ex.entry(&mut entry)?;
        // Skip what the entry left unread (its size is counted already).
        std::io::copy(&mut entry, &mut std::io::sink())
            .map_err(|e| ex.err_io("read archive", e))?;
        if meter.data.get() < size {
            return Err(ex.err(&path, "layer is truncated inside this entry's data"));
        }
        last_complete = true;
        meter.used.set(0);
        meter.counting.set(true);
    }
    // Read to the end so the caller's digest checks see every byte (metered:
    // the end-of-archive padding is small in any honest layer).
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| ex.err_io("read archive", e))?;
    ex.finish_dirs()?;
    Ok(ex.stats)
}

/// The most a layer may hold outside entry data between two entries (PAX
/// records, GNU long names, padding) or after the last one. The tar crate
/// buffers extension headers whole, so a bigger one is a memory bomb.
const MAX_METADATA: u64 = 16 << 20;

/// Counts the bytes read while `counting` (outside entry data).
#[derive(Default)]
struct Meter {
    counting: Cell<bool>,
    used: Cell<u64>,
    /// Entry data bytes read since the entry began.
    data: Cell<u64>,
}

/// The layer stream as the tar reader sees it, failing once the bytes read
/// outside entry data pass `MAX_METADATA`.
struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.meter.counting.get() {
            self.meter.data.set(self.meter.data.get() + n as u64);
        } else {
            let used = self.meter.used.get() + n as u64;
            self.meter.used.set(used);
            if used > MAX_METADATA {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "more than 16 MiB of tar headers or padding outside entry data",
                ));
            }
        }
        Ok(n)
    }
}

/// Splits a tar path into cleaned components; refuses `..`.
fn clean(raw: &[u8]) -> std::result::Result<String, &'static str> {
    let s = std::str::from_utf8(raw).map_err(|_| "path is not UTF-8")?;
    if s.len() > 4096 || s.contains('\0') {
        return Err("path is too long or holds NUL");
    }
    let mut parts = Vec::new();
    for comp in s.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err("path contains '..' and would escape the destination"),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

impl Extractor<'_> {
    fn err(&self, entry: &str, reason: impl ToString) -> Error {
        Error::invalid(format!("{}: entry {entry:?}", self.object), reason)
    }

    fn err_io(&self, what: &str, e: std::io::Error) -> Error {
        Error::invalid(self.object, format!("{what}: {e}"))
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            // Skipped, but their data is still read: count it.
            let size = entry.header().entry_size().unwrap_or(0);
            return self.count_bytes("(tar extension header)", size);
        }
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let path = clean(&raw).map_err(|r| self.err(&shown, r))?;
        self.stats.entries += 1;
        if self.stats.entries > self.opts.limits.max_entries {
            return Err(self.err(
                &shown,
                format!(
                    "layer has more than {} entries (KILN_LAYER_MAX_ENTRIES)",
                    self.opts.limits.max_entries
                ),
            ));
        }
        let size = entry.header().entry_size().unwrap_or(0);
        self.count_bytes(&shown, size)?;
        if path.is_empty() {
            return Ok(()); // the root itself: kiln owns its metadata
        }
        let (parent, name) = split(&path);
        if let Some(target) = name.strip_prefix(".wh.") {
            return self.whiteout(&shown, parent, target);
        }
        self.mark_created(&path);
        let pfd = self.parent(&shown, parent)?;
        let meta = Meta::read(entry);
        match kind {
            EntryType::Directory => self.dir(&shown, &pfd, &path, name, &meta),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(&shown, &pfd, name, &meta, entry, size)
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.symlink(&shown, &pfd, name, &target, &meta)
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.hardlink(&shown, &pfd, name, &target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let dev = nix::sys::stat::makedev(
                    entry.header().device_major().ok().flatten().unwrap_or(0) as u64,
                    entry.header().device_minor().ok().flatten().unwrap_or(0) as u64,
                );
                self.special(&shown, &pfd, name, kind, dev, &meta)
            }
            other => Err(self.err(&shown, format!("unsupported entry type {other:?}"))),
        }
    }

    fn count_bytes(&mut self, shown: &str, n: u64) -> Result<()> {
        self.stats.bytes += n;
        if self.stats.bytes > self.opts.limits.max_bytes {
            return Err(self.err(
                shown,
                format!(
                    "layer expands past {} bytes (KILN_LAYER_MAX_BYTES)",
                    self.opts.limits.max_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Records `path` and its ancestors as coming from this layer (for opaque dirs).
    fn mark_created(&mut self, path: &str) {
        if self.opts.whiteouts != Whiteouts::Apply {
            return;
        }
        let mut p = path;
        while self.created.insert(p.to_string()) {
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => break,
            }
        }
    }

    /// The directory that holds an entry, created if missing, resolved in-root.
    fn parent(&mut self, shown: &str, parent: &str) -> Result<Rc<OwnedFd>> {
        if let Some((p, fd)) = &self.parent_cache
            && p == parent
        {
            return Ok(Rc::clone(fd));
        }
        let fd = inroot::ensure_dir(self.root.as_fd(), parent)
            .map_err(|e| self.err(shown, format!("open parent directory {parent:?}: {e}")))?;
        self.writable(shown, &fd)?;
        let fd = Rc::new(fd);
        self.parent_cache = Some((parent.to_string(), Rc::clone(&fd)));
        Ok(fd)
    }

    /// Unprivileged, a directory without owner write and search permission
    /// (from a lower layer: `/proc`, `/root` in many images) cannot take or
    /// lose entries. Opens it up; `finish_dirs` puts the mode back.
    fn writable(&mut self, shown: &str, dir: &OwnedFd) -> Result<()> {
        if self.opts.privileged {
            return Ok(());
        }
        let st = nix::sys::stat::fstat(dir).map_err(|e| self.err(shown, e))?;
        let mode = st.st_mode & 0o7777;
        if mode & 0o300 == 0o300 {
            return Ok(());
        }
        // `dir` is an O_PATH descriptor, which fchmod refuses.
        let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
        let open = Mode::from_bits_truncate(mode | 0o700);
        fchmodat(AT_FDCWD, path.as_str(), open, FchmodatFlags::FollowSymlink)
            .map_err(|e| self.err(shown, format!("make directory writable: {e}")))?;
        let keep = dir.try_clone().map_err(|e| self.err(shown, e))?;
        self.restore.push((keep, mode));
        Ok(())
    }

    /// Removes whatever occupies `name` so a new entry can take its place.
    fn clear(&mut self, shown: &str, pfd: &OwnedFd, name: &str, keep_dir: bool) -> Result<bool> {
        let st = match nix::sys::stat::fstatat(pfd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(self.err(shown, e)),
        };
        let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        if is_dir && keep_dir {
            return Ok(true);
        }
        self.parent_cache = None;
        inroot::remove_all_at(pfd.as_fd(), name)
            .map_err(|e| self.err(shown, format!("replace existing entry: {e}")))?;
        Ok(false)
    }

    fn dir(
        &mut self,
        shown: &str,
        pfd: &OwnedFd,
        path: &str,
        name: &str,
        meta: &Meta,
    ) -> Result<()> {
        if !self.clear(shown, pfd, name, true)? {
            nix::sys::stat::mkdirat(pfd, name, Mode::from_bits_truncate(0o700))
                .map_err(|e| self.err(shown, format!("mkdir: {e}")))?;
        }
        let fd = openat(
            pfd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err(shown, e))?;
        self.own(shown, fd.as_fd(), meta)?;
        self.xattrs(fd.as_fd(), meta);
        self.dirs.push(DirFixup {
            path: path.to_string(),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        shown: &str,
        pfd: &OwnedFd,
        name: &str,
        meta: &Meta,
        data: &mut R,
        stored: u64,
    ) -> Result<()> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let create = || openat(pfd, name, flags, Mode::from_bits_truncate(0o600));
        // Most names are new: try first, and only when something is in the
        // way (O_EXCL says so) remove it and try again.
        let fd = match create() {
            Err(Errno::EEXIST) => {
                self.clear(shown, pfd, name, false)?;
                create()
            }
            other => other,
        }
        .map_err(|e| self.err(shown, format!("create: {e}")))?;
        let mut file = File::from(fd);
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(256 << 10, 0);
        let (mut written, mut counted) = (0u64, stored);
        loop {
            let n = data
                .read(&mut buf)
                .map_err(|e| self.err_io("read archive", e))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > counted {
                // A sparse entry expands past its stored size: count what it writes.
                self.count_bytes(shown, written - counted)?;
                counted = written;
            }
            file.write_all(&buf[..n])
                .map_err(|e| self.err(shown, format!("write: {e}")))?;
        }
        self.buf = buf;
        self.own(shown, file.as_fd(), meta)?;
        fchmod(&file, Mode::from_bits_truncate(meta.mode)).map_err(|e| self.err(shown, e))?;
        self.xattrs(file.as_fd(), meta);
        let t = TimeSpec::new(meta.mtime, 0);
        futimens(&file, &t, &t).map_err(|e| self.err(shown, e))?;
        Ok(())
    }

    fn symlink(
        &mut self,
        shown: &str,
        pfd: &OwnedFd,
        name: &str,
        target: &[u8],
        meta: &Meta,
    ) -> Result<()> {
        self.clear(shown, pfd, name, false)?;
        self.parent_cache = None;
        let target = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(target);
        symlinkat(target, pfd, name).map_err(|e| self.err(shown, format!("symlink: {e}")))?;
        if self.opts.privileged {
            fchownat(
                pfd,
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.err(shown, e))?;
        }
        let t = TimeSpec::new(meta.mtime, 0);
        let _ = utimensat(pfd, name, &t, &t, UtimensatFlags::NoFollowSymlink);
        Ok(())
    }

    fn hardlink(&mut self, shown: &str, pfd: &OwnedFd, name: &str, target: &[u8]) -> Result<()> {
        let tpath = clean(target).map_err(|r| self.err(shown, format!("hard link target: {r}")))?;
        let (tparent, tname) = split(&tpath);
        let tfd = inroot::open(
            self.root.as_fd(),
            tparent,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
        )
        .map_err(|e| self.err(shown, format!("hard link target {tpath:?}: {e}")))?;
        self.clear(shown, pfd, name, false)?;
        linkat(&tfd, tname, pfd, name, AtFlags::empty())
            .map_err(|e| self.err(shown, format!("hard link to {tpath:?}: {e}")))
    }

    fn special(
        &mut self,
        shown: &str,
        pfd: &OwnedFd,
        name: &str,
        kind: EntryType,
        dev: u64,
        meta: &Meta,
    ) -> Result<()> {
        let sflag = match kind {
            EntryType::Char => SFlag::S_IFCHR,
            EntryType::Block => SFlag::S_IFBLK,
            _ => SFlag::S_IFIFO,
        };
        if sflag != SFlag::S_IFIFO && !self.opts.privileged {
            self.stats.skipped_devices += 1;
            return Ok(());
        }
        self.clear(shown, pfd, name, false)?;
        let perm = Mode::from_bits_truncate(meta.mode);
        match mknodat(pfd, name, sflag, perm, dev) {
            Ok(()) => {}
            Err(Errno::EPERM) if sflag != SFlag::S_IFIFO => {
                self.stats.skipped_devices += 1;
                return Ok(());
            }
            Err(e) => return Err(self.err(shown, format!("mknod: {e}"))),
        }
        if self.opts.privileged {
            fchownat(
                pfd,
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.err(shown, e))?;
        }
        fchmodat(pfd, name, perm, FchmodatFlags::FollowSymlink).map_err(|e| self.err(shown, e))?;
        Ok(())
    }

    fn own(&mut self, shown: &str, fd: BorrowedFd, meta: &Meta) -> Result<()> {
        if self.opts.privileged {
            fchown(
                fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(|e| self.err(shown, format!("chown: {e}")))?;
        }
        Ok(())
    }

    fn xattrs(&mut self, fd: BorrowedFd, meta: &Meta) {
        for (k, v) in &meta.xattrs {
            if inroot::set_xattr(fd, k, v).is_err() {
                self.stats.skipped_xattrs += 1;
            }
        }
    }

    fn whiteout(&mut self, shown: &str, parent: &str, target: &str) -> Result<()> {
        self.parent_cache = None;
        let is_opaque = target == ".wh..opq";
        if !is_opaque && target.starts_with(".wh.") {
            return Ok(()); // other AUFS metadata (.wh..wh.plnk, ...) carries nothing for us
        }
        if target.is_empty() {
            return Err(self.err(shown, "whiteout names nothing"));
        }
        // `.wh..` and `.wh...` would delete the directory itself or its parent
        // (for a top-level entry, the parent of the destination).
        if target == "." || target == ".." {
            return Err(self.err(shown, format!("whiteout names {target:?}")));
        }
        match self.opts.whiteouts {
            Whiteouts::Apply => {
                let pfd = match inroot::open(
                    self.root.as_fd(),
                    parent,
                    OFlag::O_PATH | OFlag::O_DIRECTORY,
                ) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(()),
                    Err(e) => return Err(self.err(shown, e)),
                };
                self.writable(shown, &pfd)?;
                if is_opaque {
                    self.clear_lower(shown, pfd.as_fd(), parent)
                } else {
                    inroot::remove_all_at(pfd.as_fd(), target)
                        .map_err(|e| self.err(shown, format!("whiteout: {e}")))
                }
            }
            Whiteouts::Overlay => {
                self.mark_created(parent);
                let pfd = self.parent(shown, parent)?;
                if is_opaque {
                    super::layer_cache::mark_opaque(pfd.as_fd())
                        .map_err(|e| self.err(shown, format!("opaque whiteout: {e}")))
                } else {
                    self.clear(shown, &pfd, target, false)?;
                    super::layer_cache::make_whiteout(pfd.as_fd(), target)
                        .map_err(|e| self.err(shown, format!("whiteout: {e}")))
                }
            }
        }
    }

    /// Opaque directory: drop everything below `dir` that this layer did not add.
    fn clear_lower(&mut self, shown: &str, dir: BorrowedFd, path: &str) -> Result<()> {
        let names = inroot::list_dir(dir).map_err(|e| self.err(shown, e))?;
        for name in names {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            if !self.created.contains(&child) {
                inroot::remove_all_at(dir, &name).map_err(|e| self.err(shown, e))?;
                continue;
            }
            let sub = openat(
                dir,
                name.as_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            );
            if let Ok(sub) = sub {
                self.clear_lower(shown, sub.as_fd(), &child)?;
            }
        }
        Ok(())
    }

    /// Directory modes and times are set last: writing children changes mtime,
    /// and a read-only mode would stop the children being written.
    fn finish_dirs(&mut self) -> Result<()> {
        for (fd, mode) in std::mem::take(&mut self.restore).into_iter().rev() {
            let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let mode = Mode::from_bits_truncate(mode);
            // Best effort, like the fixups below: the directory may be gone.
            let _ = fchmodat(AT_FDCWD, path.as_str(), mode, FchmodatFlags::FollowSymlink);
        }
        for d in self.dirs.iter().rev() {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            let fd = match inroot::open(self.root.as_fd(), &d.path, flags) {
                Ok(fd) => fd,
                Err(_) => continue, // removed or replaced by a later entry
            };
            let shown = d.path.clone();
            fchmod(&fd, Mode::from_bits_truncate(d.mode)).map_err(|e| self.err(&shown, e))?;
            let t = TimeSpec::new(d.mtime, 0);
            futimens(&fd, &t, &t).map_err(|e| self.err(&shown, e))?;
        }
        Ok(())
    }
}

/// The metadata of one entry, PAX records applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn read<R: Read>(entry: &mut tar::Entry<R>) -> Self {
        let h = entry.header();
        let mut meta = Meta {
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mtime: h.mtime().unwrap_or(0) as i64,
            xattrs: Vec::new(),
        };
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                let (Ok(key), value) = (ext.key(), ext.value_bytes()) else {
                    continue;
                };
                let num = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.split('.').next()?.parse::<i64>().ok())
                };
                match key {
                    "uid" => meta.uid = num().unwrap_or(meta.uid as i64) as u32,
                    "gid" => meta.gid = num().unwrap_or(meta.gid as i64) as u32,
                    "mtime" => meta.mtime = num().unwrap_or(meta.mtime),
                    k => {
                        if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                            meta.xattrs.push((name.to_string(), value.to_vec()));
                        }
                    }
                }
            }
        }
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean(b"./a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(clean(b"/etc/passwd").unwrap(), "etc/passwd");
        assert!(clean(b"a/../../b").is_err());
        assert_eq!(clean(b"./").unwrap(), "");
    }
}
