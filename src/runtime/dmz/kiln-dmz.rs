//! kiln-dmz: the last step between kiln and a container's process.
//!
//! A freestanding program (no std, no libc, about 1 KiB), compiled by
//! build.rs and embedded in kiln, which runs it from a sealed memfd
//! (`runtime::dmz`). Its whole job:
//!
//! ```text
//! kiln-dmz PATH ARGV0 ARGS...   ->   execve(PATH, [ARGV0, ARGS...], envp)
//! ```
//!
//! kiln sets a container up in a clone of itself, so until the container's
//! process starts, `/proc/self/exe` is the host's kiln binary. Handing over
//! through this program means that the last exe before the container's own
//! is a sealed copy of this program: a container whose process is
//! `/proc/self/exe` (or a `#!/proc/self/exe` script) runs kiln-dmz, which
//! cannot be written, instead of the host's kiln (CVE-2019-5736). runc
//! shipped the same idea as runc-dmz.
//!
//! On failure it writes `kiln: exec PATH: REASON` to stderr and exits 127
//! (not found) or 126 (cannot execute), the codes kiln uses.

#![no_std]
#![no_main]

use core::arch::naked_asm;

#[cfg(target_arch = "x86_64")]
mod sys {
    pub const WRITE: usize = 1;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;

    /// # Safety
    /// A raw system call: the caller passes arguments valid for `n`.
    pub unsafe fn call3(n: usize, a: usize, b: usize, c: usize) -> isize {
        let ret: isize;
        // SAFETY: the x86_64 Linux system call convention; the kernel
        // clobbers rcx and r11 and nothing else.
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") n as isize => ret,
                in("rdi") a, in("rsi") b, in("rdx") c,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }
}

#[cfg(target_arch = "aarch64")]
mod sys {
    pub const WRITE: usize = 64;
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;

    /// # Safety
    /// A raw system call: the caller passes arguments valid for `n`.
    pub unsafe fn call3(n: usize, a: usize, b: usize, c: usize) -> isize {
        let ret: isize;
        // SAFETY: the aarch64 Linux system call convention (x8 = number,
        // x0..x2 = arguments, x0 = result).
        unsafe {
            core::arch::asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret,
                in("x1") b, in("x2") c, options(nostack));
        }
        ret
    }
}

/// The entry point: the kernel leaves argc, argv and envp on the stack.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn _start() -> ! {
    naked_asm!("mov rdi, rsp", "and rsp, -16", "call {main}", main = sym main)
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn _start() -> ! {
    naked_asm!("mov x0, sp", "bl {main}", main = sym main)
}

extern "C" fn main(sp: *const usize) -> ! {
    // SAFETY: `sp` is the initial stack the kernel built: argc, then argc
    // argv pointers and a NULL, then the environment pointers and a NULL.
    let (argc, argv, envp) = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        (argc, argv, argv.add(argc + 1))
    };
    if argc < 2 {
        say(&[b"kiln-dmz: usage: kiln-dmz PATH ARGV0 [ARG...]\n"]);
        exit(127);
    }
    // SAFETY: argv[0] is a NUL-terminated path and argv[1..] a
    // NULL-terminated array, both from the kernel.
    let (path, err) = unsafe {
        let path = *argv;
        let err = sys::call3(sys::EXECVE, path as usize, argv.add(1) as usize, envp as usize);
        (path, -err as usize)
    };
    fail(path, err)
}

/// Reports a failed exec of `path` with errno `err`, and exits.
fn fail(path: *const u8, err: usize) -> ! {
    let reason: &[u8] = match err {
        2 => b"no such file or directory",
        7 => b"argument list too long",
        8 => b"exec format error",
        12 => b"out of memory",
        13 => b"permission denied",
        26 => b"text file busy",
        40 => b"too many levels of symbolic links",
        _ => b"cannot execute",
    };
    // SAFETY: `path` is NUL-terminated (from the kernel, or a literal).
    let path = unsafe { core::slice::from_raw_parts(path, strlen(path)) };
    say(&[b"kiln: exec ", path, b": ", reason, b"\n"]);
    exit(if err == 2 { 127 } else { 126 })
}

/// Writes `parts` to stderr.
fn say(parts: &[&[u8]]) {
    for part in parts {
        // SAFETY: write(2) from a live slice.
        unsafe { sys::call3(sys::WRITE, 2, part.as_ptr() as usize, part.len()) };
    }
}

fn exit(code: usize) -> ! {
    // SAFETY: exit_group takes a plain integer and does not return.
    unsafe { sys::call3(sys::EXIT_GROUP, code, 0, 0) };
    loop {}
}

/// # Safety
/// `s` points to a NUL-terminated string.
unsafe fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: stays within the string, up to its NUL (the caller's promise).
    // A volatile read, or LLVM turns the loop into a call to libc's strlen,
    // which this program does not have.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
