//! `broker --config config.toml`: runs the broker until SIGTERM or SIGINT, then drains
//! in-flight requests, flushes and fsyncs every partition, and exits 0.
//! `broker check --data-dir DIR [--repair]`: verifies a stopped broker's data directory.
//! `broker user add --name NAME --mechanism SCRAM-SHA-512 --password-file FILE`: sets a SCRAM
//! user in a stopped broker's metadata (the first administrator); on a cluster voter, in
//! its bootstrap file, which the quorum's first leader commits (`cluster::bootstrap`).

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
    /// SCRAM users of a stopped broker (the data_dir of --config); on a cluster voter, its
    /// SCRAM bootstrap file.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Set a user's SCRAM credential (salted keys; the password is not kept), as
    /// kafka-storage's --add-scram does for the first administrator.
    Add {
        #[arg(long)]
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// A file holding the password (one trailing newline is ignored), so it stays out
        /// of the shell history and the process list.
        #[arg(long)]
        password_file: PathBuf,
        #[arg(long, default_value_t = 8192)]
        iterations: i32,
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
    let config = match cli.command {
        Some(Command::Check { data_dir, repair }) => return check(&data_dir, repair),
        Some(Command::User(UserCommand::Add {
            name,
            mechanism,
            password_file,
            iterations,
        })) => {
            let config = Config::load(&cli.config)
                .with_context(|| format!("loading {}", cli.config.display()))?;
            return add_user(&config, &name, &mechanism, &password_file, iterations);
        }
        None => Config::load(&cli.config)
            .with_context(|| format!("loading {}", cli.config.display()))?,
    };
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

fn add_user(
    config: &Config,
    name: &str,
    mechanism: &str,
    password_file: &std::path::Path,
    iterations: i32,
) -> anyhow::Result<()> {
    use broker::security::scram::ScramMechanism;
    // In a quorum the credentials are Raft records: a voter's bootstrap file holds them
    // until the quorum's first leader commits them.
    let voter = config
        .quorum_voters()
        .iter()
        .any(|v| v.id == config.node_id);
    if config.cluster_mode() && !voter {
        anyhow::bail!(
            "node {} is no voter of controller_quorum_voters: run user add on every voter (before its first start), or use AlterUserScramCredentials",
            config.node_id
        );
    }
    let mechanism = ScramMechanism::from_mechanism_name(mechanism)
        .with_context(|| format!("{mechanism} is not SCRAM-SHA-256 or SCRAM-SHA-512"))?;
    let mut password = std::fs::read(password_file)
        .with_context(|| format!("reading {}", password_file.display()))?;
    if password.last() == Some(&b'\n') {
        password.pop();
    }
    let (storage, dir) = (Arc::new(FileStorage), &config.data_dir);
    let context = || format!("adding {name} under {}", dir.display());
    let record =
        broker::actors::metadata::offline_credential(name, mechanism, &password, iterations)
            .with_context(context)?;
    if config.cluster_mode() {
        broker::cluster::bootstrap::add_user(storage, dir, record).with_context(context)?;
        let path = broker::cluster::bootstrap::bootstrap_path(dir);
        println!(
            "set {mechanism} credential of user {name} in {}: the quorum's first leader commits it; run the same on every voter before its first start",
            path.display()
        );
        if broker::cluster::quorum_dir(dir).join("raft.log").exists() {
            eprintln!(
                "note: this voter has run before; if its cluster's credentials were bootstrapped already, this file is ignored (use AlterUserScramCredentials)"
            );
        }
        return Ok(());
    }
    broker::actors::metadata::add_user_offline(storage, dir, &record).with_context(context)?;
    println!("set {mechanism} credential of user {name}");
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
