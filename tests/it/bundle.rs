//! OCI bundles for the runtime tests: a busybox rootfs and a config.json from
//! `kiln spec`, edited as JSON; and a kiln with its own state root.

#![allow(dead_code)]

use crate::common::{Env, run};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Bundle {
    pub env: Env,
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    /// A bundle whose process runs `sh -c script`.
    pub fn new(script: &str) -> Self {
        let env = Env::new();
        let dir = env.path("bundle");
        std::fs::create_dir_all(&dir).unwrap();
        let rootfs = env.busybox_rootfs();
        std::fs::rename(&rootfs, dir.join("rootfs")).unwrap();
        run(Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["spec", "--bundle"])
            .arg(&dir));
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["sh", "-c", script]);
        Self { env, dir, config }
    }

    pub fn state_root(&self) -> PathBuf {
        self.env.path("state")
    }

    /// Writes config.json as it stands.
    pub fn save(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// `kiln --root <state> ARGS…`
    pub fn kiln(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.arg("--root").arg(self.state_root()).args(args);
        c
    }

    /// Saves the config, runs it in the foreground; returns the output.
    pub fn run(&self, id: &str) -> Output {
        self.save();
        self.kiln(&["run", "--bundle", self.dir.to_str().unwrap(), id])
            .output()
            .unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn run_ok(&self, id: &str) -> String {
        let out = self.run(id);
        assert!(
            out.status.success(),
            "run failed ({:?}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a verb to completion. stdout and stderr go through files, not
    /// pipes: a container that `create` or `run -d` leaves behind inherits
    /// them, and a pipe would not reach end-of-file while it lives.
    pub fn out(&self, args: &[&str]) -> Output {
        crate::common::output_via_files(&self.env, &mut self.kiln(args))
    }

    /// Runs a verb and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.out(args);
        assert!(
            out.status.success(),
            "kiln {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        let state: Value = serde_json::from_str(&self.ok(&["state", id])).unwrap();
        state["status"].as_str().unwrap().to_string()
    }

    /// The host paths no container mount may remain on.
    pub fn assert_clean(&self) {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let base = self.env.tmp.path().to_string_lossy().into_owned();
        assert!(!mounts.contains(&base), "mounts left behind under {base}");
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // Leave nothing running, whatever the test did.
        if let Ok(rd) = std::fs::read_dir(self.state_root()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.out(&["delete", "--force", &id]);
            }
        }
    }
}
