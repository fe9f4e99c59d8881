//! Verbs whose work has not landed yet: they accept any arguments and refuse
//! clearly (exit 125) rather than pretending to succeed.

/// Not implemented yet in this version of kiln.
#[derive(clap::Args, Debug)]
pub struct Pending {
    /// Arguments (not yet interpreted)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}
