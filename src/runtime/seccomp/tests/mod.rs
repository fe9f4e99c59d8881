//! Tests for the seccomp module. Filters are loaded in forked children (a
//! filter cannot be removed); a child reports the number of the first check
//! that failed as its exit status, 0 when all passed.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};
use oci_spec::runtime::{
    LinuxSeccompAction as Act, LinuxSeccompArgBuilder, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op,
};

use super::*;

use super::profile::rule;

fn arg(index: usize, op: Op, value: u64, value_two: Option<u64>) -> LinuxSeccompArg {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    if let Some(v) = value_two {
        b = b.value_two(v);
    }
    b.build().unwrap()
}

fn profile(default: Act, rules: Vec<LinuxSyscall>) -> LinuxSeccomp {
    let mut p = LinuxSeccomp::default();
    p.set_default_action(default).set_syscalls(Some(rules));
    p
}

/// Fails the child with `$step` unless `$cond` holds.
macro_rules! check {
    ($step:expr, $cond:expr) => {
        if !$cond {
            return $step;
        }
    };
}

/// Forks; the child sets no_new_privs, loads `filter`, runs `body` and exits
/// with its result. The child only makes raw calls: no allocation, no panics.
fn run_filtered(filter: &Filter, body: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only calls async-signal-safe functions and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // SAFETY: prctl with integer arguments.
            let code = if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                90
            } else if filter.load().is_err() {
                91
            } else {
                body()
            };
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => code,
            WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
            other => panic!("child: {other:?}"),
        },
    }
}

/// 0 on success, else the errno of a raw system call.
fn sys(nr: libc::c_long, a0: u64, a1: u64, a2: u64) -> i32 {
    // SAFETY: the tests pass only integers or pointers to live stack buffers.
    let rc = unsafe { libc::syscall(nr, a0, a1, a2) };
    if rc < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().expect("pipe")
}

fn default_caps() -> Vec<String> {
    crate::runtime::security::DEFAULT_CAPS
        .iter()
        .map(|c| c.to_string())
        .collect()
}

fn admin_caps() -> Vec<String> {
    let mut caps = default_caps();
    caps.extend(["CAP_SYS_ADMIN", "CAP_AUDIT_WRITE", "CAP_SYS_PTRACE"].map(String::from));
    caps
}

mod default_profile;
mod load;

#[test]
fn errno_rule_under_allow_default_denies_only_that_call() {
    let filter = compile(&profile(
        Act::ScmpActAllow,
        vec![rule(&["getcwd"], Act::ScmpActErrno, None, vec![])],
    ))
    .unwrap();
    let (_r, w) = pipe();
    let code = run_filtered(&filter, || {
        let mut buf = [0u8; 256];
        check!(
            1,
            sys(libc::SYS_getcwd, buf.as_mut_ptr() as u64, 256, 0) == libc::EPERM
        );
        check!(2, sys(libc::SYS_getpid, 0, 0, 0) == 0);
        check!(
            3,
            sys(
                libc::SYS_write,
                w.as_raw_fd() as u64,
                b"x".as_ptr() as u64,
                1
            ) == 0
        );
        // No ENOSYS stub under an allow default: a bogus number reaches the kernel.
        check!(4, sys(1000, 0, 0, 0) == libc::ENOSYS);
        0
    });
    assert_eq!(code, 0);
}

#[test]
fn errno_default_with_an_allow_list_runs_a_small_program() {
    let allow = rule(
        &["write", "exit_group", "exit"],
        Act::ScmpActAllow,
        None,
        vec![],
    );
    let mut p = profile(Act::ScmpActErrno, vec![allow]);
    p.set_default_errno_ret(Some(libc::EACCES as u32));
    let filter = compile(&p).unwrap();
    let (r, w) = pipe();
    let code = run_filtered(&filter, || {
        check!(
            1,
            sys(
                libc::SYS_write,
                w.as_raw_fd() as u64,
                b"ok".as_ptr() as u64,
                2
            ) == 0
        );
        check!(2, sys(libc::SYS_getpid, 0, 0, 0) == libc::EACCES);
        // Above the highest call the profile names (exit_group): ENOSYS from the stub.
        check!(3, sys(libc::SYS_getrandom, 0, 0, 0) == libc::ENOSYS);
        check!(4, sys(1000, 0, 0, 0) == libc::ENOSYS);
        0
    });
    assert_eq!(code, 0);
    drop(w);
    let mut out = [0u8; 8];
    let n = nix::unistd::read(&r, &mut out).unwrap();
    assert_eq!(&out[..n], b"ok");
}

#[test]
fn argument_condition_allows_personality_only_with_arg0_zero() {
    let deny = rule(
        &["personality"],
        Act::ScmpActErrno,
        Some(libc::EACCES as u32),
        vec![arg(0, Op::ScmpCmpNe, 0, None)],
    );
    let filter = compile(&profile(Act::ScmpActAllow, vec![deny])).unwrap();
    let code = run_filtered(&filter, || {
        check!(1, sys(libc::SYS_personality, 0, 0, 0) == 0);
        check!(
            2,
            sys(libc::SYS_personality, 0xffff_ffff, 0, 0) == libc::EACCES
        );
        check!(3, sys(libc::SYS_personality, 8, 0, 0) == libc::EACCES);
        0
    });
    assert_eq!(code, 0);
}

