//! The kiln binary: parse arguments, dispatch, map errors to exit codes.

fn main() {
    let cli = kiln::cli::fast::parse(std::env::args_os().collect());
    if prints_data(&cli.command) {
        // Like other Unix tools: a closed pipe ends the output quietly
        // (`kiln image export app -o - | head -c1`). Verbs that change
        // containers keep Rust's default, so a reader going away cannot cut
        // them short halfway.
        // SAFETY: restoring SIGPIPE's default disposition before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
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

/// The verbs whose job is to print data (and that hold no container half-made).
fn prints_data(cmd: &kiln::cli::Command) -> bool {
    use kiln::cli::Command as C;
    matches!(
        cmd,
        C::Image(_)
            | C::Gc(_)
            | C::Completion(_)
            | C::Features
            | C::Spec(_)
            | C::List(_)
            | C::State(_)
            | C::Ps(_)
            | C::Events(_)
    )
}
