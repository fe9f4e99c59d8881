//! The default seccomp profile of `kiln run`, resolved for one capability set.
//!
//! An allow-list at least as strict as podman's (containers-common) and
//! docker's defaults: where the two differ, the stricter choice is taken.
//! Unlisted calls fail with EPERM; calls with an older fallback that
//! programs take only on ENOSYS (clone3, the new mount API, io_uring) fail
//! with ENOSYS. Capability-gated calls are allowed only when the container
//! holds the capability, and namespace creation through clone/unshare only
//! with CAP_SYS_ADMIN, checked on the flags with MASKED_EQ. On x86_64 the
//! filter covers the native and the i386 ABIs; x32 calls answer ENOSYS, as
//! on kernels that leave that ABI off.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator as Op, LinuxSyscall,
};

/// Allowed in every container.
const ALLOWED: &[&str] = &[
    "_llseek",
    "_newselect",
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lsm_get_self_attr",
    "lsm_list_modules",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readdir",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaction",
    "sigaltstack",
    "signal",
    "signalfd",
    "signalfd4",
    "sigpending",
    "sigprocmask",
    "sigreturn",
    "sigsuspend",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Allowed only when the container holds one of the capabilities.
const GATED: &[(&[&str], &[&str])] = &[
    (
        &["CAP_SYS_ADMIN"],
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "listmount",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "open_tree_attr",
            "perf_event_open",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "statmount",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (&["CAP_SYSLOG"], &["syslog"]),
    (&["CAP_BPF"], &["bpf"]),
    (&["CAP_PERFMON"], &["perf_event_open"]),
    (&["CAP_SYS_BOOT"], &["reboot"]),
    (&["CAP_SYS_CHROOT"], &["chroot"]),
    (
        &["CAP_SYS_MODULE"],
        &["delete_module", "finit_module", "init_module"],
    ),
    (&["CAP_SYS_PACCT"], &["acct"]),
    (
        &["CAP_SYS_PTRACE"],
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (&["CAP_SYS_RAWIO"], &["ioperm", "iopl"]),
    (
        &["CAP_SYS_TIME"],
        &["clock_settime", "clock_settime64", "settimeofday", "stime"],
    ),
    (&["CAP_SYS_TTY_CONFIG"], &["vhangup"]),
    (
        &["CAP_SYS_NICE"],
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (&["CAP_DAC_READ_SEARCH"], &["open_by_handle_at"]),
];

/// When not allowed, these fail with ENOSYS rather than EPERM: glibc falls
/// back from clone3 to clone, mount(8) from the new mount API to mount(2),
/// liburing users to plain I/O, only on ENOSYS.
const ENOSYS_WHEN_DENIED: &[&str] = &[
    "clone3",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "listmount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "open_tree_attr",
    "statmount",
];

/// Architecture-specific calls of the native architecture (and its 32-bit sub-architecture).
fn arch_specific() -> &'static [&'static str] {
    if cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
        &["arch_prctl", "modify_ldt"]
    } else if cfg!(any(target_arch = "aarch64", target_arch = "arm")) {
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "breakpoint",
            "cacheflush",
            "set_tls",
            "sync_file_range2",
        ]
    } else if cfg!(target_arch = "powerpc64") {
        &["swapcontext", "sync_file_range2"]
    } else if cfg!(target_arch = "s390x") {
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ]
    } else if cfg!(target_arch = "riscv64") {
        &["riscv_flush_icache", "riscv_hwprobe"]
    } else {
        &[]
    }
}

