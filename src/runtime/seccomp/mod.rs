//! seccomp: OCI seccomp profiles compiled to BPF with libseccomp, and the default profile.
//!
//! [`compile`] turns a `linux.seccomp` section into a [`Filter`]: plain BPF
//! instructions plus the kernel flags, compiled ahead of time so that
//! [`Filter::load`] in the container's init is a single seccomp(2) call.
//! The semantics follow runc: unknown syscall names are skipped, rules whose
//! action is the default action are skipped, several conditions on one
//! argument become one rule each, and — unless the default action already
//! allows — system calls newer than every call the profile names answer
//! ENOSYS, so a libc falls back instead of failing with EPERM.

mod bpf;
mod cache;
mod notify;
mod profile;
#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompArg, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op, LinuxSyscall,
};

pub use cache::compile_cached;
pub use notify::send_listener;
pub use profile::default_profile;

/// Everything that can go wrong compiling or loading a seccomp profile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("seccomp: {what}: {source}")]
    Libseccomp {
        what: String,
        source: libseccomp::error::SeccompError,
    },
    #[error("seccomp: {object}: {reason}")]
    Invalid { object: String, reason: String },
    #[error("seccomp: {0}: not supported")]
    Unsupported(String),
    #[error("seccomp: load filter: {source}{hint}")]
    Load {
        source: io::Error,
        hint: &'static str,
    },
    #[error("seccomp: {what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    #[error("seccomp: send listener fd to {}: {source}", path.display())]
    Listener { path: PathBuf, source: io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn invalid(object: impl ToString, reason: impl ToString) -> Self {
        Error::Invalid {
            object: object.to_string(),
            reason: reason.to_string(),
        }
    }

    fn lib(what: impl ToString) -> impl FnOnce(libseccomp::error::SeccompError) -> Self {
        move |source| Error::Libseccomp {
            what: what.to_string(),
            source,
        }
    }
}

/// A compiled seccomp filter, ready to install. Plain data: compile it in
/// the parent, load it in the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    program: Vec<bpf::Insn>,
    /// `SECCOMP_FILTER_FLAG_*` for seccomp(2).
    flags: u32,
    /// Some rule uses SCMP_ACT_NOTIFY: loading creates a listener fd.
    listener: bool,
}

impl Filter {
    /// Installs the filter on the calling process (all its threads with
    /// SECCOMP_FILTER_FLAG_TSYNC). The caller must have set no_new_privs or
    /// hold CAP_SYS_ADMIN. Fails for a profile that uses SCMP_ACT_NOTIFY:
    /// use [`Filter::load_with_listener`] for those.
    pub fn load(&self) -> Result<()> {
        if self.listener {
            return Err(Error::invalid(
                "SCMP_ACT_NOTIFY",
                "the profile needs a listener: load it with load_with_listener",
            ));
        }
        self.install(self.flags).map(drop)
    }

    /// Installs the filter; for a profile that uses SCMP_ACT_NOTIFY, returns
    /// the notification fd to hand to the agent at `listenerPath`
    /// (see [`send_listener`]).
    pub fn load_with_listener(&self) -> Result<Option<OwnedFd>> {
        if !self.listener {
            return self.install(self.flags);
        }
        let mut flags = self.flags | bpf::FLAG_NEW_LISTENER;
        if flags & bpf::FLAG_TSYNC != 0 {
            // TSYNC and NEW_LISTENER both use the return value; ESRCH frees it for the fd.
            flags |= bpf::FLAG_TSYNC_ESRCH;
        }
        self.install(flags)
    }

    fn install(&self, flags: u32) -> Result<Option<OwnedFd>> {
        bpf::install(&self.program, flags).map_err(|source| {
            let hint = match source.raw_os_error() {
                Some(libc::EACCES) => " (set no_new_privs first or hold CAP_SYS_ADMIN)",
                Some(libc::EINVAL) if flags & !bpf::FLAG_TSYNC != 0 => {
                    " (does this kernel support the profile's flags?)"
                }
                _ => "",
            };
            Error::Load { source, hint }
        })
    }

