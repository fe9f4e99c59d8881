//! cgroup v2 device control: an eBPF program of type CGROUP_DEVICE built from
//! the device rules (last matching rule wins, default deny, as on v1) and
//! attached to the container's cgroup, replacing any earlier one.

use super::devices::Rule;
use super::{Error, Result};
use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes used (class | op | source).
pub const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
pub const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
pub const MOV32_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
pub const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
pub const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
pub const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
pub const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
// access_type = access << 16 | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |acc, c| {
        acc | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// The program: load type (r2), access (r3), major (r4), minor (r5); then one
/// block per rule, last rule first, each returning its verdict on a match;
/// finally deny. A rule matching everything ends the program early.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let (block, matches_all) = rule_block(r);
        p.extend(block);
        if matches_all {
            return p;
        }
    }
    p.push(insn(MOV32_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// The checks of one rule, each jumping past the block when it fails,
/// followed by "return verdict". True when there were no checks.
fn rule_block(r: &Rule) -> (Vec<Insn>, bool) {
    let mut checks: Vec<Vec<Insn>> = Vec::new();
    match r.typ {
        'b' => checks.push(vec![insn(JNE_K, 2, 0, 0, DEV_BLOCK)]),
        'c' => checks.push(vec![insn(JNE_K, 2, 0, 0, DEV_CHAR)]),
        _ => {}
    }
    let acc = access_bits(&r.access);
    if acc != ACC_READ | ACC_WRITE | ACC_MKNOD {
        // allow: every requested bit is granted; deny: any requested bit is refused.
        let test = if r.allow {
            insn(JNE_X, 1, 3, 0, 0)
        } else {
            insn(JEQ_K, 1, 0, 0, 0)
        };
        checks.push(vec![
            insn(MOV32_X, 1, 3, 0, 0),
            insn(AND32_K, 1, 0, 0, acc),
            test,
        ]);
    }
    if let Some(major) = r.major {
        checks.push(vec![insn(JNE_K, 4, 0, 0, major as i32)]);
    }
    if let Some(minor) = r.minor {
        checks.push(vec![insn(JNE_K, 5, 0, 0, minor as i32)]);
    }
    let matches_all = checks.is_empty();
    let mut flat: Vec<Insn> = checks.into_iter().flatten().collect();
    flat.push(insn(MOV32_K, 0, 0, 0, i32::from(r.allow)));
    flat.push(insn(EXIT, 0, 0, 0, 0));
    // Each jump skips to just past this block.
    let len = flat.len();
    for (i, ins) in flat.iter_mut().enumerate() {
        if matches!(ins.code, JNE_K | JEQ_K | JNE_X) {
            ins.off = (len - i - 1) as i16;
        }
    }
    (flat, matches_all)
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const ATTACH_CGROUP_DEVICE: u32 = 6;
const F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(2) with an attribute struct; returns the non-negative result.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] bpf_attr prefix of the
    // size passed; pointers inside it point at buffers the caller keeps alive.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the filter for `rules` and attaches it to the cgroup `dir`,
/// detaching whatever device programs were there before. Directories that are
/// not on cgroup2 (unit tests' fake trees) are left alone, and so is a
/// rootless caller the kernel refuses: it cannot reach more devices than
/// its own user can anyway.
pub fn attach_device_filter(dir: &Path, rules: &[Rule]) -> Result<()> {
    let fail = |what: &'static str| {
        move |source: io::Error| Error::Bpf {
            path: dir.to_path_buf(),
            what,
            source,
        }
    };
    match nix::sys::statfs::statfs(dir) {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => {}
        Ok(_) => return Ok(()),
        Err(e) => return Err(fail("statfs")(e.into())),
    }
    let cg = std::fs::File::open(dir).map_err(fail("open"))?;
    let old = query(&cg).map_err(fail("query attached programs"))?;
    let prog = match load(&program(rules)) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && !nix::unistd::geteuid().is_root() => {
            return Ok(());
        }
        r => r.map_err(fail("load program"))?,
    };
    let mut attach = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: ATTACH_CGROUP_DEVICE,
        attach_flags: F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attach).map_err(fail("attach program"))?;
    for id in old {
        detach(&cg, id).map_err(fail("detach old program"))?;
    }
    Ok(())
}

