//! The default profile, checked from inside a filtered child.

use super::*;

fn allowed_unconditionally(p: &LinuxSeccomp, name: &str) -> bool {
    p.syscalls().as_ref().unwrap().iter().any(|r| {
        r.action() == Act::ScmpActAllow && r.args().is_none() && r.names().iter().any(|n| n == name)
    })
}

#[test]
fn default_profile_resolves_capabilities() {
    let base = default_profile(&default_caps());
    for gated in [
        "mount", "umount2", "unshare", "setns", "clone", "clone3", "ptrace", "bpf", "keyctl",
        "reboot",
    ] {
        assert!(
            !allowed_unconditionally(&base, gated),
            "{gated} allowed without its capability"
        );
    }
    assert!(allowed_unconditionally(&base, "chroot"));
    assert!(!allowed_unconditionally(&default_profile(&[]), "chroot"));
    let admin = default_profile(&["sys_admin".to_string(), "CAP_SYS_PTRACE".to_string()]);
    for allowed in [
        "mount",
        "unshare",
        "setns",
        "clone",
        "clone3",
        "ptrace",
        "process_vm_readv",
    ] {
        assert!(
            allowed_unconditionally(&admin, allowed),
            "{allowed} denied with its capability"
        );
    }
    assert!(!allowed_unconditionally(&admin, "keyctl"));
    for caps in [vec![], default_caps(), admin_caps()] {
        let filter = compile(&default_profile(&caps)).unwrap();
        assert!(filter.len() < bpf::MAX_INSNS);
    }
}

extern "C" fn thread_main(_: *mut libc::c_void) -> *mut libc::c_void {
    std::ptr::null_mut()
}

/// The default profile without CAP_SYS_ADMIN, checked call by call. Calls
/// are made so that the filter's answer differs from the kernel's: e.g.
/// unshare with an invalid flag is EINVAL from the kernel, EPERM from the filter.
#[test]
fn default_profile_denies_namespaces_mount_and_keyctl() {
    let filter = compile(&default_profile(&default_caps())).unwrap();
    let code = run_filtered(&filter, || {
        let bogus = 1u64; // not a valid unshare flag
        check!(
            1,
            sys(libc::SYS_unshare, libc::CLONE_NEWNS as u64, 0, 0) == libc::EPERM
        );
        check!(
            2,
            sys(libc::SYS_unshare, libc::CLONE_NEWNS as u64 | bogus, 0, 0) == libc::EPERM
        );
        check!(
            3,
            sys(libc::SYS_unshare, libc::CLONE_NEWUSER as u64 | bogus, 0, 0) == libc::EPERM
        );
        check!(
            4,
            sys(libc::SYS_unshare, libc::CLONE_FILES as u64, 0, 0) == 0
        );
        check!(5, sys(libc::SYS_mount, 1, 1, 1) == libc::EPERM); // the kernel would say EFAULT
        check!(
            6,
            sys(libc::SYS_keyctl, 0, (-3i64) as u64, 0) == libc::EPERM
        );
        check!(7, sys(libc::SYS_getpid, 0, 0, 0) == 0);
        // SAFETY: opening and writing /dev/null with a static path.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        check!(8, fd >= 0);
        check!(
            9,
            sys(libc::SYS_write, fd as u64, b"x".as_ptr() as u64, 1) == 0
        );
        // fork: clone without namespace flags.
        // SAFETY: the grandchild only calls _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe { libc::_exit(7) };
        }
        let mut status = 0;
        check!(
            10,
            pid > 0 && unsafe { libc::waitpid(pid, &mut status, 0) } == pid
        );
        check!(
            11,
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7
        );
        check!(12, sys(libc::SYS_clone3, 0, 0, 0) == libc::ENOSYS);
        // Threads: glibc tries clone3, gets ENOSYS, falls back to clone.
        let mut t: libc::pthread_t = 0;
        // SAFETY: a thread that returns at once, joined right away.
        check!(
            13,
            unsafe {
                libc::pthread_create(&mut t, std::ptr::null(), thread_main, std::ptr::null_mut())
            } == 0
        );
        check!(
            14,
            unsafe { libc::pthread_join(t, std::ptr::null_mut()) } == 0
        );
        check!(15, sys(libc::SYS_ptrace, 0xdead, 0, 0) == libc::EPERM);
        check!(16, sys(libc::SYS_kexec_load, 0, 0, 0) == libc::EPERM);
        check!(17, sys(1000, 0, 0, 0) == libc::ENOSYS); // newer than the profile
        check!(18, sys(libc::SYS_personality, 0xffff_ffff, 0, 0) == 0);
        check!(
            19,
            sys(libc::SYS_personality, 0x0040_0000, 0, 0) == libc::EPERM
        );
        check!(20, sys(libc::SYS_io_uring_setup, 1, 0, 0) == libc::ENOSYS);
        check!(
            21,
            sys(libc::SYS_chroot, c"/kiln-nonexistent".as_ptr() as u64, 0, 0) == libc::ENOENT
        );
        check!(22, sys(libc::SYS_setns, 0, 0, 0) == libc::EPERM);
        0
    });
    assert_eq!(code, 0, "check {code} failed");
}

