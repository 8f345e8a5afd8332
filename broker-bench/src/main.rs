//! broker-bench: measures any Kafka-compatible broker through librdkafka, the same client
//! for every broker. See README.md for the workloads and what each figure means.

mod cli;
mod client;
mod consume;
mod latency;
mod mixed;
mod payload;
mod plot;
mod produce;
mod progress;
mod report;
mod stats;
mod tail;
mod topic;
mod workers;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Workload};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        // The result was printed and written, but a wait ran out before the end.
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("broker-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the workload, prints and writes the result; true when the run completed.
fn run(cli: &Cli) -> Result<bool> {
    let g = &cli.global;
    if matches!(cli.workload, Workload::Latency(_) | Workload::Mixed(_)) {
        latency::check_message_size(g)?;
    }
    let topic = topic::ensure(
        &client::Connection::new(g),
        g.topic.as_deref(),
        g.topic_spec(),
    )?;
    eprintln!(
        "broker-bench {}: topic {} ({} partitions{})",
        cli.workload.name(),
        topic.name,
        topic.partitions,
        if topic.created { ", created" } else { "" }
    );
    let report = match &cli.workload {
        Workload::Produce(a) => produce::bench(g, &topic, a)?,
        Workload::Consume(a) => consume::bench(g, &topic, a)?,
        Workload::Latency(a) => latency::bench(g, &topic, a)?,
        Workload::Mixed(a) => mixed::bench(g, &topic, a)?,
    };
    print!("{}", report.summary());
    if let Some(path) = &g.json {
        report.write_json(path)?;
    }
    if let Some(path) = &g.svg {
        let title = format!(
            "broker-bench {} — {} ({})",
            report.workload, report.bootstrap, report.options.topic
        );
        plot::draw(path, &title, &report.timeline)?;
    }
    Ok(report.complete)
}
