//! Produce load for the real-process cluster tests: idempotent acks=all librdkafka
//! producers, each on a thread of its own, sending numbered records to one partition while
//! the test kills, cuts or restarts brokers; every delivery report is kept (what was
//! acknowledged, when, and which errors were seen), and the read-back check asserts every
//! acknowledged record is in the partition exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::harness::{consume, consumer, end_offsets, TestBroker};

/// What the producers' delivery reports said.
#[derive(Default)]
pub struct Acks {
    /// Each acknowledged payload and when its report arrived.
    pub acked: Mutex<Vec<(Instant, String)>>,
    /// Delivery errors (the record was not acknowledged), as librdkafka named them.
    pub errors: Mutex<Vec<String>>,
    /// The producers' last log lines (librdkafka's warnings and its `eos` debug: producer
    /// ids, epochs, drains), shown when acknowledgements stop.
    pub client_log: Mutex<std::collections::VecDeque<String>>,
}

impl Acks {
    pub fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// When the first record sent at or after `marks` (`Load::sent`) was acknowledged, if
    /// one was: sent after a leader's death, it can only have been acknowledged by
    /// another leader (an acknowledgement in flight at the kill does not count).
    pub fn first_of_sent_after(&self, marks: &[u64]) -> Option<Instant> {
        let acked = self.acked.lock().unwrap();
        acked
            .iter()
            .find(|(_, payload)| {
                let parsed = payload
                    .strip_prefix('p')
                    .and_then(|rest| rest.split_once('-'))
                    .and_then(|(id, n)| Some((id.parse::<usize>().ok()?, n.parse::<u64>().ok()?)));
                parsed.is_some_and(|(id, n)| marks.get(id).is_some_and(|mark| n >= *mark))
            })
            .map(|(t, _)| *t)
    }

    /// Waits (bounded) until at least `more` acknowledgements arrived after now; on
    /// failure the panic shows the brokers' logs.
    #[track_caller]
    pub fn wait_for_more(&self, more: usize, within: Duration, brokers: &[&TestBroker]) {
        let target = self.count() + more;
        let deadline = Instant::now() + within;
        while self.count() < target {
            if Instant::now() > deadline {
                let errors = self.errors.lock().unwrap().clone();
                let logs: Vec<String> = brokers.iter().map(|b| b.logs()).collect();
                let client: Vec<String> = self.client_log.lock().unwrap().iter().cloned().collect();
                panic!(
                    "no {more} more acknowledgements within {within:?}; errors: {:?}\n{}\n\
                     ---- producers' last log lines\n{}",
                    &errors[..errors.len().min(5)],
                    logs.join("\n----\n"),
                    client.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

struct Recording(Arc<Acks>);

impl ClientContext for Recording {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        let mut log = self.0.client_log.lock().unwrap();
        if log.len() == 200 {
            log.pop_front();
        }
        log.push_back(format!("{:?} {level:?} {fac}: {message}", Instant::now()));
    }
}

impl ProducerContext for Recording {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                self.0.acked.lock().unwrap().push((Instant::now(), payload));
            }
            Err((e, _)) => self.0.errors.lock().unwrap().push(e.to_string()),
        }
    }
}

/// Producers running until `stop`.
pub struct Load {
    pub acks: Arc<Acks>,
    stop: Arc<AtomicBool>,
    /// How many records each producer has handed to librdkafka so far.
    sent: Vec<Arc<AtomicU64>>,
    threads: Vec<JoinHandle<()>>,
}

/// Starts `producers` producers on `topic` partition 0, each sending about `per_second`
/// records a second ("p<producer>-<n>"), given every address in `bootstrap`.
pub fn start_load(bootstrap: &str, topic: &str, producers: usize, per_second: u64) -> Load {
    let acks = Arc::new(Acks::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sent: Vec<Arc<AtomicU64>> = (0..producers).map(|_| Arc::default()).collect();
    let threads = (0..producers)
        .map(|id| {
            let producer: BaseProducer<Recording> = ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("message.timeout.ms", "300000")
                .set("linger.ms", "5")
                .set("debug", "eos")
                .create_with_context(Recording(acks.clone()))
                .expect("producer");
            let (stop, topic, sent) = (stop.clone(), topic.to_string(), sent[id].clone());
            std::thread::spawn(move || produce(producer, &topic, (id, &sent), per_second, &stop))
        })
        .collect();
    Load {
        acks,
        stop,
        sent,
        threads,
    }
}

fn produce(
    producer: BaseProducer<Recording>,
    topic: &str,
    (id, sent): (usize, &AtomicU64),
    per_second: u64,
    stop: &AtomicBool,
) {
    let tick = Duration::from_millis(10);
    let per_tick = (per_second / 100).max(1);
    let mut n = 0u64;
    let mut fatal = false;
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        if !fatal {
            if let Some((code, reason)) = producer.client().fatal_error() {
                // The idempotent producer gave up: every later send fails. Seen by the test.
                let error = format!("producer {id}: fatal {code:?}: {reason}");
                producer.context().0.errors.lock().unwrap().push(error);
                fatal = true;
            }
        }
        for _ in 0..per_tick {
            let payload = format!("p{id}-{n}");
            let record = BaseRecord::<[u8], [u8]>::to(topic)
                .partition(0)
                .payload(payload.as_bytes());
            match producer.send(record) {
                Ok(()) => {
                    n += 1;
                    sent.store(n, Ordering::SeqCst);
                }
                // The queue is full while no leader takes records: try again next tick.
                Err((KafkaError::MessageProduction(_), _)) => break,
                Err((e, _)) => panic!("send failed: {e}"),
            }
        }
        producer.poll(tick.saturating_sub(started.elapsed()));
    }
    // Every record sent is delivered or failed before the thread ends (bounded).
    producer
        .flush(Duration::from_secs(120))
        .expect("every record delivered or failed within 120 s");
}

impl Load {
    /// How many records each producer has sent so far (marks for `first_of_sent_after`).
    pub fn sent(&self) -> Vec<u64> {
        self.sent.iter().map(|s| s.load(Ordering::SeqCst)).collect()
    }

    /// Stops sending and waits until every record sent was delivered or failed.
    pub fn finish(self) -> Arc<Acks> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("producer thread");
        }
        self.acks
    }
}

/// Reads partition 0 of `topic` up to its high watermark through `bootstrap` and asserts
/// every acknowledged payload is there exactly once and no payload appears twice.
/// Returns each payload read (each once).
pub fn assert_acknowledged_once(
    bootstrap: &str,
    topic: &str,
    acks: &Acks,
) -> BTreeMap<String, usize> {
    let reader = consumer(bootstrap, &[]);
    let end = end_offsets(&reader, topic, 1)[0] as usize;
    let read = consume(&reader, topic, 1, end, Duration::from_secs(60));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &read {
        let payload = String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default());
        *seen.entry(payload.into_owned()).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(dups.is_empty(), "records read more than once: {dups:?}");
    let acked: BTreeSet<String> = acks
        .acked
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.clone())
        .collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|p| !seen.contains_key(*p))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged records missing ({} read of {end}, {} acknowledged): {missing:?}",
        read.len(),
        acked.len()
    );
    assert_eq!(
        read.len(),
        end,
        "every record up to the high watermark read"
    );
    seen
}

/// The p-th percentile (0..=100) of `samples`, nearest rank.
pub fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}