/// x32 system calls (x86_64 numbers with bit 30 set) answer ENOSYS, as on a
/// kernel without the x32 ABI, instead of killing the caller; the x86_64
/// call of the same number still works.
#[cfg(target_arch = "x86_64")]
#[test]
fn default_profile_answers_x32_calls_with_enosys() {
    let filter = compile(&default_profile(&default_caps())).unwrap();
    let x32 = |nr: libc::c_long| nr | bpf::X32_SYSCALL_BIT as libc::c_long;
    let code = run_filtered(&filter, || {
        check!(1, sys(x32(libc::SYS_getpid), 0, 0, 0) == libc::ENOSYS);
        check!(2, sys(x32(libc::SYS_unshare), 0, 0, 0) == libc::ENOSYS);
        check!(3, sys(libc::SYS_getpid, 0, 0, 0) == 0);
        0
    });
    assert_eq!(code, 0, "check {code} failed (128+N: killed by signal N)");
}

/// A real program under the default profile: a shell that forks, pipes,
/// runs coreutils and spawns a background job.
#[test]
fn default_profile_runs_a_shell_pipeline() {
    if !std::path::Path::new("/bin/sh").exists() {
        eprintln!("skipped: no /bin/sh");
        return;
    }
    let filter = compile(&default_profile(&default_caps())).unwrap();
    let script = c"ls / >/dev/null && echo ok | cat >/dev/null && (sleep 0 &) && wait && test -r /etc/passwd";
    let code = run_filtered(&filter, || {
        let argv = [
            c"sh".as_ptr(),
            c"-c".as_ptr(),
            script.as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: NUL-terminated argv of static C strings; on success execv does not return.
        unsafe { libc::execv(c"/bin/sh".as_ptr(), argv.as_ptr()) };
        99
    });
    assert_eq!(code, 0, "the shell failed under the default profile");
}

#[test]
fn default_profile_socket_rules_follow_podman() {
    let filter = compile(&default_profile(&default_caps())).unwrap();
    let code = run_filtered(&filter, || {
        let sock = |domain: i32, ty: i32, proto: i32| {
            sys(
                libc::SYS_socket,
                domain as u64,
                (ty | libc::SOCK_CLOEXEC) as u64,
                proto as u64,
            )
        };
        check!(
            1,
            sock(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT) == libc::EINVAL
        );
        check!(
            2,
            sock(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE) == 0
        );
        check!(3, sock(libc::AF_UNIX, libc::SOCK_STREAM, 0) == 0);
        check!(4, sock(libc::AF_INET, libc::SOCK_DGRAM, 0) == 0);
        // AF_VSOCK is not filtered (podman); the kernel may lack the family.
        check!(5, sock(libc::AF_VSOCK, libc::SOCK_STREAM, 0) != libc::EPERM);
        0
    });
    assert_eq!(code, 0, "check {code} failed");
}

#[test]
fn default_profile_with_sys_admin_lets_namespace_calls_through() {
    let filter = compile(&default_profile(&admin_caps())).unwrap();
    let code = run_filtered(&filter, || {
        // The kernel's own answers now: invalid flags, bad pointers, bad sizes.
        check!(
            1,
            sys(libc::SYS_unshare, libc::CLONE_NEWNS as u64 | 1, 0, 0) == libc::EINVAL
        );
        check!(2, sys(libc::SYS_mount, 1, 1, 1) == libc::EFAULT);
        check!(3, sys(libc::SYS_clone3, 0, 0, 0) == libc::EINVAL);
        check!(4, sys(libc::SYS_ptrace, 0xdead, 0, 0) != libc::EPERM);
        check!(
            5,
            sys(
                libc::SYS_socket,
                libc::AF_NETLINK as u64,
                libc::SOCK_RAW as u64,
                libc::NETLINK_AUDIT as u64
            ) != libc::EINVAL
        );
        0
    });
    assert_eq!(code, 0, "check {code} failed");
}
