//! Deterministic simulation of the whole cluster (issue 15, proof 1) on turmoil: three
//! brokers (`Broker::start`, each a voter of the metadata quorum, with its controller,
//! partition leaders and followers, replica fetchers, group coordinator) run as simulated
//! hosts on simulated TCP (`sockets::Network::Simulated`) and a simulated clock, each on
//! its own SimStorage disk that outlives its crashes. Clients written with the
//! kafka-protocol codec (`cluster_sim_client`) create a topic of RF=3 with
//! min.insync.replicas=2, produce to it idempotently with acks=all (retrying retriable
//! errors with the same sequence numbers), consume it and commit offsets for a group.
//!
//! One seed drives every fault: message delay, partitions between brokers (one
//! broker cut off from the other two included), a broker crash with a power cut (unsynced
//! data lost) and its restart, a slow link, and failing fsyncs or writes on one broker's
//! disk (after which it is restarted, as an operator would). After healing, a verifier
//! waits for every broker's Metadata to name the same leaders, each with its full ISR, and
//! reads the logs back; the checker (`cluster_sim_checker`) then wants every acknowledged
//! record at its offset, in order, once; every record a consumer was served still there;
//! committed offsets never below an acknowledged commit; and every replica's log equal to
//! the leader's below the high watermark.
//!
//! CI runs `SIM_SEEDS` seeds (default 600, about 100 s on two quiet cores, so the whole
//! test command stays under 15 minutes; the long run is `SIM_SEEDS=1000` or more) with
//! `SIM_SECONDS` simulated seconds of faults (default 1) in `SIM_WORKERS` child processes
//! (default 2). A failure prints the seed and the command that replays exactly it:
//! `SIM_SEED=<seed> SIM_TRACE=1 cargo test --test it cluster_sim -- --nocapture`
//! (SIM_LOG=info adds the brokers' logs). See docs/RELIABILITY.md for a bug it found.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cluster_sim_checker::{check, lock, Shared};
use super::cluster_sim_client::PORT;
use super::cluster_sim_network::Turmoil;
use super::cluster_sim_workload::{consumer, producer, verifier};
use super::crash_property::Rng;
use broker::actors::broker::Broker;
use broker::config::Config;
use broker::sockets::Network;
use broker::storage::sim::SimStorage;

pub(crate) const IDS: [i32; 3] = [1, 2, 3];
pub(crate) const TOPIC: &str = "t";
pub(crate) const PARTITIONS: i32 = 2;
pub(crate) const GROUP: &str = "g";
pub(crate) const DATA: &str = "/data";
const RAFT_PORT: u16 = 9093;
const TICK: Duration = Duration::from_millis(10);
/// Faults start once the cluster has formed and the topic exists.
const WARM_UP: Duration = Duration::from_secs(1);
/// After healing, the cluster gets this long (simulated) to settle and be verified.
pub(crate) const SETTLE: Duration = Duration::from_secs(45);
/// After the read-back, before the replicas' logs are compared.
const CATCH_UP: Duration = Duration::from_secs(1);

fn host(id: i32) -> String {
    format!("b{id}")
}

/// Broker `id`'s config: short timeouts, everything on the host's one runtime, the
/// election timeout pinned (from the seed) since openraft's own draw is not seeded.
fn broker_config(id: i32, voters: &str, election_ms: u64, network: Turmoil) -> Config {
    Config {
        node_id: id,
        listen: SocketAddr::from(([0, 0, 0, 0], PORT)),
        advertised_listener: Some(format!("{}:{PORT}", host(id))),
        data_dir: DATA.into(),
        controller_quorum_voters: voters.to_string(),
        // turmoil binds the unspecified address only.
        controller_listen: Some(SocketAddr::from(([0, 0, 0, 0], RAFT_PORT))),
        storage_threads: 0,
        broker_heartbeat_interval_ms: 200,
        broker_session_timeout_ms: 1_500,
        replica_lag_time_max_ms: 1_000,
        replica_fetch_wait_max_ms: 100,
        // A link that drops what it carries leaves a follower's fetch unanswered until this
        // (turmoil's TCP does not retransmit): 3 s rather than Kafka's 30 s keeps a seed's
        // simulated time, and so its cost, down without skipping that timeout.
        replica_socket_timeout_ms: 3_000,
        offsets_topic_num_partitions: 1,
        offsets_topic_replication_factor: 3,
        default_replication_factor: 3,
        network: Network::Simulated(Arc::new(network)),
        pinned_election_timeout_ms: Some(election_ms),
        ..Config::default()
    }
}

