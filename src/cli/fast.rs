//! Parsing the command line of the verbs that start and drive containers
//! without building clap's whole command tree.
//!
//! `Cli::parse` builds every verb's flags (and propagates the global ones into
//! each) before it looks at argv: about 0.1 ms, paid on every `kiln run`,
//! `create`, `start`, `exec`, … that podman, containerd or a supervisor issue.
//! Here the tree holds the global flags and the one verb named, built from the
//! same derive definitions, so the result is the same `Cli`. Anything this
//! refuses — another verb, `--help`, `--version`, a usage error — goes through
//! the whole tree, which then prints clap's usual text.

use super::{Cli, Global, run, runtime};
use clap::{Args, FromArgMatches, Parser};
use std::ffi::OsString;

/// Parses `args` (argv, program name first) into a `Cli`, exiting on errors
/// as `Cli::parse_from` does.
pub fn parse(args: Vec<OsString>) -> Cli {
    match quick(&args) {
        Some(cli) => cli,
        None => Cli::parse_from(args),
    }
}

/// The short parse; `None` wherever the whole tree is needed.
pub fn quick(args: &[OsString]) -> Option<Cli> {
    let verb = verb_of(args)?;
    let sub = clap::Command::new(verb.to_string());
    let sub = match verb {
        "run" => run::RunArgs::augment_args(sub),
        "create" => runtime::CreateArgs::augment_args(sub),
        "start" | "state" => runtime::IdArgs::augment_args(sub),
        "kill" => runtime::KillArgs::augment_args(sub),
        "delete" => runtime::DeleteArgs::augment_args(sub),
        "exec" => runtime::ExecArgs::augment_args(sub),
        _ => return None,
    };
    let cmd = Global::augment_args(clap::Command::new("kiln")).subcommand(sub);
    let matches = cmd.try_get_matches_from(args).ok()?;
    Cli::from_arg_matches(&matches).ok()
}

/// The first argument that is neither a flag nor a global flag's value.
fn verb_of(args: &[OsString]) -> Option<&str> {
    const TAKES_VALUE: [&str; 5] = ["--store", "--root", "--log", "--log-format", "--criu"];
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        let a = a.to_str()?;
        if a == "--" {
            return None;
        }
        if TAKES_VALUE.contains(&a) {
            rest.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    /// The short parse gives exactly what the whole tree gives.
    #[test]
    fn the_quick_parse_matches_the_whole_tree() {
        let lines = [
            "kiln --root /r run --bundle /b -d --pid-file /p c1",
            "kiln run --bundle=/b --no-pivot --preserve-fds 2 --console-socket /s c1",
            "kiln run app.img -e A=1 --memory 256m --cpus 0.5 -v /a:/b:ro -- sh -c x",
            "kiln --log /l --log-format json --systemd-cgroup create -b /b --pid-file /p c2",
            "kiln --rootless=true --debug start c2",
            "kiln state c2",
            "kiln --root /r kill --all c2 TERM",
            "kiln delete --force c2",
            "kiln exec -t --console-socket /s --cwd /tmp -e X=1 c2 ls -l",
            "kiln exec --process /p.json -d --pid-file /p c2",
            "kiln --store /s --criu /c run img",
            "kiln run --root /r --log /l --bundle /b c9",
            "kiln delete --root=/r --force c9",
        ];
        for line in lines {
            let quick = quick(&argv(line)).unwrap_or_else(|| panic!("no quick parse: {line}"));
            let whole = Cli::try_parse_from(argv(line)).unwrap();
            assert_eq!(format!("{quick:?}"), format!("{whole:?}"), "{line}");
        }
    }

    /// Other verbs, help, version and usage errors take the whole tree.
    #[test]
    fn the_rest_goes_through_the_whole_tree() {
        for line in [
            "kiln list",
            "kiln image ls",
            "kiln --help",
            "kiln run --help",
            "kiln --version",
            "kiln run --bundle",
            "kiln kill",
            "kiln delete --nope c",
            "kiln -- run",
        ] {
            assert!(quick(&argv(line)).is_none(), "{line}");
        }
    }
}
