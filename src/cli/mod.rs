//! The command line of the `coupon-stream` binary: clap argument structs,
//! one file per command; their conversion into the library's
//! configurations (`From`/`TryFrom` impls, so every flag is validated in one
//! place); and the reports the commands print (`Display` impls). Library
//! types stay free of clap: the value enums here wrap them.

mod bench_args;
mod core_args;
mod demo_args;
mod error;
mod files;
mod http_args;
mod loadgen_args;
mod replay_args;
mod replay_report;
pub mod report;
mod run_args;
mod values;

use clap::{Parser, Subcommand};

pub use bench_args::BenchArgs;
pub use core_args::CoreArgs;
pub use demo_args::DemoArgs;
pub use error::{ArgsError, is_usage};
pub use files::{open_output, open_raw_input, open_raw_output};
pub use http_args::HttpArgs;
pub use loadgen_args::LoadgenArgs;
pub use replay_args::ReplayArgs;
pub use replay_report::StageReport;
pub use run_args::{KafkaClientArgs, RunArgs};
pub use values::{GuaranteeArg, LogFormat, ProfileArg};

/// Decides, from a stream of events, whether coupons may be issued and
/// redeemed, enforcing every quota and validity window.
#[derive(Parser, Debug)]
#[command(name = "coupon-stream", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the processor: consume events from Kafka, produce decisions and dead letters.
    Run(RunArgs),
    /// Decide events offline: one input value per line in, one decision per line out.
    Replay(ReplayArgs),
    /// Generate contract-valid coupon traffic as JSON lines, or produce it to Kafka.
    Loadgen(LoadgenArgs),
    /// Run everything in one process: an embedded broker, the processor and
    /// the load generator, with live throughput and /metrics.
    Demo(DemoArgs),
    /// End-to-end benchmark against a broker: throughput, latency
    /// percentiles, CPU and memory of the processor (and of a plain copy
    /// with --baseline).
    Bench(BenchArgs),
    /// Benchmark baseline: copy the input topic to the output topic with the
    /// processor's client settings and no decisions (used by `bench`).
    #[command(hide = true)]
    Copy(RunArgs),
}

/// Folds clap's message (error, indented details, usage) into one line:
/// the error and its details, without the usage block.
pub fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}
