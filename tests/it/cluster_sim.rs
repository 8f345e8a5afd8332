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
//! waits for every partition to have its full ISR and reads the logs back; the checker
//! (`cluster_sim_checker`) then wants every acknowledged record at its offset, in order,
//! once; every record a consumer was served still there; committed offsets never below an
//! acknowledged commit; and every replica's log equal to the leader's below the high
//! watermark.
//!
//! CI runs `SIM_SEEDS` seeds (default 1000) with `SIM_SECONDS` simulated seconds of faults
//! (default 1). A failure prints the seed and the command that replays exactly it:
//! `SIM_SEED=<seed> SIM_TRACE=1 cargo test --test it cluster_sim -- --nocapture`
//! (SIM_LOG=debug adds the brokers' logs).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cluster_sim_checker::{check, lock, Ack, Shared};
use super::cluster_sim_client::{self as client, Conns, PORT};
use super::crash_property::Rng;
use broker::actors::broker::Broker;
use broker::config::Config;
use broker::sockets::{Network, SimListener, SimStream, SimulatedNetwork};
use broker::storage::sim::SimStorage;
use futures::future::BoxFuture;

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
const SETTLE: Duration = Duration::from_secs(45);
/// After the read-back, before the replicas' logs are compared.
const CATCH_UP: Duration = Duration::from_secs(1);

fn host(id: i32) -> String {
    format!("b{id}")
}

/// turmoil's TCP for one broker. turmoil answers a connect across a cut link (or to a
/// crashed host) with ConnectionRefused, where real TCP across a partition stays silent
/// until the caller's timeout: a refused connect to a port some broker has bound stays
/// pending here instead, so only "nothing listens there" is refused, as on real sockets.
#[derive(Clone)]
struct Turmoil {
    ip: IpAddr,
    bound: Arc<Mutex<BTreeSet<SocketAddr>>>,
}

struct TurmoilListener {
    listener: turmoil::net::TcpListener,
    addr: SocketAddr,
    bound: Arc<Mutex<BTreeSet<SocketAddr>>>,
}

impl Drop for TurmoilListener {
    fn drop(&mut self) {
        self.bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.addr);
    }
}