/// One life of a broker: start on its disk and serve until an actor it cannot run without
/// stops (a disk fault), which ends the host for the driver to restart.
async fn broker_host(
    id: i32,
    config: Config,
    disk: Arc<SimStorage>,
    lives: Arc<AtomicU32>,
    shared: Shared,
) -> turmoil::Result {
    let life = lives.fetch_add(1, Ordering::SeqCst);
    lock(&shared).note(format!("broker {id} starts life {life}"));
    let mut broker = match Broker::start(config, disk).await {
        Ok(broker) => broker,
        Err(err) => {
            lock(&shared).note(format!("broker {id} did not start: {err}"));
            return Ok(());
        }
    };
    lock(&shared).note(format!("broker {id} serves"));
    let failed = broker.failed().await;
    lock(&shared).note(format!("broker {id} stopped: its {failed} actor ended"));
    Ok(())
}

/// A fault the driver has injected and will undo.
enum Fault {
    /// Two brokers cannot reach each other: what they send is held, as TCP retransmits,
    /// and delivered once the partition heals.
    Partition(i32, i32),
    /// One broker cannot reach the other two (nor they it); clients still reach it.
    Isolated(i32),
    /// What two brokers send each other is lost: turmoil's TCP does not retransmit, so
    /// their connections hang until the callers' timeouts (3 s for a replica fetch here).
    Dropped(i32, i32),
    /// The link between two brokers is slow.
    Slow(i32, i32),
    Crashed(i32),
    /// Every fsync on the broker's partition logs fails.
    FsyncFails(i32),
    /// Every write on the broker's disk fails (ENOSPC).
    DiskFull(i32),
}

fn describe(fault: &Fault) -> String {
    match fault {
        Fault::Partition(a, b) => format!("partition {a} from {b}"),
        Fault::Dropped(a, b) => format!("drop what {a} and {b} send each other"),
        Fault::Isolated(id) => format!("isolate {id} from the other brokers"),
        Fault::Slow(a, b) => format!("slow link {a}-{b}"),
        Fault::Crashed(id) => format!("crash {id} with a power cut"),
        Fault::FsyncFails(id) => format!("fsync fails on {id}"),
        Fault::DiskFull(id) => format!("disk full on {id}"),
    }
}

struct Run<'a> {
    sim: turmoil::Sim<'a>,
    disks: BTreeMap<i32, Arc<SimStorage>>,
    shared: Shared,
    max_latency: Duration,
}

impl Run<'_> {
    fn others(id: i32) -> Vec<String> {
        IDS.iter().filter(|o| **o != id).map(|o| host(*o)).collect()
    }

    fn inject(&mut self, fault: &Fault) {
        match fault {
            Fault::Partition(a, b) => self.sim.hold(host(*a), host(*b)),
            Fault::Isolated(id) => {
                for other in Self::others(*id) {
                    self.sim.hold(host(*id), other);
                }
            }
            Fault::Dropped(a, b) => self.sim.partition(host(*a), host(*b)),
            Fault::Slow(a, b) => {
                let slow = Duration::from_millis(300);
                self.sim.set_link_latency(host(*a), host(*b), slow);
            }
            Fault::Crashed(id) => {
                self.sim.crash(host(*id));
                self.disks[id].power_cut();
            }
            Fault::FsyncFails(id) => self.disks[id].fail_fsync(Some(format!("{TOPIC}-"))),
            Fault::DiskFull(id) => self.disks[id].fail_writes_enospc(true),
        }
    }

    /// Undoes a fault. A broker whose disk failed is restarted, as an operator would,
    /// after losing what it had not synced.
    fn undo(&mut self, fault: &Fault) {
        match fault {
            Fault::Partition(a, b) => self.sim.release(host(*a), host(*b)),
            Fault::Isolated(id) => {
                for other in Self::others(*id) {
                    self.sim.release(host(*id), other);
                }
            }
            Fault::Dropped(a, b) => self.sim.repair(host(*a), host(*b)),
            Fault::Slow(a, b) => {
                let latency = self.max_latency;
                self.sim.set_link_latency(host(*a), host(*b), latency);
            }
            Fault::Crashed(id) => self.sim.bounce(host(*id)),
            Fault::FsyncFails(id) | Fault::DiskFull(id) => {
                self.sim.crash(host(*id));
                self.disks[id].power_cut();
                self.disks[id].clear_faults();
                self.sim.bounce(host(*id));
            }
        }
        lock(&self.shared).note(format!("undo: {}", describe(fault)));
    }

    /// A broker whose host ended (a disk fault stopped it) is started again, unless it is
    /// down on purpose (`crashed`).
    fn restart_stopped(&mut self, crashed: &[i32]) {
        for id in IDS {
            if !crashed.contains(&id) && !self.sim.is_host_running(host(id)) {
                lock(&self.shared).note(format!("restart {id}"));
                self.sim.bounce(host(id));
            }
        }
    }
}

