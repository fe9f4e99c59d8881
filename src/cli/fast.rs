//! Parsing the command line of the verbs that start and drive containers
//! without clap.
//!
//! Building clap's command for `run` (thirty flags and the global ones)
//! and matching argv against it costs ~0.2 ms in a fresh process, 0.05 ms
//! warm: paid on every `kiln run`, `create`, `start`, `state`, `kill`,
//! `delete` and `exec` that podman, containerd or a supervisor issue, and
//! over a twentieth of a whole `kiln run --bundle`. This reads the plain
//! forms of those verbs' arguments straight into the same `Cli` the clap
//! definitions describe. Anything else — another verb, `--help`,
//! `--version`, bundled short flags, a repeated flag, a value that does not
//! parse, any usage error — returns `None` and goes through clap, which then
//! gives its usual answer. The tests check, argument by argument from the
//! clap definitions, that both agree.

use super::{Cli, Command, Global, run, runtime};
use std::ffi::OsString;
use std::path::PathBuf;

/// Parses `args` (argv, program name first) into a `Cli`, exiting on errors
/// as `Cli::parse_from` does.
pub fn parse(args: Vec<OsString>) -> Cli {
    use clap::Parser;
    match quick(&args) {
        Some(cli) => cli,
        None => Cli::parse_from(args),
    }
}

/// The clap-free parse; `None` wherever clap is needed.
pub fn quick(args: &[OsString]) -> Option<Cli> {
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map(|a| a.to_str())
        .collect::<Option<_>>()?;
    let mut g = GlobalFlags::default();
    let mut verb: Option<Verb> = None;
    let mut i = 0;
    let mut escaped = false;
    while let Some(&w) = words.get(i) {
        i += 1;
        let positional = escaped || w == "-" || !w.starts_with('-');
        if positional {
            if escaped && w == "--" {
                return None;
            }
            match verb.as_mut() {
                None => verb = Some(Verb::named(w)?),
                Some(v) => {
                    v.positional(w)?;
                    // The command's own arguments, flags or not, are its own.
                    escaped |= v.in_command();
                }
            }
            continue;
        }
        if w == "--" {
            // After the command has begun, clap keeps a `--`: leave it to clap.
            if verb.is_none() || verb.as_ref().is_some_and(Verb::in_command) {
                return None;
            }
            escaped = true;
            continue;
        }
        let (name, inline) = match w.strip_prefix("--") {
            Some(long) => match long.split_once('=') {
                Some((n, v)) => (Name::Long(n), Some(v)),
                None => (Name::Long(long), None),
            },
            // One short flag alone; `-dt` and `-bDIR` go to clap.
            None if w.len() == 2 => (Name::Short(w.as_bytes()[1] as char), None),
            None => return None,
        };
        let mut value = || -> Option<String> {
            if let Some(v) = inline {
                return (!v.is_empty()).then(|| v.to_string());
            }
            let v = *words.get(i)?;
            // clap takes a word starting with '-' for a flag, not a value;
            // an empty value is clap's to judge.
            if v.is_empty() || (v.starts_with('-') && v != "-") {
                return None;
            }
            i += 1;
            Some(v.to_string())
        };
        if let Name::Long(n) = name
            && g.knows(n)
        {
            g.set(n, inline, &mut value)?;
            continue;
        }
        let takes_no_value = verb.as_mut()?.flag(name, &mut value)?;
        if takes_no_value && inline.is_some() {
            return None;
        }
    }
    Some(Cli {
        global: g.finish()?,
        command: verb?.finish()?,
    })
}

#[derive(Clone, Copy)]
enum Name<'a> {
    Long(&'a str),
    Short(char),
}

impl Name<'_> {
    fn is(&self, long: &str, short: Option<char>) -> bool {
        match *self {
            Name::Long(n) => n == long,
            Name::Short(c) => Some(c) == short,
        }
    }
}

/// Sets a single-valued field once; a repeat is clap's to refuse.
fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

fn once_true(slot: &mut bool) -> Option<()> {
    if *slot {
        return None;
    }
    *slot = true;
    Some(())
}