/// The native architecture and the compat ones its kernel also runs.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        // Not x32: its calls answer ENOSYS (see `highest_syscalls`), which
        // saves the filter a third of its length and the kernel a third of
        // the time it takes to load it (~70 µs per container).
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else if cfg!(target_arch = "s390x") {
        vec![Arch::ScmpArchS390x, Arch::ScmpArchS390]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

const CLONE_NEWTIME: u64 = 0x0000_0080;
/// Every CLONE_NEW* flag clone(2) accepts (CLONE_NEWTIME only exists for unshare and clone3).
const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

/// personality(2) values programs use: PER_LINUX, PER_LINUX32, UNAME26 with
/// each, and 0xffffffff to query.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The default profile for a container whose effective capabilities are
/// `caps` (names like "CAP_SYS_ADMIN"; case and the "CAP_" prefix are optional).
pub fn default_profile(caps: &[String]) -> LinuxSeccomp {
    let has = |cap: &str| caps.iter().any(|c| normalize(c) == cap);
    let allowed = allowed_names(&has);
    let mut rules = vec![rule(&allowed, Act::ScmpActAllow, None, vec![])];
    let enosys: Vec<&str> = ENOSYS_WHEN_DENIED
        .iter()
        .copied()
        .filter(|n| !allowed.contains(n))
        .collect();
    if !enosys.is_empty() {
        rules.push(rule(
            &enosys,
            Act::ScmpActErrno,
            Some(libc::ENOSYS as u32),
            vec![],
        ));
    }
    for &p in PERSONALITIES {
        rules.push(rule(
            &["personality"],
            Act::ScmpActAllow,
            None,
            vec![arg(0, Op::ScmpCmpEq, p)],
        ));
    }
    if !has("CAP_SYS_ADMIN") {
        rules.extend(namespace_free_rules());
    }
    if !has("CAP_AUDIT_WRITE") {
        rules.extend(socket_rules());
    }
    let mut profile = LinuxSeccomp::default();
    profile
        .set_default_action(Act::ScmpActErrno)
        .set_default_errno_ret(Some(libc::EPERM as u32))
        .set_architectures(Some(architectures()))
        .set_syscalls(Some(rules));
    profile
}

/// "cap_sys_admin" and "SYS_ADMIN" both mean "CAP_SYS_ADMIN".
fn normalize(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// Names allowed unconditionally for this capability set.
fn allowed_names(has: &dyn Fn(&str) -> bool) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = ALLOWED.iter().chain(arch_specific()).copied().collect();
    for (caps, calls) in GATED {
        if caps.iter().any(|c| has(c)) {
            names.extend(calls.iter().copied());
        }
    }
    if has("CAP_AUDIT_WRITE") {
        names.push("socket");
    }
    names.sort_unstable();
    names.dedup();
    names
}

/// Without CAP_SYS_ADMIN: clone and unshare only without namespace flags.
fn namespace_free_rules() -> Vec<LinuxSyscall> {
    // s390 passes clone's flags second.
    let clone_flags_arg = if cfg!(target_arch = "s390x") { 1 } else { 0 };
    let none_of = |index, mask| masked_arg(index, mask, 0);
    vec![
        rule(
            &["clone"],
            Act::ScmpActAllow,
            None,
            vec![none_of(clone_flags_arg, CLONE_NAMESPACES)],
        ),
        rule(
            &["unshare"],
            Act::ScmpActAllow,
            None,
            vec![none_of(0, CLONE_NAMESPACES | CLONE_NEWTIME)],
        ),
    ]
}

/// Without CAP_AUDIT_WRITE: every socket but the kernel audit one, which
/// fails with EINVAL so audit-aware programs (sudo, login) carry on as if
/// the kernel had no audit support, as under podman.
fn socket_rules() -> Vec<LinuxSyscall> {
    let netlink = libc::AF_NETLINK as u64;
    let audit = libc::NETLINK_AUDIT as u64;
    vec![
        rule(
            &["socket"],
            Act::ScmpActAllow,
            None,
            vec![arg(0, Op::ScmpCmpNe, netlink)],
        ),
        rule(
            &["socket"],
            Act::ScmpActAllow,
            None,
            vec![arg(0, Op::ScmpCmpEq, netlink), arg(2, Op::ScmpCmpNe, audit)],
        ),
        rule(
            &["socket"],
            Act::ScmpActErrno,
            Some(libc::EINVAL as u32),
            vec![arg(0, Op::ScmpCmpEq, netlink), arg(2, Op::ScmpCmpEq, audit)],
        ),
    ]
}

/// One syscall rule of a profile (also used by the tests).
pub(super) fn rule(
    names: &[&str],
    action: Act,
    errno_ret: Option<u32>,
    args: Vec<LinuxSeccompArg>,
) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names.iter().map(|n| n.to_string()).collect())
        .set_action(action)
        .set_errno_ret(errno_ret)
        .set_args((!args.is_empty()).then_some(args));
    r
}

fn arg(index: usize, op: Op, value: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op)
        .build()
        .expect("every field of a seccomp argument has a default")
}

/// `(argument & mask) == value`.
fn masked_arg(index: usize, mask: u64, value: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .value(mask)
        .value_two(value)
        .op(Op::ScmpCmpMaskedEq)
        .build()
        .expect("every field of a seccomp argument has a default")
}
