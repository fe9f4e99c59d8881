//! The kiln binary: parse arguments, dispatch, map errors to exit codes.

use clap::Parser;

fn main() {
    // Containers must never see a writable kiln binary: re-exec from a sealed
    // copy before spending time on argument parsing that the re-exec repeats.
    let verbs = ["create", "run", "exec"];
    if std::env::args()
        .skip(1)
        .any(|a| verbs.contains(&a.as_str()))
        && let Err(e) = kiln::runtime::exeseal::ensure_sealed()
    {
        eprintln!("kiln: {e}");
        std::process::exit(kiln::cmd::EXIT_FAILURE);
    }
    let cli = kiln::cli::Cli::parse();
    let global = cli.global.clone();
    let code = match kiln::cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = report(&e);
            eprintln!("kiln: {msg}");
            kiln::cmd::log_error(&global, &msg);
            e.downcast_ref::<kiln::runtime::Error>()
                .map_or(kiln::cmd::EXIT_FAILURE, |r| r.exit_code())
        }
    };
    std::process::exit(code);
}

/// The error and its causes on one line, each cause once: most of kiln's
/// errors already name their cause in their own message.
fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}
