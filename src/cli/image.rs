//! `kiln image …` and `kiln gc`.

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// Import the images of an OCI archive (app.img) or OCI layout directory
    Import(ImportArgs),
    /// List images
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show an image's manifest, config and layers as JSON
    Inspect(InspectArgs),
    /// Write an image as an OCI archive (readable by skopeo and podman load)
    Export(ExportArgs),
    /// Remove image names (their blobs go at the next `kiln gc`)
    Rm(RmArgs),
    /// Render an image's root filesystem into a directory
    Unpack(UnpackArgs),
    /// Make a single-layer image from a directory tree (reproducibly)
    FromDir(FromDirArgs),
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// An OCI archive (tar, optionally gzipped) or OCI layout directory
    pub source: PathBuf,
    /// Name for the image [default: from the archive, else its file name]
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Image name or manifest digest (a unique prefix will do)
    pub image: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Image name or manifest digest
    pub image: String,
    /// Archive to write (`-` for stdout)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Image names or manifest digests
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UnpackArgs {
    /// Image name or manifest digest
    pub image: String,
    /// Directory to render into (must be missing or empty)
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct FromDirArgs {
    /// Directory to pack as the image's only layer
    pub dir: PathBuf,
    /// Name of the new image
    #[arg(long)]
    pub name: String,
    /// Default command (repeat for each argument)
    #[arg(long = "cmd", value_name = "ARG")]
    pub cmd: Vec<String>,
    /// Entrypoint (repeat for each argument)
    #[arg(long = "entrypoint", value_name = "ARG")]
    pub entrypoint: Vec<String>,
    /// Environment variable K=V (repeatable)
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory
    #[arg(long)]
    pub workdir: Option<String>,
    /// User to run as
    #[arg(long)]
    pub user: Option<String>,
    /// Label K=V (repeatable)
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Keep file owners instead of writing everything as 0:0
    #[arg(long)]
    pub keep_ownership: bool,
    /// gzip level (1 fastest .. 9 smallest)
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub level: u32,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}
