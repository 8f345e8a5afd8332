//! Deterministic simulation of the metadata quorum (issue 15, proof 1) on turmoil: three
//! members run as simulated hosts over simulated TCP (the same `tcp_transport` code as on
//! real sockets) on a simulated clock, each on its own SimStorage disk that outlives its
//! crashes. One seed drives every fault: message delay and loss, partitions, crashes with
//! a power cut (unsynced data lost) and restarts, and a failing fsync on one member for a
//! while. A client writes records through whoever leads and notes which were acknowledged.
//! After healing and a bounded settle, the checker wants every acknowledged record at its
//! index wherever a log holds it and in every image, the same entry at an index on every
//! member holding it, identical images and applied positions everywhere, each image equal
//! to its snapshot plus its log, and no applied entry ever undone on any member.
//!
//! CI runs `SIM_SEEDS` seeds (default 400: the whole-cluster simulation, `cluster_sim`,
//! runs 1,000 more seeds through this same quorum code) of `SIM_SECONDS` simulated seconds
//! of faults (default 1), on `SIM_THREADS` threads (default 1). A failure prints the seed and the
//! command that replays exactly it:
//! `SIM_SEED=<seed> SIM_TRACE=1 cargo test --test it quorum_sim_seeds -- --nocapture` (the
//! trace of faults, restarts, acknowledgements and applied positions, and its hash).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::crash_property::Rng;
use super::quorum_sim_checker::{check, converged, lock, Shared};
use broker::actors::metadata::MetadataRecord;
use broker::cluster::tcp_transport::{read_frame, serve, write_frame, Accept, Connect, TcpNetwork};
use broker::cluster::{default_config, AppliedImage, MetadataRaft, NodeId, QuorumMember};
use broker::storage::sim::SimStorage;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub(crate) const IDS: [NodeId; 3] = [1, 2, 3];
const RAFT_PORT: u16 = 9000;
const CLIENT_PORT: u16 = 9001;
pub(crate) const DATA: &str = "/data";
const TICK: Duration = Duration::from_millis(10);
/// Faults start once the quorum has formed.
const WARM_UP: Duration = Duration::from_millis(500);
/// After healing, the cluster gets this long (simulated) to converge.
pub(crate) const SETTLE: Duration = Duration::from_secs(20);

fn host(id: NodeId) -> String {
    format!("n{id}")
}

/// Short Raft timings, and each member its own fixed election timeout: openraft draws
/// the timeout from the thread's RNG, which no seed reaches, so a one-value range keeps
/// runs exact while distinct values still break ties.
fn config(id: NodeId) -> Config {
    let election = 300 + 80 * id;
    Config {
        heartbeat_interval: 100,
        election_timeout_min: election,
        election_timeout_max: election + 1,
        // Frequent snapshots, the log purged right behind them: a member that was away
        // catches up from a snapshot.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(15),
        max_in_snapshot_log_to_keep: 0,
        ..default_config()
    }
}

/// Simulated TCP for the transport.
#[derive(Clone, Copy)]
struct SimConnect;

impl Connect for SimConnect {
    type Stream = turmoil::net::TcpStream;

    async fn connect(&self, addr: &str) -> std::io::Result<turmoil::net::TcpStream> {
        turmoil::net::TcpStream::connect(addr).await
    }
}

struct SimListener(turmoil::net::TcpListener);

impl Accept for SimListener {
    type Stream = turmoil::net::TcpStream;

    async fn accept(&mut self) -> std::io::Result<(turmoil::net::TcpStream, std::net::SocketAddr)> {
        self.0.accept().await
    }
}

/// A member's answer to the simulated client.
#[derive(Serialize, Deserialize)]
enum Reply {
    Written(u64),
    NotLeader(Option<NodeId>),
    Failed(String),
}

