//! Compiles kiln-dmz (src/runtime/dmz/kiln-dmz.rs), the freestanding helper
//! kiln hands each container process over through, into OUT_DIR; kiln embeds
//! the result (runtime::dmz).

use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/runtime/dmz/kiln-dmz.rs";

fn main() {
    println!("cargo::rerun-if-changed={SOURCE}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let bin = out.join("kiln-dmz");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "bin",
            "--target",
            &target,
        ])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args([
            "-C",
            "relocation-model=static",
            "-C",
            "target-feature=+crt-static",
        ])
        // No C runtime, no libc: _start is the program's own.
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args([
            "-C",
            "link-arg=-static",
            "-C",
            "link-arg=-Wl,--build-id=none",
        ])
        .arg("-o")
        .arg(&bin)
        .arg(SOURCE)
        .status()
        .expect("run rustc for kiln-dmz");
    assert!(status.success(), "compiling {SOURCE} failed");
}
