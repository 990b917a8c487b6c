//! [`ReplayArgs`]: the flags of `replay`.

use std::path::PathBuf;

use clap::Args;

use super::CoreArgs;
use crate::replay::ReplayOptions;

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
    /// Partitions, each with its own state, as an input topic's: a line goes
    /// to murmur2(seller_id) mod N, as Kafka's default partitioner places a
    /// keyed event (a line without a readable seller_id goes to 0). A
    /// decision's source is its partition and its line number (0-based) as
    /// the offset.
    #[arg(long, env = "COUPON_STREAM_REPLAY_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: u32,
    /// Threads deciding the partitions, at most one per partition; the
    /// output is the same whatever the count [default: min(partitions, cores)].
    #[arg(long, env = "COUPON_STREAM_REPLAY_THREADS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Also print where the time went (read, split, decide, merge, write) on stderr.
    #[arg(long)]
    pub stage_times: bool,
    #[command(flatten)]
    pub core: CoreArgs,
}

impl From<&ReplayArgs> for ReplayOptions {
    fn from(args: &ReplayArgs) -> ReplayOptions {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let partitions = args.partitions as usize;
        ReplayOptions {
            partitions: args.partitions,
            threads: args
                .threads
                .map_or(cores.min(partitions), |t| (t as usize).min(partitions)),
        }
    }
}
