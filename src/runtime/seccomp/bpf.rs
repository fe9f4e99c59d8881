//! Classic BPF for seccomp: reading the program libseccomp generates, the
//! ENOSYS stub prepended to it, and installing it with seccomp(2).
//!
//! The filter is compiled to plain instructions ahead of time, so installing
//! it in the container's init is one system call: no allocation, no library
//! state, safe after fork.

use std::io::{self, Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::ScmpFilterContext;

use super::{Error, Result};

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// The kernel refuses longer programs (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

/// `SECCOMP_RET_ERRNO | ENOSYS`.
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
/// x32 system calls are x86_64 calls with this bit set in the number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `SECCOMP_FILTER_FLAG_*` (stable kernel ABI).
pub const FLAG_TSYNC: u32 = 1 << 0;
pub const FLAG_LOG: u32 = 1 << 1;
pub const FLAG_SPEC_ALLOW: u32 = 1 << 2;
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;
pub const FLAG_TSYNC_ESRCH: u32 = 1 << 4;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// Exports the compiled program of `ctx` (through a memfd: this libseccomp,
/// 2.5, has no in-memory export).
pub fn export(ctx: &ScmpFilterContext) -> Result<Vec<Insn>> {
    let io = |source| Error::Io {
        what: "export filter",
        source,
    };
    // SAFETY: the name is a valid C string; the returned fd is checked and owned below.
    let fd = unsafe { libc::memfd_create(c"kiln-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).map_err(|source| Error::Libseccomp {
        what: "export filter".into(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.rewind().map_err(io)?;
    file.read_to_end(&mut bytes).map_err(io)?;
    parse(&bytes)
}

/// Parses `struct sock_filter` records in host byte order.
pub fn parse(bytes: &[u8]) -> Result<Vec<Insn>> {
    if !bytes.len().is_multiple_of(8) {
        return Err(Error::invalid(
            "exported filter",
            format!(
                "{} bytes is not a whole number of instructions",
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Insn {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// The highest system call number a profile names on one kernel architecture
/// (an `AUDIT_ARCH_*` value); anything above it is newer than the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchMax {
    pub audit_arch: u32,
    /// Highest native number (`None`: leave that mode to the filter).
    pub max: Option<u32>,
    /// On x86_64 only: highest x32 number, X32_SYSCALL_BIT included
    /// (`X32_SYSCALL_BIT - 1`: every x32 call answers ENOSYS).
    pub x32_max: Option<u32>,
    /// s390/s390x multiplex unknown large numbers through syscall 0.
    pub s390: bool,
}

/// A prefix that answers ENOSYS to system calls newer than the profile, so a
/// libc falls back to older calls (runc does the same). Each architecture
/// section either returns or jumps to the end of the stub, where the
/// libseccomp program starts.
pub fn enosys_stub(arches: &[ArchMax]) -> Vec<Insn> {
    let bodies: Vec<Vec<Insn>> = arches.iter().map(arch_body).collect();
    let total = 1 + bodies.iter().map(|b| b.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.push(stmt(LD_W_ABS, OFF_ARCH));
    for (arch, mut body) in arches.iter().zip(bodies) {
        // Wrong architecture: skip this section, the accumulator still holds the arch.
        out.push(jump(JEQ_K, arch.audit_arch, 0, body.len() as u8));
        let end = body.len() - 1;
        // The last instruction of every body jumps past the stub into the filter.
        body[end].k = (total - (out.len() + end) - 1) as u32;
        out.extend(body);
    }
    out
}

/// One architecture's section: load the number, compare, then
/// `ret ENOSYS` and `ja filter` as the last two instructions.
fn arch_body(a: &ArchMax) -> Vec<Insn> {
    let ja_filter = stmt(JA, 0); // patched by the caller
    let mut body = vec![stmt(LD_W_ABS, OFF_NR)];
    let is_x86_64 = a.x32_max.is_some() || a.audit_arch == AUDIT_ARCH_X86_64;
    if is_x86_64 {
        // [1] jset x32 → [2] else [3]; [2] x32 check; [3] native check; [4] ret; [5] ja
        body.push(jump(JSET_K, X32_SYSCALL_BIT, 0, 1));
        body.push(compare(a.x32_max, 1));
        body.push(compare(a.max, 0));
    } else {
        if a.s390 {
            // [1] syscall 0 → [3] ret ENOSYS, else [2]
            body.push(jump(JEQ_K, 0, 1, 0));
        }
        body.push(compare(a.max, 0));
    }
    body.push(stmt(RET_K, RET_ENOSYS));
    body.push(ja_filter);
    body
}

/// `skip` instructions stand between this compare and the `ret ENOSYS`.
fn compare(max: Option<u32>, skip: u8) -> Insn {
    match max {
        // Greater → ret ENOSYS; else → ja filter (one past the ret).
        Some(max) => jump(JGT_K, max, skip, skip + 1),
        // Unknown mode: straight to the filter.
        None => stmt(JA, u32::from(skip) + 1),
    }
}

pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// Installs `prog` on the calling thread (all threads with TSYNC). Returns
/// the notification fd when `flags` holds `FLAG_NEW_LISTENER`.
///
/// Performs no allocation, so it is safe in a child forked from a
/// multithreaded parent.
pub fn install(prog: &[Insn], flags: u32) -> io::Result<Option<OwnedFd>> {
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog.len()` instructions laid out as
    // `struct sock_filter`, alive for the duration of the call; the kernel copies them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOSYS) && flags == 0 {
            return install_prctl(&fprog);
        }
        return Err(err);
    }
    if flags & FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a new fd that we now own.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as i32) }));
    }
    if rc > 0 {
        // TSYNC without ESRCH: the id of a thread that could not be synchronised.
        return Err(io::Error::other(format!(
            "thread {rc} could not be synchronised"
        )));
    }
    Ok(None)
}

/// Kernels before 3.17 have no seccomp(2), only prctl (and no flags).
fn install_prctl(fprog: &libc::sock_fprog) -> io::Result<Option<OwnedFd>> {
    // SAFETY: as in `install`; PR_SET_SECCOMP copies the program.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            fprog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF seccomp program on (arch, nr): enough of an
    /// interpreter for the stub's instructions.
    fn run(prog: &[Insn], arch: u32, nr: u32) -> Option<u32> {
        let (mut pc, mut acc) = (0usize, 0u32);
        while let Some(i) = prog.get(pc) {
            pc += 1;
            match i.code {
                LD_W_ABS => acc = if i.k == OFF_ARCH { arch } else { nr },
                JA => pc += i.k as usize,
                JEQ_K | JGT_K | JSET_K => {
                    let t = match i.code {
                        JEQ_K => acc == i.k,
                        JGT_K => acc > i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += usize::from(if t { i.jt } else { i.jf });
                }
                RET_K => return Some(i.k),
                _ => return None,
            }
        }
        None // fell off the stub: the filter proper decides
    }

    #[test]
    fn stub_sends_newer_syscalls_to_enosys_and_the_rest_to_the_filter() {
        let arches = [
            ArchMax {
                audit_arch: AUDIT_ARCH_X86_64,
                max: Some(450),
                x32_max: Some(X32_SYSCALL_BIT | 547),
                s390: false,
            },
            ArchMax {
                audit_arch: 0x4000_0003,
                max: Some(460),
                x32_max: None,
                s390: false,
            },
            ArchMax {
                audit_arch: 0x8000_0016,
                max: Some(400),
                x32_max: None,
                s390: true,
            },
        ];
        let stub = enosys_stub(&arches);
        // Whatever falls through must land exactly at the end of the stub.
        let end = |arch, nr| run(&stub, arch, nr);
        assert_eq!(end(AUDIT_ARCH_X86_64, 450), None);
        assert_eq!(end(AUDIT_ARCH_X86_64, 451), Some(RET_ENOSYS));
        assert_eq!(end(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 547), None);
        assert_eq!(
            end(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 548),
            Some(RET_ENOSYS)
        );
        assert_eq!(end(0x4000_0003, 460), None);
        assert_eq!(end(0x4000_0003, 461), Some(RET_ENOSYS));
        assert_eq!(end(0x8000_0016, 0), Some(RET_ENOSYS));
        assert_eq!(end(0x8000_0016, 5), None);
        assert_eq!(end(0x8000_0016, 401), Some(RET_ENOSYS));
        assert_eq!(end(0xdead_beef, 9999), None);
        // Every ja lands exactly on the first instruction after the stub.
        for (pc, i) in stub.iter().enumerate() {
            if i.code == JA {
                assert!(pc + 1 + i.k as usize <= stub.len());
            }
        }
    }

    #[test]
    fn stub_without_x32_leaves_x32_numbers_to_the_filter() {
        let stub = enosys_stub(&[ArchMax {
            audit_arch: AUDIT_ARCH_X86_64,
            max: Some(10),
            x32_max: None,
            s390: false,
        }]);
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 999), None);
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, 11), Some(RET_ENOSYS));
    }

    #[test]
    fn stub_refuses_every_x32_call_below_the_bit() {
        let stub = enosys_stub(&[ArchMax {
            audit_arch: AUDIT_ARCH_X86_64,
            max: Some(10),
            x32_max: Some(X32_SYSCALL_BIT - 1),
            s390: false,
        }]);
        for nr in [0, 39, 999] {
            let x32 = X32_SYSCALL_BIT | nr;
            assert_eq!(run(&stub, AUDIT_ARCH_X86_64, x32), Some(RET_ENOSYS));
        }
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, 10), None);
    }

    #[test]
    fn parse_rejects_partial_instructions() {
        assert!(parse(&[0; 12]).is_err());
        let one = parse(&[0x06, 0, 1, 2, 0, 0, 0xff, 0x7f]).unwrap();
        assert_eq!(one[0].code, 0x06);
        assert_eq!((one[0].jt, one[0].jf), (1, 2));
    }
}
