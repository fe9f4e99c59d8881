//! The front door: help, pending verbs, completions, man pages.

use crate::common::Env;

#[test]
fn help_lists_every_verb_group() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    for verb in [
        "image",
        "gc",
        "build",
        "run",
        "up",
        "scale",
        "logs",
        "create",
        "start",
        "state",
        "kill",
        "delete",
        "exec",
        "ps",
        "list",
        "pause",
        "resume",
        "update",
        "spec",
        "features",
        "events",
        "completion",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(verb)),
            "--help lacks {verb}:\n{help}"
        );
    }
}

#[test]
fn verbs_not_yet_built_refuse_with_125() {
    let env = Env::new();
    for verb in ["build", "up", "scale", "logs"] {
        let err = env.fails(&[verb, "x"], 125);
        assert!(err.contains("not implemented"), "{verb}: {err}");
    }
}

#[test]
fn completions_for_each_shell() {
    let env = Env::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef kiln"),
        ("fish", "complete -c kiln"),
    ] {
        let out = env.ok(&["completion", shell]);
        assert!(out.contains(marker), "{shell} completion lacks {marker:?}");
        assert!(out.contains("unpack"), "{shell} completion lacks subverbs");
    }
}

/// The checked-in man pages match the CLI; `KILN_UPDATE_MAN=1` rewrites them.
#[test]
fn man_pages_are_current() {
    let dir = crate::common::repo().join("man");
    let pages = kiln::cli::man::pages();
    if std::env::var_os("KILN_UPDATE_MAN").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in &pages {
            std::fs::write(dir.join(name), body).unwrap();
        }
    }
    let mut expected: Vec<_> = pages.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    let mut present: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(
        present, expected,
        "man/ is stale: run KILN_UPDATE_MAN=1 cargo test man_pages"
    );
    for (name, body) in pages {
        let on_disk = std::fs::read(dir.join(&name)).unwrap();
        assert!(
            on_disk == body,
            "man/{name} is stale: run KILN_UPDATE_MAN=1 cargo test man_pages"
        );
    }
}
