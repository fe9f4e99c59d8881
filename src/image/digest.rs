//! sha256 digests: parsing, hashing readers and writers, and streaming verification.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// A validated `sha256:<64 hex>` digest, the only algorithm kiln stores.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest kiln accepts.
#[derive(Debug, thiserror::Error)]
#[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
pub struct DigestParseError(pub String);

impl Digest {
    /// Parses `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestParseError> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| DigestParseError(s.to_string()))?;
        Self::from_hex(hex).map_err(|_| DigestParseError(s.to_string()))
    }

    /// Accepts the bare 64-digit hex form.
    pub fn from_hex(hex: &str) -> Result<Self, DigestParseError> {
        let ok = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self {
                hex: hex.to_string(),
            })
        } else {
            Err(DigestParseError(hex.to_string()))
        }
    }

    /// The digest of an in-memory byte string.
    pub fn of_bytes(data: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(data))
    }

    fn from_hasher(h: Sha256) -> Self {
        Self {
            hex: hex::encode(h.finalize()),
        }
    }

    /// The 64 hex digits without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as shown in tables.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl From<&Digest> for oci_spec::image::Digest {
    fn from(d: &Digest) -> Self {
        d.to_string()
            .parse()
            .expect("a sha256 digest is a valid OCI digest")
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = DigestParseError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Self::parse(d.as_ref())
    }
}

/// A writer that hashes and counts everything passing through it.
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what it reads and, at end of file, fails with
/// `InvalidData` if the content does not match the expected digest and size.
pub struct VerifyReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    expected: Digest,
    expected_size: Option<u64>,
    verified: bool,
}

impl<R: Read> VerifyReader<R> {
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
            expected,
            expected_size,
            verified: false,
        }
    }

    /// The size the content must have, when the caller said.
    pub fn expected_size(&self) -> Option<u64> {
        self.expected_size
    }

    /// True once the whole content was read and matched.
    pub fn verified(&self) -> bool {
        self.verified
    }

    fn check(&mut self) -> io::Result<()> {
        let got = Digest::from_hasher(std::mem::take(&mut self.hasher));
        if got != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("digest mismatch (expected {}, got {got})", self.expected),
            ));
        }
        if let Some(size) = self.expected_size.filter(|s| *s != self.count) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("size mismatch (expected {size}, got {})", self.count),
            ));
        }
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for VerifyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if let Some(size) = self.expected_size.filter(|s| self.count > *s) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("size mismatch (expected {size}, got more)"),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            Digest::parse(&format!("sha256:{EMPTY}")).unwrap().hex(),
            EMPTY
        );
        assert!(Digest::parse(EMPTY).is_err());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&format!("sha256:{}", EMPTY.to_uppercase())).is_err());
        assert!(Digest::parse(&format!("sha512:{EMPTY}")).is_err());
    }

    #[test]
    fn verify_reader_detects_mismatch() {
        let good = Digest::of_bytes(b"hello");
        let mut out = Vec::new();
        let mut r = VerifyReader::new(&b"hello"[..], good.clone(), Some(5));
        r.read_to_end(&mut out).unwrap();
        assert!(r.verified());
        let mut r = VerifyReader::new(&b"hellO"[..], good.clone(), None);
        let err = r.read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        let mut r = VerifyReader::new(&b"hello"[..], good, Some(4));
        assert!(r.read_to_end(&mut out).is_err());
    }

    #[test]
    fn hash_writer_counts() {
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"").unwrap();
        let (_, d, n) = w.finish();
        assert_eq!(d.hex(), EMPTY);
        assert_eq!(n, 0);
    }
}