/// Answers the client's writes from the local Raft.
async fn serve_client(mut stream: turmoil::net::TcpStream, raft: MetadataRaft) {
    while let Ok(Some(record)) = read_frame::<MetadataRecord>(&mut stream).await {
        let reply = match raft.client_write(record).await {
            Ok(response) => Reply::Written(response.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Reply::NotLeader(forward.leader_id)
            }
            Err(err) => Reply::Failed(err.to_string()),
        };
        if write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

/// One life of a member: open its disk, serve Raft and the client, publish what it applies.
async fn member(
    id: NodeId,
    disk: Arc<SimStorage>,
    lives: Arc<AtomicU32>,
    shared: Shared,
) -> turmoil::Result {
    let life = lives.fetch_add(1, Ordering::SeqCst);
    lock(&shared).this_life.insert(id, None);
    let files: Vec<String> = disk
        .paths()
        .iter()
        .map(|p| {
            format!(
                "{} ({} bytes)",
                p.display(),
                disk.file_contents(p).map_or(0, |c| c.len())
            )
        })
        .collect();
    lock(&shared).note(format!("member {id} starts life {life} on {files:?}"));
    let raft_listener = turmoil::net::TcpListener::bind(("0.0.0.0", RAFT_PORT)).await?;
    let client_listener = turmoil::net::TcpListener::bind(("0.0.0.0", CLIENT_PORT)).await?;
    let network = TcpNetwork::new(SimConnect);
    let member = QuorumMember::start_on(id, config(id), disk, Path::new(DATA), network).await?;
    if id == IDS[0] && life == 0 {
        let voters = IDS.iter().map(|v| {
            let addr = format!("{}:{RAFT_PORT}", host(*v));
            (*v, BasicNode { addr })
        });
        member.initialize_with(voters.collect()).await?;
    }
    tokio::spawn(serve(SimListener(raft_listener), member.raft.clone()));
    let mut applied: watch::Receiver<Arc<AppliedImage>> = member.applied.clone();
    let watcher = shared.clone();
    tokio::spawn(async move {
        loop {
            let now = applied.borrow_and_update().clone();
            lock(&watcher).applied(id, now);
            if applied.changed().await.is_err() {
                return;
            }
        }
    });
    loop {
        let (stream, _) = client_listener.accept().await?;
        tokio::spawn(serve_client(stream, member.raft.clone()));
    }
}

/// Topic `n`'s creation: every write is a distinct record (its retries the same one).
fn record(n: u64) -> MetadataRecord {
    MetadataRecord::TopicCreated {
        name: format!("w{n}"),
        id: u128::from(n) + 1,
        partitions: 1,
        configs: BTreeMap::new(),
    }
}

/// One write through member `to`, bounded.
async fn write_through(to: NodeId, record: &MetadataRecord) -> Option<Reply> {
    let exchange = async {
        let addr = format!("{}:{CLIENT_PORT}", host(to));
        let mut stream = turmoil::net::TcpStream::connect(addr).await.ok()?;
        write_frame(&mut stream, record).await.ok()?;
        read_frame::<Reply>(&mut stream).await.ok()?
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// Writes until `until` (simulated), following the leader hint, retrying a write on the
/// next member after a failure or timeout until it is acknowledged (a retried write may
/// land twice; only its acknowledged index is checked), and notes what was acknowledged.
async fn client(until: Duration, shared: Shared) -> turmoil::Result {
    let mut to = IDS[0];
    let mut n = 1;
    while turmoil::elapsed() < until {
        let record = record(n);
        match write_through(to, &record).await {
            Some(Reply::Written(index)) => {
                let mut seen = lock(&shared);
                seen.note(format!("write {n} acknowledged by {to} at {index}"));
                seen.acked.push((record, index));
                n += 1;
            }
            Some(Reply::NotLeader(Some(leader))) => to = leader,
            other => {
                if let Some(Reply::Failed(err)) = other {
                    lock(&shared).note(format!("write {n} failed on {to}: {err}"));
                }
                to = IDS[(IDS.iter().position(|i| *i == to).unwrap_or(0) + 1) % IDS.len()];
                // Back off before the retry (simulated time).
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(())
}

/// A fault the driver has injected and will undo.
enum Fault {
    Partition(NodeId, NodeId),
    Crashed(NodeId),
    FsyncFails(NodeId),
}

struct Outcome {
    trace_hash: u64,
    acked: usize,
    /// Some member's log was purged behind a snapshot (so snapshots were in play).
    purged: bool,
}

/// Runs one seed; Err says which property broke.
fn run_seed(seed: u64, seconds: u64) -> Result<Outcome, String> {
    let mut rng = Rng(seed);
    let faults_until = WARM_UP + Duration::from_secs(seconds);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(TICK)
        .simulation_duration(faults_until + SETTLE + Duration::from_secs(5))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(1 + rng.below(40)))
        .build();
    let shared = Shared::default();
    let mut disks = BTreeMap::new();
    for id in IDS {
        let disk = Arc::new(SimStorage::new());
        disk.track_directory_entries();
        disks.insert(id, disk.clone());
        let (lives, shared) = (Arc::new(AtomicU32::new(0)), shared.clone());
        sim.host(host(id), move || {
            member(id, disk.clone(), lives.clone(), shared.clone())
        });
    }
    let writer = shared.clone();
    sim.client("client", client(faults_until, writer));

    // Faults: one action every 100 ms to 1 s of simulated time, each undone a while later.
    let loss = [0.0, 0.0, 0.001, 0.01][rng.below(4) as usize];
    sim.set_fail_rate(loss);
    lock(&shared).note(format!("seed {seed}: loss {loss}"));
    let mut active: Vec<(Duration, Fault)> = Vec::new();
    let mut next_fault = WARM_UP;
    let fail = |e: Box<dyn std::error::Error>| {
        print_trace(&shared);
        format!("the simulation stopped: {e}")
    };
    while sim.elapsed() < faults_until {
        sim.step().map_err(fail)?;
        let now = sim.elapsed();
        lock(&shared).driver_now = now;
        let (due, keep): (Vec<_>, Vec<_>) = active.into_iter().partition(|(at, _)| *at <= now);
        active = keep;
        for (_, fault) in due {
            undo(&mut sim, &disks, &shared, fault);
        }
        if now < next_fault {
            continue;
        }
        next_fault = now + Duration::from_millis(100 + rng.below(900));
        let until = now + Duration::from_millis(200 + rng.below(2000));
        let busy = |id: NodeId, active: &[(Duration, Fault)]| {
            active
                .iter()
                .any(|(_, f)| matches!(f, Fault::Crashed(n) | Fault::FsyncFails(n) if *n == id))
        };
        let id = IDS[rng.below(3) as usize];
        let other =
            IDS[(IDS.iter().position(|i| *i == id).unwrap() + 1 + rng.below(2) as usize) % 3];
        let fault = match rng.below(3) {
            0 => {
                sim.partition(host(id), host(other));
                Fault::Partition(id, other)
            }
            1 if !busy(id, &active) => {
                sim.crash(host(id));
                disks[&id].power_cut();
                Fault::Crashed(id)
            }
            2 if !busy(id, &active) => {
                disks[&id].fail_fsync(None);
                Fault::FsyncFails(id)
            }
            _ => continue,
        };
        lock(&shared).note(format!("fault until {until:?}: {}", describe(&fault)));
        active.push((until, fault));
    }

    // Heal, then let the cluster converge.
    sim.set_fail_rate(0.0);
    lock(&shared).driver_now = sim.elapsed();
    for (_, fault) in active {
        undo(&mut sim, &disks, &shared, fault);
    }
    lock(&shared).note("healed".into());
    let settle_until = sim.elapsed() + SETTLE;
    while sim.elapsed() < settle_until && !converged(&lock(&shared)) {
        sim.step().map_err(fail)?;
    }
    lock(&shared).note(format!("settled at {:?}", sim.elapsed()));
    for id in IDS {
        sim.crash(host(id));
    }
    print_trace(&shared);
    let purged = check(&shared, &disks)?;
    let seen = lock(&shared);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    seen.trace.hash(&mut hasher);
    Ok(Outcome {
        trace_hash: hasher.finish(),
        acked: seen.acked.len(),
        purged,
    })
}

/// With SIM_TRACE set, prints what the run saw.
fn print_trace(shared: &Shared) {
    if std::env::var_os("SIM_TRACE").is_some() {
        println!("{}", lock(shared).trace.join("\n"));
    }
}

fn describe(fault: &Fault) -> String {
    match fault {
        Fault::Partition(a, b) => format!("partition {a} from {b}"),
        Fault::Crashed(id) => format!("crash {id} with a power cut"),
        Fault::FsyncFails(id) => format!("fsync fails on {id}"),
    }
}

/// Undoes a fault. A member whose fsync failed has stopped (openraft treats a storage error
/// as fatal): it restarts, as an operator would, after losing what it had not synced.
fn undo(
    sim: &mut turmoil::Sim<'_>,
    disks: &BTreeMap<NodeId, Arc<SimStorage>>,
    shared: &Shared,
    fault: Fault,
) {
    match fault {
        Fault::Partition(a, b) => sim.repair(host(a), host(b)),
        Fault::Crashed(id) => sim.bounce(host(id)),
        Fault::FsyncFails(id) => {
            sim.crash(host(id));
            disks[&id].power_cut();
            disks[&id].clear_faults();
            sim.bounce(host(id));
        }
    }
    lock(shared).note(format!("undo: {}", describe(&fault)));
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn quorum_sim_seeds_keep_every_acknowledged_write() {
    let seconds = env("SIM_SECONDS", 1);
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("SIM_SEED is a number")],
        Err(_) => (0..env("SIM_SEEDS", 400)).collect(),
    };
    // One thread by default: two simulations running at once in one process were seen to
    // change about 1 % of seeds' traces (cause not found; see RELIABILITY.md), while one
    // at a time a seed runs exactly as it does alone.
    let results: Vec<(u64, Result<Outcome, String>)> = std::thread::scope(|scope| {
        let threads = env("SIM_THREADS", 1).max(1) as usize;
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let seeds = &seeds;
                scope.spawn(move || {
                    let mine = seeds.iter().skip(worker).step_by(threads);
                    // Each seed on a fresh thread: nothing thread-local that an earlier
                    // seed left behind reaches it, so it runs as it does alone.
                    mine.map(|seed| {
                        let seed = *seed;
                        let run = std::thread::spawn(move || run_seed(seed, seconds));
                        (seed, run.join().expect("a simulation thread panicked"))
                    })
                    .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a simulation thread panicked"))
            .collect()
    });
    let mut failures = Vec::new();
    let (mut acked, mut purged) = (0, 0);
    for (seed, result) in results {
        match result {
            Ok(outcome) => {
                acked += outcome.acked;
                purged += usize::from(outcome.purged);
                if seeds.len() == 1 || std::env::var_os("SIM_HASHES").is_some() {
                    println!("seed {seed}: trace hash {:x}", outcome.trace_hash);
                }
            }
            Err(why) => {
                println!(
                    "seed {seed} failed: {why}\nreplay it: SIM_SEED={seed} SIM_SECONDS={seconds} \
                     SIM_TRACE=1 cargo test --test it quorum_sim_seeds -- --nocapture"
                );
                failures.push(seed);
            }
        }
    }
    println!(
        "{} seeds of {seconds} s: {acked} acknowledged writes, logs purged behind a snapshot in {purged} seeds",
        seeds.len()
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    assert!(
        acked > 0,
        "no write was ever acknowledged: the simulation tested nothing"
    );
}

/// One seed, run alone in this child process (see `quorum_sim_replays_a_seed_exactly`):
/// prints its trace hash.
#[test]
#[ignore = "a child process of quorum_sim_replays_a_seed_exactly"]
fn quorum_sim_replay_worker() {
    let Some(seed) = std::env::var(REPLAY_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
    else {
        return;
    };
    let outcome = run_seed(seed, 2).expect("the seed passes");
    assert!(outcome.acked > 0);
    println!("replay trace hash {:x}", outcome.trace_hash);
}

const REPLAY_SEED_ENV: &str = "QUORUM_SIM_REPLAY_SEED";

/// A seed's trace hash from a child process of this test binary that runs only that
/// simulation: replay is exact for a simulation alone in its process, while other tests
/// running beside it in this one (tokio's process-wide task ids) may perturb a trace.
fn trace_hash_alone(seed: u64) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "quorum_sim::quorum_sim_replay_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(REPLAY_SEED_ENV, seed.to_string())
        .output()
        .expect("the replay worker runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "seed {seed}: {stdout}");
    stdout
        .lines()
        // libtest may print "test ... " before the worker's own output on the same line.
        .find_map(|l| l.split("replay trace hash ").nth(1))
        .unwrap_or_else(|| panic!("seed {seed} printed no hash: {stdout}"))
        .to_string()
}

#[test]
fn quorum_sim_replays_a_seed_exactly() {
    let first = trace_hash_alone(7);
    assert_eq!(first, trace_hash_alone(7), "one seed, two different runs");
    assert_ne!(first, trace_hash_alone(8));
}
