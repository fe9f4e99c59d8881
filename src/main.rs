//! The kiln binary: parse arguments, dispatch, map errors to exit codes.

use clap::Parser;

fn main() {
    let cli = kiln::cli::Cli::parse();
    let code = match kiln::cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kiln: {e:#}");
            e.downcast_ref::<kiln::runtime::Error>()
                .map_or(kiln::cmd::EXIT_FAILURE, |r| r.exit_code())
        }
    };
    std::process::exit(code);
}
