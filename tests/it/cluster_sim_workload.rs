//! The whole-cluster simulation's clients (`cluster_sim`): the producer, the consumer
//! with its commits, and the verifier that reads everything back once the cluster healed.

use std::collections::BTreeMap;
use std::time::Duration;

use super::cluster_sim::{GROUP, IDS, PARTITIONS, SETTLE, TOPIC};
use super::cluster_sim_checker::{lock, Ack, Shared};
use super::cluster_sim_client::{self as client, Conns};

/// The next broker to try after `id`.
fn next(id: i32) -> i32 {
    id % 3 + 1
}

/// Creates the topic, then produces records idempotently with acks=all until `until`,
/// retrying each until acknowledged, and notes each acknowledgement.
pub(crate) async fn producer(until: Duration, shared: Shared) -> turmoil::Result {
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
pub(crate) async fn consumer(shared: Shared) -> turmoil::Result {
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
            // v12: a broker that stopped leading may serve as a follower (KIP-392).
            match client::fetch(&mut conns, 12, leader, TOPIC, partition, position).await {
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
        if round.is_multiple_of(5) {
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
pub(crate) async fn verifier(shared: Shared) -> turmoil::Result {
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
        let Some(leaders) = agreed_leaders(&mut conns).await else {
            continue;
        };
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

/// Each partition's leader, leader epoch and ISR size, once every broker's Metadata names
/// the same ones with a full ISR. One broker's answer is not enough: a leader cut off from
/// the quorum while another was elected still names itself until its image catches up, and
/// answers a read-back at its older high watermark (seed 924 of `SIM_SECONDS=2` read
/// partition 1 from such a deposed leader and took offsets 5-8, acknowledged by the new
/// one, for lost).
async fn agreed_leaders(conns: &mut Conns) -> Option<BTreeMap<i32, (i32, i32, usize)>> {
    let mut agreed: Option<BTreeMap<i32, (i32, i32, usize)>> = None;
    for id in IDS {
        let meta = client::metadata(conns, id).await?;
        let leaders = client::leaders(&meta, TOPIC);
        if leaders.len() != PARTITIONS as usize || leaders.values().any(|(_, _, isr)| *isr != 3) {
            return None;
        }
        if agreed.as_ref().is_some_and(|a| *a != leaders) {
            return None;
        }
        agreed = Some(leaders);
    }
    agreed
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
        // v10: only the leader answers, so its high watermark is the one read back.
        let fetched = client::fetch(conns, 10, leader, TOPIC, partition, position).await?;
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
