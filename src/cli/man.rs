//! Man pages for every verb, rendered from the clap definitions.

use clap::CommandFactory;

/// `(file name, roff)` for kiln(1) and one page per verb and subverb.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let cmd = super::Cli::command();
    render(&cmd, "kiln", &mut out);
    out
}

fn render(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let cmd = cmd
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .expect("rendering into memory cannot fail");
    out.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        render(sub, &format!("{name}-{}", sub.get_name()), out);
    }
}
