//! The topic a run uses: an existing one given by --topic, or one the tool creates through
//! the admin API; and the partitions' watermarks.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::cli::TopicSpec;
use crate::client::{Connection, REQUEST_TIMEOUT};

/// How long a freshly created topic may take to show all its partitions with leaders.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    /// True when this run created the topic.
    pub created: bool,
}

/// Low and high watermark of each partition, in partition order.
pub type Watermarks = Vec<(i64, i64)>;

pub fn fresh_name() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("bench-{}-{millis}", std::process::id())
}

/// Uses `requested` if it exists, else creates it (or a fresh name) as `spec` says;
/// returns once every partition has a leader.
pub fn ensure(conn: &Connection, requested: Option<&str>, spec: TopicSpec) -> Result<TopicInfo> {
    let partitions = spec.partitions;
    let probe: BaseConsumer = conn
        .consumer()
        .create()
        .context("creating a metadata client")?;
    probe
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .with_context(|| {
            format!(
                "no metadata from {} within {REQUEST_TIMEOUT:?}: is a broker listening there?",
                conn.bootstrap
            )
        })?;
    let existing = match requested {
        Some(name) => state(&probe, name)?.map(|_| name.to_string()),
        None => None,
    };
    let (name, created) = match existing {
        Some(name) => (name, false),
        None => {
            let name = requested.map_or_else(fresh_name, str::to_string);
            create(conn, &name, spec)?;
            (name, true)
        }
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match state(&probe, &name)? {
            Some(s)
                if s.listed > 0 && s.led == s.listed && (!created || s.listed == partitions) =>
            {
                return Ok(TopicInfo {
                    name,
                    partitions: s.listed,
                    created,
                });
            }
            _ if Instant::now() >= deadline => {
                bail!("topic {name} did not show all its partitions with leaders in metadata within {READY_TIMEOUT:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

struct TopicState {
    /// Partitions in metadata.
    listed: i32,
    /// Partitions in metadata that have a leader.
    led: i32,
}

/// What metadata says of the topic, or None when it does not exist.
fn state(probe: &BaseConsumer, name: &str) -> Result<Option<TopicState>> {
    let md = probe
        .fetch_metadata(Some(name), REQUEST_TIMEOUT)
        .with_context(|| format!("fetching metadata for {name}"))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == name) else {
        return Ok(None);
    };
    if let Some(e) = t.error() {
        match RDKafkaErrorCode::from(e) {
            RDKafkaErrorCode::UnknownTopicOrPartition => return Ok(None),
            // Not ready yet.
            RDKafkaErrorCode::LeaderNotAvailable => {
                return Ok(Some(TopicState { listed: 0, led: 0 }))
            }
            code => bail!("metadata for topic {name}: {code}"),
        }
    }
    let count =
        |n: usize| i32::try_from(n).map_err(|_| anyhow!("topic {name}: too many partitions"));
    let led = t
        .partitions()
        .iter()
        .filter(|p| p.error().is_none() && p.leader() >= 0)
        .count();
    Ok(Some(TopicState {
        listed: count(t.partitions().len())?,
        led: count(led)?,
    }))
}

fn create(conn: &Connection, name: &str, spec: TopicSpec) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        conn.admin().create().context("creating an admin client")?;
    let opts = AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT));
    let configs = spec.configs();
    let mut topic = NewTopic::new(
        name,
        spec.partitions,
        TopicReplication::Fixed(spec.replication_factor),
    );
    for (key, value) in &configs {
        topic = topic.set(key, value);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("starting a runtime for the admin client")?;
    let results = rt
        .block_on(async {
            tokio::time::timeout(
                REQUEST_TIMEOUT + Duration::from_secs(5),
                admin.create_topics([&topic], &opts),
            )
            .await
        })
        .map_err(|_| anyhow!("CreateTopics for {name} got no answer"))?
        .with_context(|| format!("creating topic {name}"))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => bail!("creating topic {t}: {code}"),
        }
    }
    Ok(())
}

/// Each partition's (low, high) watermarks.
pub fn watermarks(consumer: &BaseConsumer, topic: &TopicInfo) -> Result<Watermarks> {
    (0..topic.partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(&topic.name, p, REQUEST_TIMEOUT)
                .with_context(|| format!("fetching watermarks of {}/{p}", topic.name))
        })
        .collect()
}
