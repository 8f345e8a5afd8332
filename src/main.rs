//! `broker --config config.toml`: runs the broker until SIGTERM or SIGINT, then drains
//! in-flight requests, flushes and fsyncs every partition, and exits 0.
//! `broker check --data-dir DIR [--repair]`: verifies a stopped broker's data directory.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use broker::actors::broker::Broker;
use broker::config::Config;
use broker::storage::FileStorage;

#[derive(Debug, Parser)]
#[command(name = "broker", version, about = "A Kafka-compatible message broker")]
struct Cli {
    /// Path of the TOML config file; a missing file means all defaults.
    #[arg(long, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Verify a data directory offline: batch lengths, CRC-32C, offset continuity, index
    /// agreement, metadata records. Exits non-zero when it finds a problem.
    Check {
        #[arg(long)]
        data_dir: PathBuf,
        /// Cut torn tails and rewrite indexes, as recovery would; never drops a valid batch.
        /// A record file (metadata, group, transaction) corrupt before its end, which the
        /// broker refuses to start with, is cut at the corruption.
        #[arg(long)]
        repair: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if let Some(Command::Check { data_dir, repair }) = cli.command {
        return check(&data_dir, repair);
    }
    let config =
        Config::load(&cli.config).with_context(|| format!("loading {}", cli.config.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    // Before any socket or file is opened: the usual soft limit (1,024) is far below what
    // a broker with many clients needs, and the hard limit is what the administrator allows.
    broker::fd_limit::raise_nofile();
    if let Some(addr) = config.metrics_listen {
        broker::metrics::serve(addr)?;
        info!(%addr, "Serving Prometheus metrics.");
    }
    let mut broker = Broker::start(config, Arc::new(FileStorage))
        .await
        .context("starting the broker")?;
    tokio::select! {
        signal = wait_for_signal() => {
            signal?;
            info!("Shutting down on a signal.");
            broker.shutdown().await;
            Ok(())
        }
        actor = broker.failed() => {
            error!(actor, "A core actor stopped; shutting down what is left and exiting with an error.");
            broker.shutdown().await;
            anyhow::bail!("the {actor} actor stopped unexpectedly")
        }
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn check(data_dir: &std::path::Path, repair: bool) -> anyhow::Result<()> {
    let report = broker::check::check(Arc::new(FileStorage), data_dir, repair)
        .with_context(|| format!("reading {}", data_dir.display()))?;
    for problem in &report.problems {
        println!(
            "{}:{}: {}",
            problem.file.display(),
            problem.position,
            problem.what
        );
    }
    for repair in &report.repairs {
        println!("repaired: {repair}");
    }
    println!(
        "checked {} partitions, {} segments, {} batches, {} record files: {} problems",
        report.partitions,
        report.segments,
        report.batches,
        report.records_files,
        report.problems.len()
    );
    if report.problems.is_empty() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