#[derive(Default)]
struct GlobalFlags {
    store: Option<PathBuf>,
    root: Option<PathBuf>,
    log: Option<PathBuf>,
    log_format: Option<String>,
    systemd_cgroup: bool,
    debug: bool,
    criu: Option<String>,
    rootless: Option<String>,
}

impl GlobalFlags {
    fn knows(&self, long: &str) -> bool {
        [
            "store",
            "root",
            "log",
            "log-format",
            "systemd-cgroup",
            "debug",
            "criu",
            "rootless",
        ]
        .contains(&long)
    }

    fn set(
        &mut self,
        long: &str,
        inline: Option<&str>,
        value: &mut dyn FnMut() -> Option<String>,
    ) -> Option<()> {
        let path = |v: String| (!v.is_empty()).then(|| PathBuf::from(v));
        match long {
            "store" => once(&mut self.store, path(value()?)?),
            "root" => once(&mut self.root, path(value()?)?),
            "log" => once(&mut self.log, path(value()?)?),
            "log-format" => once(&mut self.log_format, value()?),
            "criu" => once(&mut self.criu, value()?),
            // `--rootless` alone means true; a value needs `=`.
            "rootless" if inline != Some("") => {
                once(&mut self.rootless, inline.unwrap_or("true").to_string())
            }
            "systemd-cgroup" if inline.is_none() => once_true(&mut self.systemd_cgroup),
            "debug" if inline.is_none() => once_true(&mut self.debug),
            _ => None,
        }
    }

    fn finish(self) -> Option<Global> {
        let store = match self.store {
            Some(s) => Some(s),
            None => match std::env::var_os("KILN_STORE") {
                // An empty value is clap's to refuse.
                Some(v) if v.is_empty() => return None,
                v => v.map(PathBuf::from),
            },
        };
        Some(Global {
            store,
            root: self.root,
            log: self.log,
            log_format: self.log_format.unwrap_or_else(|| "text".into()),
            systemd_cgroup: self.systemd_cgroup,
            debug: self.debug,
            criu: self.criu,
            rootless: self.rootless,
        })
    }
}

/// The verb's arguments as they are read.
enum Verb {
    Run(Box<RunFlags>),
    Create(CreateFlags),
    Start(Option<String>),
    State(Option<String>),
    Kill(KillFlags),
    Delete(bool, Option<String>),
    Exec(Box<ExecFlags>),
}

impl Verb {
    fn named(w: &str) -> Option<Verb> {
        Some(match w {
            "run" => Verb::Run(Box::default()),
            "create" => Verb::Create(CreateFlags::default()),
            "start" => Verb::Start(None),
            "state" => Verb::State(None),
            "kill" => Verb::Kill(KillFlags::default()),
            "delete" => Verb::Delete(false, None),
            "exec" => Verb::Exec(Box::default()),
            _ => return None,
        })
    }

    /// Whether the trailing command has begun (`run` and `exec`).
    fn in_command(&self) -> bool {
        match self {
            Verb::Run(r) => !r.command.is_empty(),
            Verb::Exec(e) => !e.command.is_empty(),
            _ => false,
        }
    }

    fn positional(&mut self, w: &str) -> Option<()> {
        let w = w.to_string();
        match self {
            Verb::Run(r) if r.target.is_some() => r.command.push(w),
            Verb::Run(r) => r.target = Some(w),
            Verb::Exec(e) if e.id.is_some() => e.command.push(w),
            Verb::Exec(e) => e.id = Some(w),
            Verb::Create(c) => once(&mut c.id, w)?,
            Verb::Start(id) | Verb::State(id) | Verb::Delete(_, id) => once(id, w)?,
            Verb::Kill(k) if k.id.is_some() => once(&mut k.signal, w)?,
            Verb::Kill(k) => k.id = Some(w),
        }
        Some(())
    }

    /// Reads one flag; returns whether it takes no value.
    fn flag(&mut self, name: Name<'_>, value: &mut dyn FnMut() -> Option<String>) -> Option<bool> {
        match self {
            Verb::Run(r) => r.flag(name, value),
            Verb::Create(c) => c.flag(name, value),
            Verb::Exec(e) => e.flag(name, value),
            Verb::Kill(k) if name.is("all", Some('a')) => once_true(&mut k.all).map(|()| true),
            Verb::Delete(force, _) if name.is("force", Some('f')) => {
                once_true(force).map(|()| true)
            }
            _ => None,
        }
    }

