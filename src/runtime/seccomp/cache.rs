//! Compiled filters on disk. libseccomp needs ~10 ms for the default
//! profile, ten times the start-up budget, while a profile compiles to the
//! same program every time: so a filter is stored under a hash of the
//! profile and the versions that shaped it, and read back in microseconds.
//!
//! The cache directory must be as trusted as the state directory: a filter
//! read from it is installed as is.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use libseccomp::{ScmpArch, ScmpVersion};
use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest as _, Sha256};

use super::bpf::{Insn, MAX_INSNS};
use super::{Error, Filter, Result, compile};

const MAGIC: &[u8; 4] = b"KSF1";
const HEADER: usize = 16;

/// Like [`compile`], reusing the filter compiled earlier for the same
/// profile from `cache_dir` (created if missing). Storing is best-effort: a
/// read-only or full cache directory only costs the compile time.
pub fn compile_cached(cfg: &LinuxSeccomp, cache_dir: &Path) -> Result<Filter> {
    let path = cache_dir.join(format!("{}.bpf", cache_key(cfg)?));
    if let Some(filter) = fs::read(&path)
        .ok()
        .and_then(|b| Filter::from_bytes(&b).ok())
    {
        return Ok(filter);
    }
    let filter = compile(cfg)?;
    // A failed store leaves no file behind (temp file + rename) and changes nothing else.
    let _ = store(cache_dir, &path, &filter.to_bytes());
    Ok(filter)
}

/// Everything the compiled program depends on: the profile, this build,
/// the libseccomp library and the native architecture.
fn cache_key(cfg: &LinuxSeccomp) -> Result<String> {
    let json = serde_json::to_vec(cfg).map_err(|e| Error::Io {
        what: "serialize profile",
        source: e.into(),
    })?;
    let v = ScmpVersion::current().map_err(Error::lib("query libseccomp version"))?;
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(env!("CARGO_PKG_VERSION"));
    h.update(format!(
        "\0{}.{}.{}\0{:?}\0",
        v.major,
        v.minor,
        v.micro,
        ScmpArch::native()
    ));
    h.update(&json);
    Ok(hex::encode(h.finalize()))
}

fn store(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes));
    match written.and_then(|()| fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

impl Filter {
    /// Serializes the filter: a 16-byte header (magic, kernel flags,
    /// listener, instruction count) and the instructions, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.program.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&[u8::from(self.listener), 0, 0, 0]);
        out.extend_from_slice(&(self.program.len() as u32).to_le_bytes());
        for i in &self.program {
            out.extend_from_slice(&i.code.to_le_bytes());
            out.extend_from_slice(&[i.jt, i.jf]);
            out.extend_from_slice(&i.k.to_le_bytes());
        }
        out
    }

    /// Reads back what [`Filter::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Filter> {
        let bad = |reason: &str| Error::invalid("compiled filter", reason);
        let (header, body) = bytes
            .split_at_checked(HEADER)
            .ok_or_else(|| bad("shorter than its header"))?;
        if &header[..4] != MAGIC {
            return Err(bad("not a kiln seccomp filter"));
        }
        let word = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let count = word(12) as usize;
        if count == 0 || count > MAX_INSNS || body.len() != count * 8 {
            return Err(bad("instruction count does not match its length"));
        }
        let program = body
            .chunks_exact(8)
            .map(|c| Insn {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Filter {
            program,
            flags: word(4),
            listener: header[8] != 0,
        })
    }
}