    /// Whether loading creates a listener fd (some rule is SCMP_ACT_NOTIFY).
    pub fn needs_listener(&self) -> bool {
        self.listener
    }

    /// Number of BPF instructions (the kernel's limit is 4096).
    pub fn len(&self) -> usize {
        self.program.len()
    }

    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }
}

/// Compiles an OCI seccomp config into a filter ready to load.
pub fn compile(cfg: &LinuxSeccomp) -> Result<Filter> {
    let default = action(
        cfg.default_action(),
        cfg.default_errno_ret(),
        "defaultAction",
    )?;
    if default == ScmpAction::Notify {
        return Err(Error::invalid(
            "defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    let mut ctx = ScmpFilterContext::new(default).map_err(Error::lib("create filter"))?;
    let arches = add_arches(&mut ctx, cfg.architectures().as_deref().unwrap_or_default())?;
    // A binary tree of syscall numbers: longer to compile, but the kernel
    // loads it twice as fast (it evaluates the filter for every syscall
    // number to build its cache) and runs it in O(log n).
    ctx.set_ctl_optimize(2)
        .map_err(Error::lib("set optimization level"))?;
    let rules = cfg.syscalls().as_deref().unwrap_or_default();
    let mut listener = false;
    for rule in rules {
        listener |= add_rule(&mut ctx, rule, default)?;
    }
    if listener && cfg.listener_path().is_none() {
        return Err(Error::invalid(
            "SCMP_ACT_NOTIFY",
            "the profile sets no listenerPath",
        ));
    }
    let mut program = bpf::export(&ctx)?;
    let highest = highest_syscalls(&arches, rules);
    if needs_enosys_stub(default) && !highest.is_empty() {
        program.splice(0..0, bpf::enosys_stub(&highest));
    }
    if program.len() > bpf::MAX_INSNS {
        return Err(Error::invalid(
            "profile",
            format!(
                "{} BPF instructions, the kernel's limit is {}",
                program.len(),
                bpf::MAX_INSNS
            ),
        ));
    }
    let flags = filter_flags(cfg.flags().as_deref().unwrap_or_default(), listener);
    Ok(Filter {
        program,
        flags,
        listener,
    })
}

/// The libseccomp action for an OCI action; ERRNO and TRACE default to EPERM.
fn action(act: Act, errno_ret: Option<u32>, object: &str) -> Result<ScmpAction> {
    let ret = errno_ret.unwrap_or(libc::EPERM as u32);
    let ret16 = u16::try_from(ret)
        .map_err(|_| Error::invalid(object, format!("errnoRet {ret} does not fit in 16 bits")))?;
    Ok(match act {
        // SCMP_ACT_KILL is the historical name of KILL_THREAD.
        Act::ScmpActKill | Act::ScmpActKillThread => ScmpAction::KillThread,
        Act::ScmpActKillProcess => ScmpAction::KillProcess,
        Act::ScmpActTrap => ScmpAction::Trap,
        Act::ScmpActErrno => ScmpAction::Errno(i32::from(ret16)),
        Act::ScmpActTrace => ScmpAction::Trace(ret16),
        Act::ScmpActLog => ScmpAction::Log,
        Act::ScmpActAllow => ScmpAction::Allow,
        Act::ScmpActNotify => ScmpAction::Notify,
    })
}

/// Allow-like defaults need no ENOSYS stub (a tracer handles new calls
/// itself), nor does a default that already answers ENOSYS.
fn needs_enosys_stub(default: ScmpAction) -> bool {
    !matches!(
        default,
        ScmpAction::Allow
            | ScmpAction::Log
            | ScmpAction::Trace(_)
            | ScmpAction::Errno(libc::ENOSYS)
    )
}

/// OCI architectures with their libseccomp tokens.
const ARCHES: &[(Arch, ScmpArch)] = &[
    (Arch::ScmpArchX86, ScmpArch::X86),
    (Arch::ScmpArchX86_64, ScmpArch::X8664),
    (Arch::ScmpArchX32, ScmpArch::X32),
    (Arch::ScmpArchArm, ScmpArch::Arm),
    (Arch::ScmpArchAarch64, ScmpArch::Aarch64),
    (Arch::ScmpArchMips, ScmpArch::Mips),
    (Arch::ScmpArchMips64, ScmpArch::Mips64),
    (Arch::ScmpArchMips64n32, ScmpArch::Mips64N32),
    (Arch::ScmpArchMipsel, ScmpArch::Mipsel),
    (Arch::ScmpArchMipsel64, ScmpArch::Mipsel64),
    (Arch::ScmpArchMipsel64n32, ScmpArch::Mipsel64N32),
    (Arch::ScmpArchPpc, ScmpArch::Ppc),
    (Arch::ScmpArchPpc64, ScmpArch::Ppc64),
    (Arch::ScmpArchPpc64le, ScmpArch::Ppc64Le),
    (Arch::ScmpArchS390, ScmpArch::S390),
    (Arch::ScmpArchS390x, ScmpArch::S390X),
    (Arch::ScmpArchParisc, ScmpArch::Parisc),
    (Arch::ScmpArchParisc64, ScmpArch::Parisc64),
    (Arch::ScmpArchRiscv64, ScmpArch::Riscv64),
    (Arch::ScmpArchLoongarch64, ScmpArch::Loongarch64),
    (Arch::ScmpArchM68k, ScmpArch::M68k),
    (Arch::ScmpArchSh, ScmpArch::Sh),
    (Arch::ScmpArchSheb, ScmpArch::Sheb),
];

/// Adds the listed architectures; the native one is always present.
/// Returns every architecture in the filter, native first.
fn add_arches(ctx: &mut ScmpFilterContext, list: &[Arch]) -> Result<Vec<ScmpArch>> {
    let mut arches = vec![ScmpArch::native()];
    for arch in list {
        if *arch == Arch::ScmpArchNative {
            continue;
        }
        let (_, token) = ARCHES
            .iter()
            .find(|(a, _)| a == arch)
            .ok_or_else(|| Error::Unsupported(format!("architecture {arch}")))?;
        ctx.add_arch(*token)
            .map_err(Error::lib(format!("add architecture {arch}")))?;
        if !arches.contains(token) {
            arches.push(*token);
        }
    }
    Ok(arches)
}

/// Adds one `syscalls[]` entry; returns whether it uses SCMP_ACT_NOTIFY.
fn add_rule(ctx: &mut ScmpFilterContext, rule: &LinuxSyscall, default: ScmpAction) -> Result<bool> {
    let object = || format!("syscalls {}", rule.names().join(","));
    let act = action(rule.action(), rule.errno_ret(), &object())?;
    if act == default {
        // libseccomp refuses rules that repeat the default action.
        return Ok(false);
    }
    if act == ScmpAction::Notify && rule.names().iter().any(|n| n == "write") {
        // The runtime writes to its sync socket after loading the filter: notifying
        // on write would deadlock before the agent even has the listener fd.
        return Err(Error::invalid(
            object(),
            "SCMP_ACT_NOTIFY cannot be used for write",
        ));
    }
    let groups = condition_groups(rule.args().as_deref().unwrap_or_default(), &object())?;
    for name in rule.names() {
        let Ok(nr) = ScmpSyscall::from_name(name) else {
            continue; // unknown to libseccomp on every architecture: skipped, like runc
        };
        for conds in &groups {
            ctx.add_rule_conditional(act, nr, conds)
                .map_err(Error::lib(format!("add rule for syscall {name}")))?;
        }
    }
    Ok(act == ScmpAction::Notify)
}

/// The rules to add for one entry's conditions: all of them in one rule, or
/// — when several compare the same argument, which libseccomp cannot AND —
/// one rule per condition (runc's behaviour).
fn condition_groups(args: &[LinuxSeccompArg], object: &str) -> Result<Vec<Vec<ScmpArgCompare>>> {
    let mut per_index = [0usize; 6];
    let mut conds = Vec::with_capacity(args.len());
    for arg in args {
        let index = arg.index();
        let count = per_index.get_mut(index).ok_or_else(|| {
            Error::invalid(object, format!("argument index {index} is not below 6"))
        })?;
        *count += 1;
        conds.push(condition(arg));
    }
    if per_index.iter().any(|&n| n > 1) {
        Ok(conds.into_iter().map(|c| vec![c]).collect())
    } else {
        Ok(vec![conds])
    }
}

/// One OCI argument condition. For MASKED_EQ, `value` is the mask and
/// `valueTwo` the value the masked argument must equal.
fn condition(arg: &LinuxSeccompArg) -> ScmpArgCompare {
    let op = match arg.op() {
        Op::ScmpCmpNe => ScmpCompareOp::NotEqual,
        Op::ScmpCmpLt => ScmpCompareOp::Less,
        Op::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        Op::ScmpCmpEq => ScmpCompareOp::Equal,
        Op::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        Op::ScmpCmpGt => ScmpCompareOp::Greater,
        Op::ScmpCmpMaskedEq => {
            let datum = arg.value_two().unwrap_or(0);
            return ScmpArgCompare::new(
                arg.index() as u32,
                ScmpCompareOp::MaskedEqual(arg.value()),
                datum,
            );
        }
    };
    ScmpArgCompare::new(arg.index() as u32, op, arg.value())
}

/// The kernel flags for seccomp(2).
fn filter_flags(flags: &[Flag], listener: bool) -> u32 {
    flags.iter().fold(0, |acc, f| {
        acc | match f {
            Flag::SeccompFilterFlagTsync => bpf::FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => bpf::FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => bpf::FLAG_SPEC_ALLOW,
            // Only meaningful (and only accepted) together with a listener.
            Flag::SeccompFilterFlagWaitKillableRecv if listener => bpf::FLAG_WAIT_KILLABLE_RECV,
            Flag::SeccompFilterFlagWaitKillableRecv => 0,
        }
    })
}

/// The highest syscall number the profile names, per kernel architecture:
/// the ENOSYS stub's thresholds.
fn highest_syscalls(arches: &[ScmpArch], rules: &[LinuxSyscall]) -> Vec<bpf::ArchMax> {
    let highest = |arch: ScmpArch| {
        rules
            .iter()
            .flat_map(|r| r.names())
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
            .map(i32::from)
            .filter(|&nr| nr >= 0) // negative: a pseudo number, absent on this arch
            .max()
            .map(|nr| nr as u32)
    };
    let mut out: Vec<bpf::ArchMax> = Vec::new();
    for &arch in arches {
        let Some(audit_arch) = audit_arch(arch) else {
            continue;
        };
        let i = match out.iter().position(|a| a.audit_arch == audit_arch) {
            Some(i) => i,
            None => {
                out.push(bpf::ArchMax {
                    audit_arch,
                    max: None,
                    x32_max: None,
                    s390: matches!(arch, ScmpArch::S390 | ScmpArch::S390X),
                });
                out.len() - 1
            }
        };
        let entry = &mut out[i];
        if arch == ScmpArch::X32 {
            entry.x32_max = highest(arch);
        } else {
            entry.max = highest(arch);
        }
    }
    // x86_64 without x32: x32 calls answer ENOSYS, as on the kernels that
    // leave the x32 ABI off (Debian's), instead of killing the thread as
    // libseccomp does for an architecture the filter does not know.
    if !arches.contains(&ScmpArch::X32) {
        for a in out.iter_mut() {
            if a.audit_arch == bpf::AUDIT_ARCH_X86_64 && a.x32_max.is_none() {
                a.x32_max = Some(bpf::X32_SYSCALL_BIT - 1);
            }
        }
    }
    out.retain(|a| a.max.is_some() || a.x32_max.is_some());
    out
}

/// The kernel's `AUDIT_ARCH_*` for a libseccomp architecture: the same value
/// as the OCI one, except x32, which the kernel reports as x86_64.
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    if arch == ScmpArch::X32 {
        return Some(bpf::AUDIT_ARCH_X86_64);
    }
    ARCHES
        .iter()
        .find(|(_, t)| *t == arch)
        .map(|(a, _)| *a as u32)
}