    fn finish(self) -> Option<Command> {
        Some(match self {
            Verb::Run(r) => Command::Run(r.finish()?),
            Verb::Create(c) => Command::Create(c.finish()?),
            Verb::Start(id) => Command::Start(runtime::IdArgs { id: id? }),
            Verb::State(id) => Command::State(runtime::IdArgs { id: id? }),
            Verb::Kill(k) => Command::Kill(runtime::KillArgs {
                all: k.all,
                id: k.id?,
                signal: k.signal.unwrap_or_else(|| "SIGTERM".into()),
            }),
            Verb::Delete(force, id) => Command::Delete(runtime::DeleteArgs { force, id: id? }),
            Verb::Exec(e) => Command::Exec(e.finish()?),
        })
    }
}

#[derive(Default)]
struct KillFlags {
    all: bool,
    id: Option<String>,
    signal: Option<String>,
}

/// Reads a flag into `$slot`: `$kind` is `bool` (no value), `opt` (one
/// value, parsed with `FromStr`) or `vec` (repeatable).
macro_rules! flags {
    ($name:expr, $value:expr, { $($long:literal $(| $short:literal)? => $kind:ident $slot:expr),* $(,)? }) => {{
        $(
            if $name.is($long, flags!(@short $($short)?)) {
                return flags!(@read $kind, $slot, $value);
            }
        )*
        None
    }};
    (@short) => { None };
    (@short $c:literal) => { Some($c) };
    (@read bool, $slot:expr, $value:expr) => { once_true(&mut $slot).map(|()| true) };
    (@read opt, $slot:expr, $value:expr) => {
        once(&mut $slot, $value()?.parse().ok()?).map(|()| false)
    };
    (@read vec, $slot:expr, $value:expr) => {{
        $slot.push($value()?.parse().ok()?);
        Some(false)
    }};
}

#[derive(Default)]
struct CreateFlags {
    bundle: Option<PathBuf>,
    console_socket: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    no_pivot: bool,
    no_new_keyring: bool,
    preserve_fds: Option<i32>,
    pidfd_socket: Option<PathBuf>,
    id: Option<String>,
}

impl CreateFlags {
    fn flag(&mut self, n: Name<'_>, v: &mut dyn FnMut() -> Option<String>) -> Option<bool> {
        flags!(n, v, {
            "bundle" | 'b' => opt self.bundle,
            "console-socket" => opt self.console_socket,
            "pid-file" => opt self.pid_file,
            "no-pivot" => bool self.no_pivot,
            "no-new-keyring" => bool self.no_new_keyring,
            "preserve-fds" => opt self.preserve_fds,
            "pidfd-socket" => opt self.pidfd_socket,
        })
    }

    fn finish(self) -> Option<runtime::CreateArgs> {
        Some(runtime::CreateArgs {
            bundle: self.bundle.unwrap_or_else(|| ".".into()),
            console_socket: self.console_socket,
            pid_file: self.pid_file,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds.unwrap_or(0),
            pidfd_socket: self.pidfd_socket,
            id: self.id?,
        })
    }
}

#[derive(Default)]
struct RunFlags {
    bundle: Option<PathBuf>,
    console_socket: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    no_pivot: bool,
    no_new_keyring: bool,
    no_subreaper: bool,
    keep: bool,
    preserve_fds: Option<i32>,
    detach: bool,
    process: Option<String>,
    name: Option<String>,
    env: Vec<String>,
    env_file: Vec<PathBuf>,
    volume: Vec<String>,
    memory: Option<String>,
    pids: Option<i64>,
    cpus: Option<f64>,
    read_only: bool,
    net: Option<String>,
    user: Option<String>,
    tty: bool,
    rm: bool,
    cgroup_parent: Option<String>,
    no_init: bool,
    target: Option<String>,
    command: Vec<String>,
}