impl SimListener for TurmoilListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(Box<dyn SimStream>, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.listener.accept().await?;
            Ok((Box::new(stream) as Box<dyn SimStream>, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl SimulatedNetwork for Turmoil {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn SimListener>>> {
        let net = self.clone();
        Box::pin(async move {
            let listener = turmoil::net::TcpListener::bind(addr).await?;
            let addr = SocketAddr::new(net.ip, addr.port());
            net.bound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(addr);
            let bound = net.bound.clone();
            let listener = TurmoilListener {
                listener,
                addr,
                bound,
            };
            Ok(Box::new(listener) as Box<dyn SimListener>)
        })
    }

    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn SimStream>>> {
        let bound = self.bound.clone();
        Box::pin(async move {
            match turmoil::net::TcpStream::connect(addr.as_str()).await {
                Ok(stream) => Ok(Box::new(stream) as Box<dyn SimStream>),
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                    let target = addr.rsplit_once(':').and_then(|(host, port)| {
                        Some(SocketAddr::new(turmoil::lookup(host), port.parse().ok()?))
                    });
                    let listening = target.is_some_and(|t| {
                        bound.lock().unwrap_or_else(|e| e.into_inner()).contains(&t)
                    });
                    if listening {
                        std::future::pending::<()>().await;
                    }
                    Err(err)
                }
                Err(err) => Err(err),
            }
        })
    }
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

/// The next broker to try after `id`.
fn next(id: i32) -> i32 {
    id % 3 + 1
}

/// Creates the topic, then produces records idempotently with acks=all until `until`,
/// retrying each until acknowledged, and notes each acknowledgement.
async fn producer(until: Duration, shared: Shared) -> turmoil::Result {
    let mut conns = Conns::default();
    let mut ask = 1;
    loop {
        match client::create_topic(&mut conns, ask, TOPIC, PARTITIONS).await {
            Some(0 | 36) => break,
            _ => {
                ask = next(ask);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut producer = init_producer(&mut conns, &mut ask, &shared).await;
    let mut leaders: BTreeMap<i32, i32> = BTreeMap::new();
    let mut sequences = [0i32; PARTITIONS as usize];
    let give_up = until + SETTLE;
    let mut n: u64 = 0;
    while turmoil::elapsed() < until {
        let partition = (n % PARTITIONS as u64) as i32;
        let value = format!("{}:{n}", producer.0);
        loop {
            if turmoil::elapsed() > give_up {
                lock(&shared).note(format!("record {n} never acknowledged"));
                return Ok(());
            }
            let Some(leader) = leaders.get(&partition).copied() else {
                if let Some(meta) = client::metadata(&mut conns, ask).await {
                    leaders = client::leaders(&meta, TOPIC)
                        .into_iter()
                        .map(|(p, (leader, _, _))| (p, leader))
                        .collect();
                }
                ask = next(ask);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let sequence = sequences[partition as usize];
            let batch = client::batch(producer, sequence, value.as_bytes());
            match client::produce(&mut conns, leader, TOPIC, partition, batch).await {
                Some((0, offset)) => {
                    let mut seen = lock(&shared);
                    seen.note(format!(
                        "{value} acknowledged at {partition}/{offset} by {leader}"
                    ));
                    seen.acked.push(Ack {
                        partition,
                        offset,
                        value: value.clone().into_bytes(),
                    });
                    break;
                }
                Some((code @ (45 | 59), _)) => {
                    // The leader no longer knows this producer's sequence: start afresh.
                    lock(&shared).note(format!("{value} refused with {code}; new producer id"));
                    producer = init_producer(&mut conns, &mut ask, &shared).await;
                    sequences = [0; PARTITIONS as usize];
                    break;
                }
                Some((code, _)) => {
                    if !client::retriable(code) {
                        lock(&shared).note(format!("{value} refused with {code}"));
                    }
                    leaders.clear();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                None => {
                    leaders.clear();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        if value.starts_with(&format!("{}:", producer.0)) {
            sequences[partition as usize] += 1;
            n += 1;
        }
    }
    lock(&shared).producer_done = true;
    Ok(())
}

async fn init_producer(conns: &mut Conns, ask: &mut i32, shared: &Shared) -> (i64, i16) {
    loop {
        match client::init_producer_id(conns, *ask).await {
            Some(Ok(producer)) => {
                lock(shared).note(format!("producer id {producer:?}"));
                return producer;
            }
            Some(Err(code)) => lock(shared).note(format!("InitProducerId answered {code}")),
            None => {}
        }
        *ask = next(*ask);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every partition from its leader, notes what it was served, and commits its
/// position for the group now and then, checking each commit read back is never below
/// one acknowledged before.
async fn consumer(shared: Shared) -> turmoil::Result {
    let mut conns = Conns::default();
    let mut positions = [0i64; PARTITIONS as usize];
    let mut leaders: BTreeMap<i32, i32> = BTreeMap::new();
    let mut coordinator: Option<i32> = None;
    let mut ask = 1;
    let mut round: u64 = 0;
    while !lock(&shared).verified {
        round += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if leaders.len() < PARTITIONS as usize {
            if let Some(meta) = client::metadata(&mut conns, ask).await {
                leaders = client::leaders(&meta, TOPIC)
                    .into_iter()
                    .map(|(p, (leader, _, _))| (p, leader))
                    .collect();
            }
            ask = next(ask);
            continue;
        }
        for partition in 0..PARTITIONS {
            let Some(leader) = leaders.get(&partition).copied() else {
                continue;
            };
            let position = positions[partition as usize];
            match client::fetch(&mut conns, leader, TOPIC, partition, position).await {
                Some(f) if f.error_code == 0 => {
                    let mut seen = lock(&shared);
                    for (offset, value) in f.records {
                        if offset >= position {
                            seen.served(partition, offset, value, f.high_watermark);
                            positions[partition as usize] = offset + 1;
                        }
                    }
                }
                Some(f) => {
                    if !client::retriable(f.error_code) {
                        lock(&shared).note(format!(
                            "fetch of {partition} at {position} answered {}",
                            f.error_code
                        ));
                    }
                    leaders.remove(&partition);
                }
                None => {
                    leaders.remove(&partition);
                }
            }
        }
        if round % 5 == 0 {
            commit_round(&mut conns, &mut coordinator, &mut ask, &positions, &shared).await;
        }
    }
    Ok(())
}

async fn commit_round(
    conns: &mut Conns,
    coordinator: &mut Option<i32>,
    ask: &mut i32,
    positions: &[i64],
    shared: &Shared,
) {
    let Some(to) = *coordinator else {
        if let Some(Ok(id)) = client::find_coordinator(conns, *ask, GROUP).await {
            *coordinator = Some(id);
        }
        *ask = next(*ask);
        return;
    };
    for (partition, position) in positions.iter().enumerate() {
        let partition = partition as i32;
        match client::commit(conns, to, GROUP, TOPIC, partition, *position).await {
            Some(0) => {
                let mut seen = lock(shared);
                seen.note(format!(
                    "commit {partition}={position} acknowledged by {to}"
                ));
                seen.commit_acked(partition, *position);
            }
            _ => {
                *coordinator = None;
                return;
            }
        }
        let floor = lock(shared).commit_floor(partition);
        match client::committed(conns, to, GROUP, TOPIC, partition).await {
            Some(Ok(offset)) => {
                let mut seen = lock(shared);
                if offset < floor {
                    seen.note(format!(
                        "commit of {partition} read back from {to}: {offset}"
                    ));
                }
                seen.commit_read(partition, offset, floor);
            }
            _ => {
                *coordinator = None;
                return;
            }
        }
    }
}

/// Once healed and the producer is done: waits for every partition to have a leader and
/// its full ISR, then reads each log back up to its high watermark, and the commits.
async fn verifier(shared: Shared) -> turmoil::Result {
    let mut conns = Conns::default();
    let mut ask = 1;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        {
            let seen = lock(&shared);
            if !(seen.healed && seen.producer_done) {
                continue;
            }
        }
        ask = next(ask);
        let Some(meta) = client::metadata(&mut conns, ask).await else {
            continue;
        };
        let leaders = client::leaders(&meta, TOPIC);
        if leaders.len() != PARTITIONS as usize || leaders.values().any(|(_, _, isr)| *isr != 3) {
            continue;
        }
        let mut logs = BTreeMap::new();
        for (partition, (leader, _, _)) in &leaders {
            match read_all(&mut conns, *leader, *partition).await {
                Some(log) => logs.insert(*partition, log),
                None => break,
            };
        }
        if logs.len() != leaders.len() {
            continue;
        }
        let mut commits = BTreeMap::new();
        if let Some(Ok(coordinator)) = client::find_coordinator(&mut conns, ask, GROUP).await {
            for partition in 0..PARTITIONS {
                let floor = lock(&shared).commit_floor(partition);
                if let Some(Ok(offset)) =
                    client::committed(&mut conns, coordinator, GROUP, TOPIC, partition).await
                {
                    commits.insert(partition, (offset, floor));
                }
            }
        }
        if commits.len() != PARTITIONS as usize {
            continue;
        }
        let mut seen = lock(&shared);
        for (partition, (offset, floor)) in commits {
            seen.note(format!("final commit of {partition}: {offset}"));
            seen.commit_read(partition, offset, floor);
        }
        seen.final_logs = logs;
        seen.verified = true;
        seen.note("verified".into());
        return Ok(());
    }
}

/// A partition's records up to its high watermark, and that high watermark.
async fn read_all(
    conns: &mut Conns,
    leader: i32,
    partition: i32,
) -> Option<(i64, Vec<(i64, Vec<u8>)>)> {
    let mut records = Vec::new();
    let mut position = 0;
    loop {
        let fetched = client::fetch(conns, leader, TOPIC, partition, position).await?;
        if fetched.error_code != 0 {
            return None;
        }
        for (offset, value) in fetched.records {
            if offset >= position {
                position = offset + 1;
                records.push((offset, value));
            }
        }
        if position >= fetched.high_watermark {
            return Some((fetched.high_watermark, records));
        }
    }
}

/// A fault the driver has injected and will undo.
enum Fault {
    /// Two brokers cannot reach each other: what they send is held, as TCP retransmits,
    /// and delivered once the partition heals.
    Partition(i32, i32),
    /// One broker cannot reach the other two (nor they it); clients still reach it.
    Isolated(i32),
    /// What two brokers send each other is lost: turmoil's TCP does not retransmit, so
    /// their connections hang until the callers' timeouts (30 s for a replica fetch).
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

/// SIM_LOG=<filter> shows the brokers' logs.
fn init_logs() {
    if let Ok(filter) = std::env::var("SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

#[test]
fn cluster_sim_seeds_keep_every_acknowledged_record() {
    init_logs();
    let seconds = env("SIM_SECONDS", 1);
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("SIM_SEED is a number")],
        Err(_) => (0..env("SIM_SEEDS", 20)).collect(),
    };
    let mut failures = Vec::new();
    let (mut acked, mut served) = (0, 0);
    let started = std::time::Instant::now();
    for seed in &seeds {
        let seed = *seed;
        // Each seed on a fresh thread: nothing thread-local that an earlier seed left
        // behind reaches it.
        let run = std::thread::spawn(move || run_seed(seed, seconds));
        match run.join().expect("a simulation thread panicked") {
            Ok(outcome) => {
                acked += outcome.acked;
                served += outcome.served;
                if seeds.len() == 1 || std::env::var_os("SIM_HASHES").is_some() {
                    println!("seed {seed}: trace hash {:x}", outcome.trace_hash);
                }
            }
            Err(why) => {
                println!(
                    "seed {seed} failed: {why}\nreplay it: SIM_SEED={seed} SIM_SECONDS={seconds} \
                     SIM_TRACE=1 cargo test --test it cluster_sim -- --nocapture"
                );
                failures.push(seed);
            }
        }
    }
    println!(
        "{} seeds of {seconds} s of faults in {:?}: {acked} acknowledged records, {served} served",
        seeds.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    assert!(
        acked > 0,
        "no record was ever acknowledged: the simulation tested nothing"
    );
}