#[test]
fn conditions_on_one_argument_become_separate_rules() {
    // Two conditions on arg0 cannot both hold: as one rule they would never match;
    // split (runc's behaviour) either one does.
    let args = vec![
        arg(0, Op::ScmpCmpEq, 8, None),
        arg(0, Op::ScmpCmpEq, 0x20000, None),
    ];
    let deny = rule(
        &["personality"],
        Act::ScmpActErrno,
        Some(libc::EACCES as u32),
        args,
    );
    let filter = compile(&profile(Act::ScmpActAllow, vec![deny])).unwrap();
    let code = run_filtered(&filter, || {
        check!(1, sys(libc::SYS_personality, 8, 0, 0) == libc::EACCES);
        check!(2, sys(libc::SYS_personality, 0x20000, 0, 0) == libc::EACCES);
        check!(3, sys(libc::SYS_personality, 0, 0, 0) == 0);
        0
    });
    assert_eq!(code, 0);
}

#[test]
fn masked_eq_matches_on_the_masked_bits() {
    let cloexec = libc::O_CLOEXEC as u64;
    let deny = rule(
        &["dup3"],
        Act::ScmpActErrno,
        Some(libc::E2BIG as u32),
        vec![arg(2, Op::ScmpCmpMaskedEq, cloexec, Some(cloexec))],
    );
    let filter = compile(&profile(Act::ScmpActAllow, vec![deny])).unwrap();
    let (r, _w) = pipe();
    let code = run_filtered(&filter, || {
        let fd = r.as_raw_fd() as u64;
        check!(1, sys(libc::SYS_dup3, fd, 100, cloexec) == libc::E2BIG);
        check!(2, sys(libc::SYS_dup3, fd, 101, 0) == 0);
        0
    });
    assert_eq!(code, 0);
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let names = [
        "kiln_no_such_syscall",
        "_llseek",
        "arm_fadvise64_64",
        "getcwd",
    ];
    let filter = compile(&profile(
        Act::ScmpActAllow,
        vec![rule(&names, Act::ScmpActErrno, None, vec![])],
    ))
    .unwrap();
    let code = run_filtered(&filter, || {
        let mut buf = [0u8; 64];
        check!(
            1,
            sys(libc::SYS_getcwd, buf.as_mut_ptr() as u64, 64, 0) == libc::EPERM
        );
        0
    });
    assert_eq!(code, 0);
}

#[test]
fn rules_repeating_the_default_action_are_skipped() {
    let same = rule(
        &["getpid"],
        Act::ScmpActErrno,
        Some(libc::EPERM as u32),
        vec![],
    );
    let implicit = rule(&["getppid"], Act::ScmpActErrno, None, vec![]);
    let other = rule(
        &["gettid"],
        Act::ScmpActErrno,
        Some(libc::EIO as u32),
        vec![],
    );
    assert!(compile(&profile(Act::ScmpActErrno, vec![same, implicit, other])).is_ok());
}

#[test]
fn invalid_profiles_are_refused_with_the_reason() {
    let err = |p: LinuxSeccomp| compile(&p).unwrap_err().to_string();
    let high = rule(
        &["getpid"],
        Act::ScmpActErrno,
        None,
        vec![arg(6, Op::ScmpCmpEq, 0, None)],
    );
    assert!(err(profile(Act::ScmpActAllow, vec![high])).contains("argument index 6"));
    let notify = rule(&["getcwd"], Act::ScmpActNotify, None, vec![]);
    assert!(err(profile(Act::ScmpActAllow, vec![notify])).contains("listenerPath"));
    let mut p = profile(
        Act::ScmpActAllow,
        vec![rule(&["write"], Act::ScmpActNotify, None, vec![])],
    );
    p.set_listener_path(Some("/run/agent.sock".into()));
    assert!(err(p).contains("write"));
    assert!(err(profile(Act::ScmpActNotify, vec![])).contains("default action"));
    let big = rule(&["getpid"], Act::ScmpActErrno, Some(70_000), vec![]);
    assert!(err(profile(Act::ScmpActAllow, vec![big])).contains("16 bits"));
}

#[test]
fn flags_map_to_kernel_bits_and_load() {
    use bpf::{FLAG_LOG, FLAG_SPEC_ALLOW, FLAG_TSYNC, FLAG_WAIT_KILLABLE_RECV};
    let all = [
        Flag::SeccompFilterFlagTsync,
        Flag::SeccompFilterFlagLog,
        Flag::SeccompFilterFlagSpecAllow,
        Flag::SeccompFilterFlagWaitKillableRecv,
    ];
    assert_eq!(
        filter_flags(&all, false),
        FLAG_TSYNC | FLAG_LOG | FLAG_SPEC_ALLOW
    );
    assert_eq!(
        filter_flags(&all, true),
        FLAG_TSYNC | FLAG_LOG | FLAG_SPEC_ALLOW | FLAG_WAIT_KILLABLE_RECV
    );
    let mut p = profile(
        Act::ScmpActAllow,
        vec![rule(&["getcwd"], Act::ScmpActErrno, None, vec![])],
    );
    p.set_flags(Some(all[..3].to_vec()));
    let filter = compile(&p).unwrap();
    let code = run_filtered(&filter, || {
        let mut buf = [0u8; 64];
        check!(
            1,
            sys(libc::SYS_getcwd, buf.as_mut_ptr() as u64, 64, 0) == libc::EPERM
        );
        0
    });
    assert_eq!(code, 0);
}