impl RunFlags {
    fn flag(&mut self, n: Name<'_>, v: &mut dyn FnMut() -> Option<String>) -> Option<bool> {
        flags!(n, v, {
            "bundle" | 'b' => opt self.bundle,
            "console-socket" => opt self.console_socket,
            "pid-file" => opt self.pid_file,
            "no-pivot" => bool self.no_pivot,
            "no-new-keyring" => bool self.no_new_keyring,
            "no-subreaper" => bool self.no_subreaper,
            "keep" => bool self.keep,
            "preserve-fds" => opt self.preserve_fds,
            "detach" | 'd' => bool self.detach,
            "process" => opt self.process,
            "name" => opt self.name,
            "env" | 'e' => vec self.env,
            "env-file" => vec self.env_file,
            "volume" | 'v' => vec self.volume,
            "memory" => opt self.memory,
            "pids" => opt self.pids,
            "cpus" => opt self.cpus,
            "read-only" => bool self.read_only,
            "net" => opt self.net,
            "user" | 'u' => opt self.user,
            "tty" | 't' => bool self.tty,
            "rm" => bool self.rm,
            "cgroup-parent" => opt self.cgroup_parent,
            "no-init" => bool self.no_init,
        })
    }

    fn finish(self) -> Option<run::RunArgs> {
        Some(run::RunArgs {
            bundle: self.bundle,
            console_socket: self.console_socket,
            pid_file: self.pid_file,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            no_subreaper: self.no_subreaper,
            keep: self.keep,
            preserve_fds: self.preserve_fds.unwrap_or(0),
            detach: self.detach,
            process: self.process,
            name: self.name,
            env: self.env,
            env_file: self.env_file,
            volume: self.volume,
            memory: self.memory,
            pids: self.pids,
            cpus: self.cpus,
            read_only: self.read_only,
            net: self.net.unwrap_or_else(|| "none".into()),
            user: self.user,
            tty: self.tty,
            rm: self.rm,
            cgroup_parent: self.cgroup_parent,
            no_init: self.no_init,
            target: self.target?,
            command: self.command,
        })
    }
}

#[derive(Default)]
struct ExecFlags {
    console_socket: Option<PathBuf>,
    cwd: Option<PathBuf>,
    env: Vec<String>,
    tty: bool,
    user: Option<String>,
    additional_gids: Vec<u32>,
    process: Option<PathBuf>,
    detach: bool,
    pid_file: Option<PathBuf>,
    no_new_privs: bool,
    cap: Vec<String>,
    preserve_fds: Option<i32>,
    pidfd_socket: Option<PathBuf>,
    ignore_paused: bool,
    cgroup: Option<String>,
    process_label: Option<String>,
    apparmor: Option<String>,
    id: Option<String>,
    command: Vec<String>,
}

impl ExecFlags {
    fn flag(&mut self, n: Name<'_>, v: &mut dyn FnMut() -> Option<String>) -> Option<bool> {
        flags!(n, v, {
            "console-socket" => opt self.console_socket,
            "cwd" => opt self.cwd,
            "env" | 'e' => vec self.env,
            "tty" | 't' => bool self.tty,
            "user" | 'u' => opt self.user,
            "additional-gids" | 'g' => vec self.additional_gids,
            "process" | 'p' => opt self.process,
            "detach" | 'd' => bool self.detach,
            "pid-file" => opt self.pid_file,
            "no-new-privs" => bool self.no_new_privs,
            "cap" | 'c' => vec self.cap,
            "preserve-fds" => opt self.preserve_fds,
            "pidfd-socket" => opt self.pidfd_socket,
            "ignore-paused" => bool self.ignore_paused,
            "cgroup" => opt self.cgroup,
            "process-label" => opt self.process_label,
            "apparmor" => opt self.apparmor,
        })
    }

