//! /proc/self/mountinfo, parsed once for everyone who needs it: cgroup
//! discovery, the rootfs's parent mount, the initial rootfs check, the
//! cgroup mounts inside a container.

use std::path::{Path, PathBuf};

/// One line: "id parent maj:min root mountpoint opts [optional...] - fstype source superopts".
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    pub id: u64,
    pub parent: u64,
    pub root: PathBuf,
    pub mountpoint: PathBuf,
    /// Optional fields: "shared:N", "master:N", ...
    pub optional: Vec<String>,
    pub fstype: String,
    pub super_opts: String,
}

impl Mount {
    /// Whether the mount is in a shared peer group.
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }
}

/// This process's mounts, in mountinfo order (an unreadable file reads as none).
pub fn read() -> Vec<Mount> {
    parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// Every well-formed line of `text`.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// The mount at which `path` lies (the last, topmost one at the longest
/// matching mount point).
pub fn holding<'m>(mounts: &'m [Mount], path: &Path) -> Option<&'m Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mountpoint))
        .max_by_key(|m| m.mountpoint.components().count())
}

pub fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let _source = right.next()?;
    let super_opts = right.next().unwrap_or("");
    if fields.len() < 6 {
        return None;
    }
    Some(Mount {
        id: fields[0].parse().ok()?,
        parent: fields[1].parse().ok()?,
        root: PathBuf::from(unescape(fields[3])),
        mountpoint: PathBuf::from(unescape(fields[4])),
        optional: fields[6..].iter().map(|s| s.to_string()).collect(),
        fstype: fstype.to_string(),
        super_opts: super_opts.to_string(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        if b[i] == b'\\'
            && let Some(v) =
                octal.and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_escapes_and_the_holding_mount() {
        let text = "1 0 8:1 / / rw shared:1 - ext4 /dev/vda rw\n\
                    41 1 0:38 /sub /sys/fs/cgroup/my\\040dir rw - cgroup2 cgroup2 rw\n\
                    42 1 0:39 / /var/lib rw master:3 - tmpfs tmpfs rw\n";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].mountpoint, PathBuf::from("/sys/fs/cgroup/my dir"));
        assert_eq!(m[1].root, PathBuf::from("/sub"));
        assert!(m[0].is_shared() && !m[2].is_shared());
        assert_eq!(holding(&m, Path::new("/var/lib/kiln")).unwrap().id, 42);
        assert_eq!(holding(&m, Path::new("/etc")).unwrap().id, 1);
    }
}
