//! The kiln binary: parse arguments, dispatch, map errors to exit codes.

use clap::Parser;

fn main() {
    let cli = kiln::cli::Cli::parse();
    let code = match kiln::cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln: {e:#}");
            kiln::cmd::EXIT_FAILURE
        }
    };
    std::process::exit(code);
}
