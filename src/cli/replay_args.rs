//! [`ReplayArgs`]: the flags of `replay`.

use std::path::PathBuf;

use clap::Args;

use super::CoreArgs;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Input file of JSON lines; `-` or absent reads standard input.
    #[arg(long, short, env = "COUPON_STREAM_REPLAY_INPUT")]
    pub input: Option<PathBuf>,
    /// Output file for decisions; `-` or absent writes standard output.
    #[arg(long, short, env = "COUPON_STREAM_REPLAY_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Print no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub core: CoreArgs,
}