fn load(insns: &[Insn]) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"kiln_devcg");
    let mut attr = ProgLoadAttr {
        prog_type: PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: BPF_PROG_LOAD returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The ids of the device programs attached to `cg`.
fn query(cg: &std::fs::File) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: ATTACH_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

fn detach(cg: &std::fs::File, id: u32) -> io::Result<()> {
    let mut get = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut get)?;
    // SAFETY: BPF_PROG_GET_FD_BY_ID returned a new file descriptor that we now own.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut attr = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: ATTACH_CGROUP_DEVICE,
        attach_flags: 0,
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(|_| ())
}

/// The number of device programs attached to `dir`.
#[cfg(test)]
pub fn attached_count(dir: &Path) -> io::Result<usize> {
    query(&std::fs::File::open(dir)?).map(|v| v.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::cgroups::devices::effective_rules;

    /// Runs `prog` the way the kernel would for one device access.
    fn run(prog: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u32 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u32; 11];
        r[1] = 0;
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let next = pc + 1;
            let jump = |cond: bool| if cond { next + i.off as usize } else { next };
            pc = match i.code {
                LDX_W => {
                    r[dst] = ctx[i.off as usize / 4];
                    next
                }
                AND32_K => {
                    r[dst] &= i.imm as u32;
                    next
                }
                RSH32_K => {
                    r[dst] >>= i.imm as u32;
                    next
                }
                MOV32_K => {
                    r[dst] = i.imm as u32;
                    next
                }
                MOV32_X => {
                    r[dst] = r[src];
                    next
                }
                JNE_K => jump(r[dst] != i.imm as u32),
                JEQ_K => jump(r[dst] == i.imm as u32),
                JNE_X => jump(r[dst] != r[src]),
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            };
        }
    }

    const C: u32 = DEV_CHAR as u32;
    const B: u32 = DEV_BLOCK as u32;
    const R: u32 = ACC_READ as u32;
    const W: u32 = ACC_WRITE as u32;
    const M: u32 = ACC_MKNOD as u32;

    #[test]
    fn defaults_allow_null_and_deny_disks() {
        let p = program(&effective_rules(&[]));
        assert_eq!(run(&p, C, R | W, 1, 3), 1, "/dev/null rw");
        assert_eq!(run(&p, C, R, 136, 7), 1, "/dev/pts/7");
        assert_eq!(run(&p, B, R, 8, 0), 0, "/dev/sda read");
        assert_eq!(run(&p, B, M, 8, 0), 1, "mknod of any block device");
        assert_eq!(run(&p, C, R, 4, 1), 0, "/dev/tty1");
    }

    #[test]
    fn later_rules_win_and_access_is_checked() {
        let rule = |allow, typ, major, minor, access: &str| Rule {
            allow,
            typ,
            major,
            minor,
            access: access.into(),
        };
        let rules = vec![
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', Some(4), None, "r"),
            rule(false, 'c', Some(4), Some(1), "rwm"),
            rule(false, 'c', Some(1), Some(3), "w"),
        ];
        let p = program(&rules);
        assert_eq!(run(&p, C, R, 4, 2), 1);
        assert_eq!(run(&p, C, R | W, 4, 2), 0, "w not granted");
        assert_eq!(run(&p, C, R, 4, 1), 0, "denied by a later rule");
        assert_eq!(run(&p, C, R, 1, 3), 0, "default deny");
        let allow_all = program(&[
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'a', None, None, "rwm"),
        ]);
        assert_eq!(allow_all.len(), 6 + 2, "an allow-all rule ends the program");
        assert_eq!(run(&allow_all, B, R, 8, 0), 1);
        let deny_w = program(&[
            rule(true, 'a', None, None, "rwm"),
            rule(false, 'c', Some(1), Some(3), "w"),
        ]);
        assert_eq!(run(&deny_w, C, R, 1, 3), 1);
        assert_eq!(
            run(&deny_w, C, R | W, 1, 3),
            0,
            "a partial deny refuses any overlap"
        );
    }
}
