//! The `coupon-stream` binary: parses flags ([`coupon_stream::cli`]), sets up
//! logging, runs the command through the library, and turns errors into one
//! line on stderr and an exit code (2 for bad flags and unreadable files, 1
//! for failures while running).

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use clap::error::ErrorKind;
use coupon_stream::cli::report::{self, BenchTable, DemoTicker, ProducedSummary, ReplaySummary};
use coupon_stream::cli::{self as args, Cli, Command, LogFormat};
use coupon_stream::kafka::config::KafkaConfig;
use coupon_stream::kafka::service;
use coupon_stream::ops::signals::shutdown_on_signals;
use coupon_stream::replay;
use coupon_stream::tools::{bench::BenchOptions, demo::DemoOptions, loadgen};
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::workload::{Workload, WorkloadConfig};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{} (see --help)", args::one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run(args) => run(&args, false),
        Command::Copy(args) => run(&args, true),
        Command::Replay(args) => replay(&args),
        Command::Loadgen(args) => loadgen(&args),
        Command::Demo(args) => demo(&args),
        Command::Bench(args) => bench(&args),
    };
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {e:#}");
    ExitCode::from(if args::is_usage(e.as_ref()) { 2 } else { 1 })
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `run`, or with `copy_only` the benchmark baseline `copy`.
fn run(args: &args::RunArgs, copy_only: bool) -> anyhow::Result<()> {
    // `copy` decides nothing, so only `run` checks the contract's values.
    let core = (!copy_only)
        .then(|| CoreConfig::try_from(&args.core))
        .transpose()?;
    init_logging(args.log_format, "info");
    let config = KafkaConfig::from(args);
    let shutdown = shutdown_on_signals()?;
    match core {
        Some(core) => service::run(config, core, args.http.metrics_addr, &shutdown)?,
        None => service::copy(&config, args.http.metrics_addr, &shutdown)?,
    }
    Ok(())
}

fn replay(args: &args::ReplayArgs) -> anyhow::Result<()> {
    let config = CoreConfig::try_from(&args.core)?;
    let input = args::open_raw_input(args.input.as_deref())?;
    let output = args::open_raw_output(args.output.as_deref())?;
    let started = Instant::now();
    let report = replay::replay_sharded(config, args.into(), input, output)?;
    let seconds = started.elapsed().as_secs_f64();
    if !args.quiet {
        eprintln!(
            "{}",
            ReplaySummary::new(&report.tally, seconds, report.stats)
        );
    }
    if args.stage_times {
        eprintln!(
            "{}",
            args::StageReport {
                report: &report,
                seconds
            }
        );
    }
    Ok(())
}

fn loadgen(args: &args::LoadgenArgs) -> anyhow::Result<()> {
    let mut workload = Workload::new(WorkloadConfig::from(args));
    let started = Instant::now();
    if let Some(path) = &args.output {
        let mut output = args::open_output(Some(path))?;
        loadgen::write_lines(&mut workload, args.events, &mut output)?;
        if io::stderr().is_terminal() || path.as_os_str() != "-" {
            eprintln!("{}", report::generated(args.events, started.elapsed()));
        }
        return Ok(());
    }
    // The client's warnings (a broker down, a refused connection) show
    // while it retries.
    init_logging(LogFormat::Text, "warn");
    let bar = report::progress_bar(args.events);
    let config = loadgen::producer_config(&args.kafka.brokers, &args.kafka.properties);
    let stop = shutdown_on_signals()?;
    let summary = loadgen::produce(
        &config,
        &args.topic,
        &mut workload,
        args.events,
        args.rate(),
        &stop,
        |n| bar.set_position(n),
    )?;
    bar.finish_and_clear();
    let brokers = &args.kafka.brokers;
    eprintln!("{}", ProducedSummary::new(&summary, &args.topic, brokers));
    Ok(())
}

fn demo(args: &args::DemoArgs) -> anyhow::Result<()> {
    let options = DemoOptions::try_from(args)?;
    // Warnings and errors only: the demo prints its own progress.
    init_logging(LogFormat::Text, "warn");
    let shutdown = shutdown_on_signals()?;
    let mut ticker = DemoTicker::default();
    let report = coupon_stream::tools::demo::run_demo(
        &options,
        &shutdown,
        |tick, progress| println!("{}", ticker.line(tick, progress)),
        |brokers, http| println!("{}", report::demo_started(brokers, http, args.duration)),
    )?;
    println!("\n{report}");
    Ok(())
}

fn bench(args: &args::BenchArgs) -> anyhow::Result<()> {
    let options = BenchOptions::try_from(args)?;
    init_logging(LogFormat::Text, "warn");
    let reports = coupon_stream::tools::bench::run_bench(&options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", BenchTable::new(&options, &reports));
    }
    Ok(())
}