pub(crate) struct Outcome {
    pub(crate) trace_hash: u64,
    pub(crate) acked: usize,
    pub(crate) served: usize,
    /// Simulated time the run took, faults, settling and catch-up included.
    pub(crate) simulated: Duration,
}

/// Runs one seed; Err says which property broke.
pub(crate) fn run_seed(seed: u64, seconds: u64) -> Result<Outcome, String> {
    let mut rng = Rng(seed);
    let faults_until = WARM_UP + Duration::from_secs(seconds);
    let max_latency = Duration::from_millis(1 + rng.below(20));
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(TICK)
        .simulation_duration(faults_until + SETTLE + Duration::from_secs(10))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(max_latency)
        .build();
    let shared = Shared::default();
    let ips: Vec<_> = IDS.iter().map(|id| sim.lookup(host(*id))).collect();
    let voters = IDS
        .iter()
        .zip(&ips)
        .map(|(id, ip)| format!("{id}@{ip}:{RAFT_PORT}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut disks = BTreeMap::new();
    let bound = Arc::new(Mutex::new(BTreeSet::new()));
    for (id, ip) in IDS.into_iter().zip(&ips) {
        let disk = Arc::new(SimStorage::new());
        disk.run_inline();
        disk.track_directory_entries();
        disks.insert(id, disk.clone());
        // Distinct election timeouts break ties; the seed moves them.
        let election = 500 + 150 * id as u64 + rng.below(100);
        let network = Turmoil {
            ip: *ip,
            bound: bound.clone(),
        };
        let config = broker_config(id, &voters, election, network);
        let (lives, shared) = (Arc::new(AtomicU32::new(0)), shared.clone());
        sim.host(host(id), move || {
            let config = config.clone();
            broker_host(id, config, disk.clone(), lives.clone(), shared.clone())
        });
    }
    sim.client("producer", producer(faults_until, shared.clone()));
    sim.client("consumer", consumer(shared.clone()));
    sim.client("verifier", verifier(shared.clone()));
    let mut run = Run {
        sim,
        disks,
        shared: shared.clone(),
        max_latency,
    };

    lock(&shared).note(format!("seed {seed}: latency up to {max_latency:?}"));
    let mut active: Vec<(Duration, Fault)> = Vec::new();
    let mut next_fault = WARM_UP;
    let fail = |e: Box<dyn std::error::Error>| {
        print_trace(&shared);
        format!("the simulation stopped: {e}")
    };
    while run.sim.elapsed() < faults_until {
        run.sim.step().map_err(fail)?;
        let now = run.sim.elapsed();
        lock(&shared).driver_now = now;
        let (due, keep): (Vec<_>, Vec<_>) = active.into_iter().partition(|(at, _)| *at <= now);
        active = keep;
        for (_, fault) in due {
            run.undo(&fault);
        }
        let crashed: Vec<i32> = active
            .iter()
            .filter_map(|(_, f)| match f {
                Fault::Crashed(id) => Some(*id),
                _ => None,
            })
            .collect();
        run.restart_stopped(&crashed);
        if now < next_fault {
            continue;
        }
        next_fault = now + Duration::from_millis(200 + rng.below(800));
        let until = now + Duration::from_millis(300 + rng.below(1500));
        let id = IDS[rng.below(3) as usize];
        let other =
            IDS[(IDS.iter().position(|i| *i == id).unwrap() + 1 + rng.below(2) as usize) % 3];
        // At most one broker down or on a faulty disk at a time: with two of three gone
        // nothing can be acknowledged, which tests nothing.
        let kind = rng.below(7);
        let busy = active.iter().any(|(_, f)| {
            matches!(
                f,
                Fault::Crashed(_) | Fault::FsyncFails(_) | Fault::DiskFull(_)
            )
        });
        let fault = match kind {
            0 => Fault::Partition(id, other),
            1 => Fault::Isolated(id),
            2 => Fault::Slow(id, other),
            3 if !busy => Fault::Crashed(id),
            4 if !busy => Fault::FsyncFails(id),
            5 if !busy => Fault::DiskFull(id),
            6 => Fault::Dropped(id, other),
            _ => continue,
        };
        lock(&shared).note(format!("fault until {until:?}: {}", describe(&fault)));
        run.inject(&fault);
        active.push((until, fault));
    }

    // Heal, then let the cluster settle until the verifier has read everything back.
    lock(&shared).driver_now = run.sim.elapsed();
    for (_, fault) in active {
        run.undo(&fault);
    }
    lock(&shared).healed = true;
    lock(&shared).note("healed".into());
    let settle_until = run.sim.elapsed() + SETTLE;
    while run.sim.elapsed() < settle_until && !lock(&shared).verified {
        run.sim.step().map_err(fail)?;
        lock(&shared).driver_now = run.sim.elapsed();
        run.restart_stopped(&[]);
    }
    // A follower restarted after a power cut is in the ISR while it fetches back what it
    // lost: give the replicas a moment before their logs are read.
    let caught_up = run.sim.elapsed() + CATCH_UP;
    while run.sim.elapsed() < caught_up {
        run.sim.step().map_err(fail)?;
    }
    let simulated = run.sim.elapsed();
    for id in IDS {
        run.sim.crash(host(id));
    }
    print_trace(&shared);
    check(&shared, &run.disks)?;
    let seen = lock(&shared);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    seen.trace.hash(&mut hasher);
    Ok(Outcome {
        trace_hash: hasher.finish(),
        acked: seen.acked.len(),
        served: seen.served_count(),
        simulated,
    })
}

/// With SIM_TRACE set, prints what the run saw.
fn print_trace(shared: &Shared) {
    if std::env::var_os("SIM_TRACE").is_some() {
        println!("{}", lock(shared).trace.join("\n"));
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The brokers' log lines carry the simulated time, to read beside the trace.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(at) => write!(w, "{at:?}"),
            None => write!(w, "-"),
        }
    }
}

/// SIM_LOG=<filter> shows the brokers' logs.
fn init_logs() {
    if let Ok(filter) = std::env::var("SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_timer(SimTime)
            .with_ansi(false)
            .with_test_writer()
            .try_init();
    }
}

/// What one seed gave: its line in a worker's output.
fn report(seed: u64, seconds: u64, result: &Result<Outcome, String>) -> String {
    match result {
        Ok(o) => format!(
            "seed {seed} passed: hash {:x} acked {} served {} simulated_ms {}",
            o.trace_hash,
            o.acked,
            o.served,
            o.simulated.as_millis()
        ),
        Err(why) => format!(
            "seed {seed} failed: {why}\nreplay it: SIM_SEED={seed} SIM_SECONDS={seconds} \
             SIM_TRACE=1 cargo test --test it cluster_sim -- --nocapture"
        ),
    }
}

/// Runs `seeds` one after another in this process, each on a fresh thread (nothing
/// thread-local an earlier seed left behind reaches it), printing each one's line.
fn run_here(seeds: impl Iterator<Item = u64>, seconds: u64) {
    for seed in seeds {
        let run = std::thread::spawn(move || run_seed(seed, seconds));
        let result = run
            .join()
            .unwrap_or_else(|_| Err("the simulation panicked".into()));
        println!("{}", report(seed, seconds, &result));
    }
}

const WORKER_ENV: &str = "CLUSTER_SIM_WORKER";

/// A child process of this test binary that runs only simulations: seeds `first`,
/// `first + step`, ... below `end`. Simulations alone in their process replay exactly
/// (see RELIABILITY.md), and `SIM_WORKERS` of them use that many cores.
#[test]
#[ignore = "a child process of cluster_sim_seeds_keep_every_acknowledged_record"]
fn cluster_sim_worker() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let numbers: Vec<u64> = spec.split(':').filter_map(|n| n.parse().ok()).collect();
    let [first, end, step, seconds] = numbers[..] else {
        panic!("{WORKER_ENV}={spec} is not first:end:step:seconds");
    };
    run_here((first..end).step_by(step as usize), seconds);
}

