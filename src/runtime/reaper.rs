//! kiln's minimal init (`kiln run --init`, the default for images): pid 1
//! forks the container's process, forwards every signal to it, reaps every
//! zombie, and exits with the process's status (128+N for a signal).

use super::dmz::Handover;
use super::{Context, Result, init};
use libc::c_int;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use oci_spec::runtime::Spec;
use std::convert::Infallible;
use std::os::fd::OwnedFd;
use std::path::Path;

pub fn exec(exe: &Path, spec: &Spec, dmz: &OwnedFd) -> Result<Infallible> {
    let all = SigSet::all();
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))
        .sys(|| "block signals".into())?;
    if let Ok((path, argv, envp)) = init::exec_args(exe, spec) {
        let child = spawn(Handover::new(dmz, path, argv, envp), &old)?;
        // kiln's command line (the store path, `-e` values) is no business
        // of the container: pid 1 shows as "kiln-init" inside.
        set_title(c"kiln-init");
        supervise(child, &all)
    }
    // SAFETY: this process is single-threaded (it is the container's init); the child
    // only restores its signal mask and execs.
    match unsafe { fork() }.sys(|| "fork the container process".into())? {
        ForkResult::Child => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            let e = match init::exec(exe, spec, dmz) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            eprintln!("kiln: {e}");
            // SAFETY: _exit ends the forked child without running atexit handlers.
            unsafe { libc::_exit(e.exit_code()) }
        }
        ForkResult::Parent { child } => {
            // kiln's command line (the store path, `-e` values) is no business
            // of the container: pid 1 shows as "kiln-init" inside.
            set_title(c"kiln-init");
            supervise(child, &all)
        }
    }
}

/// What the child of `spawn` reads: it shares this process's memory and
/// must not allocate.
struct Child {
    handover: Handover,
    mask: libc::sigset_t,
    errno: c_int,
}

/// Starts the container's process: a vfork-like clone (CLONE_VM|CLONE_VFORK
/// on a stack of its own, as posix_spawn makes) whose only work is to
/// restore the signal mask and exec kiln-dmz with raw system calls. A fork
/// would copy kiln's page tables only for the exec to throw them away. On
/// return the child has exec'd, or exited 126/127 after an error (reported
/// here; the reaper then passes its status on).
fn spawn(handover: Handover, mask: &SigSet) -> Result<Pid> {
    let mut c = Child {
        handover,
        mask: *mask.as_ref(),
        errno: 0,
    };
    let mut stack = vec![0u8; 64 << 10];
    // SAFETY: the top of `stack`, 16-byte aligned, for the child to grow down
    // from; `stack` outlives the child's use of it (CLONE_VFORK: clone returns
    // only once the child has exec'd or exited).
    let top = unsafe { stack.as_mut_ptr().add(stack.len()) } as usize & !15;
    // SAFETY: `start_child` only makes raw system calls on `c`, which lives
    // until clone returns; CLONE_VFORK suspends this process until then.
    let pid = unsafe {
        libc::clone(
            start_child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&raw mut c).cast(),
        )
    };
    let pid = nix::errno::Errno::result(pid).sys(|| "start the container process".into())?;
    if c.errno != 0 {
        let e = nix::errno::Errno::from_raw(c.errno);
        eprintln!("kiln: exec the container's process through kiln-dmz: {e}");
    }
    Ok(Pid::from_raw(pid))
}

/// The child of `spawn`: the signal mask back, then kiln-dmz.
extern "C" fn start_child(arg: *mut libc::c_void) -> c_int {
    let c = arg.cast::<Child>();
    // SAFETY: `c` points to the Child `spawn` keeps alive while suspended;
    // rt_sigprocmask reads its sigset, exit takes a plain integer.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const (*c).mask,
            std::ptr::null_mut::<libc::sigset_t>(),
            std::mem::size_of::<libc::c_ulong>(),
        );
        let e = (*c).handover.exec();
        (*c).errno = e as c_int;
        libc::syscall(
            libc::SYS_exit,
            if e == nix::errno::Errno::ENOENT {
                127
            } else {
                126
            },
        );
    }
    126
}

/// Replaces this process's command line (/proc/self/cmdline) and name.
fn set_title(title: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, title.as_ptr(), 0, 0, 0) };
    // Fields 48 and 49 of /proc/self/stat: where argv lives in this process.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some(after_comm) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // after_comm starts at field 3.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<usize>().ok());
    let (Some(start), Some(end)) = (field(48), field(49)) else {
        return;
    };
    let bytes = title.to_bytes_with_nul();
    if end <= start || bytes.len() > end - start {
        return;
    }
    // SAFETY: [start, end) is this process's own argv area (the kernel says so), writable
    // stack memory that nothing else in this single-threaded process reads any more.
    unsafe {
        let area = std::slice::from_raw_parts_mut(start as *mut u8, end - start);
        area.fill(0);
        area[..bytes.len()].copy_from_slice(bytes);
    }
}

fn supervise(child: Pid, all: &SigSet) -> ! {
    loop {
        let Ok(sig) = all.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => exit(code),
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => exit(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends pid 1 (and with it the container) with the process's status.
    unsafe { libc::_exit(code) }
}