    fn finish(self) -> Option<runtime::ExecArgs> {
        Some(runtime::ExecArgs {
            console_socket: self.console_socket,
            cwd: self.cwd,
            env: self.env,
            tty: self.tty,
            user: self.user,
            additional_gids: self.additional_gids,
            process: self.process,
            detach: self.detach,
            pid_file: self.pid_file,
            no_new_privs: self.no_new_privs,
            cap: self.cap,
            preserve_fds: self.preserve_fds.unwrap_or(0),
            pidfd_socket: self.pidfd_socket,
            ignore_paused: self.ignore_paused,
            cgroup: self.cgroup,
            process_label: self.process_label,
            apparmor: self.apparmor,
            id: self.id?,
            command: self.command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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

    /// A sample value clap accepts for argument `id`.
    fn sample(id: &str) -> &'static str {
        match id {
            "preserve_fds" => "3",
            "pids" => "100",
            "cpus" => "0.5",
            "additional_gids" => "7",
            _ => "v1",
        }
    }

    /// Every flag clap defines for the quick verbs (and every global one),
    /// in each of its forms, before and after the verb: the quick parse
    /// gives what clap gives, and leaves a repeated single flag to clap.
    #[test]
    fn every_flag_of_the_quick_verbs_parses_as_clap_parses_it() {
        use clap::{ArgAction, CommandFactory};
        let mut cli = Cli::command();
        cli.build();
        let globals: Vec<clap::Arg> = cli.get_arguments().cloned().collect();
        for (verb, positionals) in [
            ("run", &["img"][..]),
            ("run", &["img", "sh", "-c", "x"][..]),
            ("create", &["c1"][..]),
            ("start", &["c1"][..]),
            ("state", &["c1"][..]),
            ("kill", &["c1", "KILL"][..]),
            ("delete", &["c1"][..]),
            ("exec", &["c1", "ls", "-l"][..]),
        ] {
            let sub = cli.find_subcommand(verb).unwrap();
            let mut checked = 0;
            for arg in sub.get_arguments().chain(&globals) {
                let id = arg.get_id().as_str();
                if arg.is_positional() || matches!(id, "help" | "version") {
                    continue;
                }
                let long = arg.get_long().unwrap();
                let takes_value = matches!(arg.get_action(), ArgAction::Set | ArgAction::Append);
                let v = sample(id);
                let mut forms: Vec<Vec<String>> = Vec::new();
                if !takes_value {
                    forms.push(vec![format!("--{long}")]);
                } else if arg.is_require_equals_set() {
                    forms.push(vec![format!("--{long}")]);
                    forms.push(vec![format!("--{long}=auto")]);
                } else {
                    forms.push(vec![format!("--{long}"), v.into()]);
                    forms.push(vec![format!("--{long}={v}")]);
                }
                if let Some(c) = arg.get_short() {
                    let mut f = vec![format!("-{c}")];
                    f.extend(takes_value.then(|| v.to_string()));
                    forms.push(f);
                }
                for form in forms {
                    for before in [false, true] {
                        let mut line = vec!["kiln".to_string()];
                        if before {
                            line.extend(form.clone());
                        }
                        line.push(verb.into());
                        if !before {
                            line.extend(form.clone());
                        }
                        line.extend(positionals.iter().map(|p| p.to_string()));
                        let args: Vec<OsString> = line.iter().map(OsString::from).collect();
                        let Ok(whole) = Cli::try_parse_from(&args) else {
                            // A verb flag before the verb: clap refuses, and so must we.
                            assert!(quick(&args).is_none(), "{line:?}");
                            continue;
                        };
                        let fast =
                            quick(&args).unwrap_or_else(|| panic!("no quick parse: {line:?}"));
                        assert_eq!(format!("{fast:?}"), format!("{whole:?}"), "{line:?}");
                        checked += 1;
                    }
                }
                if matches!(arg.get_action(), ArgAction::Set) && !arg.is_require_equals_set() {
                    let twice: Vec<OsString> = [
                        "kiln",
                        verb,
                        &format!("--{long}={v}"),
                        &format!("--{long}={v}"),
                    ]
                    .iter()
                    .chain(positionals)
                    .map(OsString::from)
                    .collect();
                    assert!(Cli::try_parse_from(&twice).is_err(), "{twice:?}");
                    assert!(quick(&twice).is_none(), "{twice:?}");
                }
            }
            assert!(checked > 0, "{verb}");
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
            "kiln run -dt img",
            "kiln run --name= img",
            "kiln run --detach=true img",
            "kiln run --pids many img",
            "kiln run img sh -- x",
            "kiln start c1 c2",
            "kiln kill c1 TERM extra",
            "kiln exec -e -x c1 ls",
        ] {
            assert!(quick(&argv(line)).is_none(), "{line}");
        }
    }
}