/// Runs the seeds in `workers` child processes; returns every seed's line.
fn run_in_workers(seeds: u64, seconds: u64, workers: u64) -> Vec<String> {
    let children: Vec<_> = (0..workers)
        .map(|w| {
            std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args(["--ignored", "--exact", "cluster_sim::cluster_sim_worker"])
                .args(["--nocapture", "--test-threads=1"])
                .env(WORKER_ENV, format!("{w}:{seeds}:{workers}:{seconds}"))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("a worker starts")
        })
        .collect();
    let mut lines = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("a worker runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut saw = false;
        for line in stdout.lines() {
            // libtest may print "test ... " before the worker's own output on one line.
            if let Some(at) = line.find("seed ") {
                lines.push(line[at..].to_string());
                saw = true;
            } else if line.starts_with("replay it") {
                lines.push(line.to_string());
            }
        }
        assert!(saw && out.status.success(), "a worker failed: {stdout}");
    }
    lines
}

#[test]
fn cluster_sim_seeds_keep_every_acknowledged_record() {
    init_logs();
    let seconds = env("SIM_SECONDS", 1);
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed = seed.parse().expect("SIM_SEED is a number");
        let result = run_seed(seed, seconds);
        println!("{}", report(seed, seconds, &result));
        result.expect("the seed passes");
        return;
    }
    let seeds = env("SIM_SEEDS", 600);
    let started = std::time::Instant::now();
    let lines = run_in_workers(seeds, seconds, env("SIM_WORKERS", 2).max(1));
    let (mut acked, mut served, mut simulated_ms, mut failures) = (0, 0, 0, Vec::new());
    for line in &lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["seed", seed, "passed:", "hash", hash, "acked", a, "served", s, "simulated_ms", ms] => {
                acked += a.parse::<u64>().unwrap_or(0);
                served += s.parse::<u64>().unwrap_or(0);
                simulated_ms += ms.parse::<u64>().unwrap_or(0);
                if std::env::var_os("SIM_HASHES").is_some() {
                    println!("seed {seed}: trace hash {hash}");
                }
            }
            ["seed", seed, "failed:", ..] => {
                println!("{line}");
                failures.push(seed.to_string());
            }
            _ => println!("{line}"),
        }
    }
    println!(
        "{seeds} seeds of {seconds} s of faults in {:?}: {acked} acknowledged records, {served} served, {} simulated seconds",
        started.elapsed(),
        simulated_ms / 1000
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("seed ")).count() as u64,
        seeds
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    assert!(
        acked > 0,
        "no record was ever acknowledged: the simulation tested nothing"
    );
}

/// One seed's trace hash, from a worker process that runs only it.
fn trace_hash_alone(seed: u64) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "cluster_sim::cluster_sim_worker"])
        .args(["--nocapture", "--test-threads=1"])
        .env(WORKER_ENV, format!("{seed}:{}:1:1", seed + 1))
        .output()
        .expect("the worker runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split(&format!("seed {seed} passed: hash ")).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("seed {seed} did not pass alone: {stdout}"))
        .to_string()
}

#[test]
fn cluster_sim_replays_a_seed_exactly() {
    let first = trace_hash_alone(3);
    assert_eq!(first, trace_hash_alone(3), "one seed, two different runs");
    assert_ne!(first, trace_hash_alone(4));
}
