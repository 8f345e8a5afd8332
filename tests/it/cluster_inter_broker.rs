//! A secured cluster of three broker processes: clients on a SASL_PLAINTEXT listener, the
//! brokers' own traffic on a SASL_SSL inter-broker listener (SCRAM-SHA-512 as User:broker,
//! a super user) and the metadata quorum over TLS with a certificate required of every
//! peer, whose principal must be a super user. Replication works only through the
//! broker's login: with a wrong password the followers cannot fetch, acks=all with
//! min.insync.replicas=3 fails and each follower says so once. A client without
//! CLUSTER_ACTION cannot fetch as a follower. Transaction markers cross the same listener.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::VoteRequest;
use openraft::{BasicNode, Vote};
use rdkafka::producer::{BaseRecord, Producer};

use broker::cluster::tcp_transport::{QuorumConnect, TcpNetwork, TokioConnect};
use broker::security::scram::ScramMechanism;
use broker::security::tls::TlsSettings;
use broker::sockets::Network;

use crate::actor_sasl::{alter, plain_login, upsert};
use crate::certs::TestCerts;
use crate::client_transactions::payloads;
use crate::cluster_metadata::{quorum_voters, SLACK};
use crate::cluster_transactions::{assert_read_committed, write_transaction};
use crate::harness::{self, free_port, TestBroker};
use crate::hostile_wire::{text, topic, Wire};

const BROKER_PASSWORD: &str = "broker-secret";

/// Three secured brokers, logging in to each other as User:broker with `password`.
struct SecureCluster {
    brokers: Vec<TestBroker>,
    /// Each node's quorum transport (TLS).
    controllers: Vec<u16>,
    /// Each broker's SASL_SSL inter-broker listener.
    internal: Vec<u16>,
}

fn secure_cluster(certs: &TestCerts, password: &str) -> SecureCluster {
    let controllers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let internal: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = quorum_voters(&controllers);
    let brokers = (1..=3)
        .map(|id: usize| {
            TestBroker::start_with_port(|port| {
                format!(
                    "node_id = {id}\ncontroller_quorum_voters = \"{voters}\"\n\
                     broker_heartbeat_interval_ms = 200\nbroker_session_timeout_ms = 2000\n\
                     replica_lag_time_max_ms = 2000\n\
                     listeners = \"CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{}\"\n\
                     listener_security_protocol_map = \"CLIENT:SASL_PLAINTEXT,INTERNAL:SASL_SSL,CONTROLLER:SSL\"\n\
                     inter_broker_listener_name = \"INTERNAL\"\n\
                     controller_listener_names = \"CONTROLLER\"\n\
                     sasl_mechanism_inter_broker_protocol = \"SCRAM-SHA-512\"\n\
                     sasl_inter_broker_jaas_config = 'org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"{password}\";'\n\
                     ssl_keystore_location = \"{}\"\n\
                     ssl_truststore_location = \"{}\"\n\
                     authorizer_class_name = \"org.apache.kafka.metadata.authorizer.StandardAuthorizer\"\n\
                     super_users = \"User:broker;User:admin\"\n\
                     ssl_principal_mapping_rules = \"RULE:^CN=([^,]*).*$/$1/,DEFAULT\"\n\
                     connection_failed_authentication_delay_ms = 10\n\
                     [sasl_plain_users]\nadmin = \"admin-secret\"\nalice = \"alice-secret\"",
                    internal[id - 1],
                    certs.broker_keystore.display(),
                    certs.ca.display(),
                )
            })
        })
        .collect();
    SecureCluster {
        brokers,
        controllers,
        internal,
    }
}

fn admin(broker: &TestBroker) -> Wire {
    let (wire, r) = plain_login(broker.port(), "admin", "admin-secret");
    assert_eq!(r.error_code, 0);
    wire
}

/// Polls `check` on an admin connection to `broker` until it holds, within SLACK.
fn wait_for(broker: &TestBroker, what: &str, check: impl Fn(&mut Wire) -> bool) {
    let deadline = Instant::now() + SLACK;
    let mut wire = admin(broker);
    while !check(&mut wire) {
        assert!(
            Instant::now() < deadline,
            "{what} within {SLACK:?}:\n{}",
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metadata(wire: &mut Wire) -> MetadataResponse {
    wire.call(12, &MetadataRequest::default().with_topics(None))
        .expect("Metadata answered")
}

/// The ISR of partition 0 of `name`, as `wire`'s broker knows it.
fn isr(wire: &mut Wire, name: &str) -> Vec<i32> {
    let r = metadata(wire);
    let t = r.topics.iter().find(|t| t.name == Some(topic(name)));
    t.and_then(|t| t.partitions.first())
        .map(|p| p.isr_nodes.iter().map(|b| b.0).collect())
        .unwrap_or_default()
}

/// Every broker registered (which took the TLS quorum), then User:broker's SCRAM-SHA-512
/// credential made through the quorum, then an RF=3 topic with min.insync.replicas=3.
fn prepare(brokers: &[TestBroker], name: &str) {
    wait_for(&brokers[0], "three brokers registered", |w| {
        metadata(w).brokers.len() == 3
    });
    let credential = upsert("broker", ScramMechanism::Sha512, BROKER_PASSWORD, 4096);
    wait_for(&brokers[0], "the broker's credential made", |w| {
        alter(w, vec![], vec![credential.clone()]) == vec![("broker".to_string(), 0)]
    });
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(1)
            .with_replication_factor(3)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(text("min.insync.replicas"))
                .with_value(Some(text("3")))])]);
    wait_for(&brokers[0], "the topic created", |w| {
        let r = w.call(5, &create).expect("CreateTopics answered");
        r.topics[0].error_code == 0
    });
    wait_for(&brokers[0], "the full ISR", |w| isr(w, name).len() == 3);
}

/// The settings of a client logged in as admin. In a cluster a broker registers one
/// address, its inter-broker listener's, and Metadata gives clients the others' at that
/// address: so clients speak SASL_SSL to the inter-broker listeners.
fn admin_settings(
    cluster: &SecureCluster,
    certs: &TestCerts,
) -> (String, Vec<(&'static str, String)>) {
    let bootstrap: Vec<String> = cluster
        .internal
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let settings = vec![
        ("security.protocol", "sasl_ssl".to_string()),
        ("ssl.ca.location", certs.ca.display().to_string()),
        ("sasl.mechanism", "PLAIN".to_string()),
        ("sasl.username", "admin".to_string()),
        ("sasl.password", "admin-secret".to_string()),
    ];
    (bootstrap.join(","), settings)
}

/// An acks=all producer logged in as admin, with `extra` settings.
fn admin_producer(
    cluster: &SecureCluster,
    certs: &TestCerts,
    extra: &[(&str, &str)],
) -> (harness::CountingProducer, Arc<harness::Deliveries>) {
    let (bootstrap, settings) = admin_settings(cluster, certs);
    let mut all: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("acks", "all"));
    all.extend_from_slice(extra);
    harness::producer(&bootstrap, &all)
}

/// A follower's Fetch (replica_id 2) from a principal that is not a super user and has
/// no CLUSTER_ACTION.
fn follower_fetch_as_alice(broker: &TestBroker, name: &str) -> i16 {
    let (mut alice, r) = plain_login(broker.port(), "alice", "alice-secret");
    assert_eq!(r.error_code, 0);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(2))
        .with_max_wait_ms(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1024)])]);
    alice.call(12, &req).expect("Fetch answered").error_code
}

#[test]
fn brokers_replicate_over_sasl_ssl_as_their_own_principal() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path());
    let cluster = secure_cluster(&certs, BROKER_PASSWORD);
    let brokers = &cluster.brokers;
    prepare(brokers, "t");

    // acks=all with min.insync.replicas=3: answered only once both followers fetched the
    // records, over SASL_SSL as User:broker.
    let (producer, deliveries) =
        admin_producer(&cluster, &certs, &[("message.timeout.ms", "20000")]);
    for i in 0..20u32 {
        let value = i.to_be_bytes();
        harness::send(
            &producer,
            BaseRecord::<[u8], [u8]>::to("t").payload(&value[..]),
        );
    }
    harness::flush(&producer);
    assert_eq!(
        (
            deliveries.ok.load(Ordering::SeqCst),
            deliveries.failed.load(Ordering::SeqCst)
        ),
        (20, 0),
        "{}",
        brokers[0].logs()
    );
    let mut wire = admin(&brokers[0]);
    assert_eq!(isr(&mut wire, "t").len(), 3);

    // Item 3: a client principal without CLUSTER_ACTION is no follower.
    for broker in brokers {
        assert_eq!(
            follower_fetch_as_alice(broker, "t"),
            ResponseError::ClusterAuthorizationFailed.code()
        );
    }
    for broker in brokers {
        assert!(
            !broker.logs().contains(BROKER_PASSWORD),
            "the password is never logged"
        );
    }

    // The quorum's transport: a peer whose certificate maps to a super user (User:broker)
    // is answered. One with another certificate from the same CA (User:client), without a
    // certificate, or without TLS is refused, each refusal said once at warn.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let vote = |connect: QuorumConnect| {
        runtime.block_on(vote_at(TcpNetwork::new(connect), cluster.controllers[0]))
    };
    let peer = |keystore: Option<(&std::path::Path, &std::path::Path)>| {
        let settings = TlsSettings {
            ssl_keystore_certificate_chain: keystore.map(|k| k.0.display().to_string()),
            ssl_keystore_key: keystore.map(|k| k.1.display().to_string()),
            ssl_truststore_location: Some(certs.ca.display().to_string()),
            ..Default::default()
        };
        QuorumConnect::new(Network::Tcp, Some(settings.peer_connector().unwrap()))
    };
    let as_broker = TlsSettings {
        ssl_keystore_location: Some(certs.broker_keystore.display().to_string()),
        ssl_truststore_location: Some(certs.ca.display().to_string()),
        ..Default::default()
    };
    let as_broker = QuorumConnect::new(Network::Tcp, Some(as_broker.peer_connector().unwrap()));
    assert!(vote(as_broker), "{}", brokers[0].logs());
    for _ in 0..3 {
        assert!(!vote(peer(Some((&certs.client_cert, &certs.client_key)))));
    }
    assert!(!vote(peer(None)));
    assert!(!runtime.block_on(vote_at(
        TcpNetwork::new(TokioConnect),
        cluster.controllers[0]
    )));
    let logs = brokers[0].logs();
    let warned = |text: &str| {
        logs.lines()
            .filter(|l| l.contains("WARN") && l.contains(text))
            .count()
    };
    assert_eq!(
        warned("Refused a quorum connection from User:client, which is not one of super_users"),
        1,
        "{logs}"
    );
    assert!(
        warned("Refused a quorum connection whose TLS handshake failed") >= 1,
        "{logs}"
    );
}

/// Whether node 1 at `port` answers a (stale) vote request sent through `network`.
async fn vote_at<C: broker::cluster::tcp_transport::Connect>(
    mut network: TcpNetwork<C>,
    port: u16,
) -> bool {
    let node = BasicNode {
        addr: format!("127.0.0.1:{port}"),
    };
    let mut client = network.new_client(1, &node).await;
    let request = VoteRequest::new(Vote::new(0, 2), None);
    let answer = client
        .vote(request, RPCOption::new(Duration::from_secs(5)))
        .await;
    answer.is_ok_and(|r| !r.vote_granted)
}

#[test]
fn with_a_wrong_broker_password_followers_cannot_replicate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path());
    let cluster = secure_cluster(&certs, "not-the-password");
    let brokers = &cluster.brokers;
    prepare(brokers, "t");

    // The followers' logins fail, so they leave the ISR, and acks=all with
    // min.insync.replicas=3 cannot be answered.
    wait_for(&brokers[0], "the ISR shrunk to the leader", |w| {
        isr(w, "t").len() == 1
    });
    let (producer, deliveries) =
        admin_producer(&cluster, &certs, &[("message.timeout.ms", "3000")]);
    harness::send(
        &producer,
        BaseRecord::<[u8], [u8]>::to("t").payload(&b"x"[..]),
    );
    harness::flush(&producer);
    assert_eq!(
        (
            deliveries.ok.load(Ordering::SeqCst),
            deliveries.failed.load(Ordering::SeqCst)
        ),
        (0, 1)
    );

    // Each follower warned once, however many fetch rounds failed.
    let mut wire = admin(&brokers[0]);
    let leader = metadata(&mut wire)
        .topics
        .iter()
        .find(|t| t.name == Some(topic("t")))
        .map(|t| t.partitions[0].leader_id.0)
        .unwrap();
    for (i, broker) in brokers.iter().enumerate() {
        let logs = broker.logs();
        let warnings = logs
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("Replica fetches from a broker fail"))
            .count();
        let expected = if i as i32 + 1 == leader { 0 } else { 1 };
        assert_eq!(warnings, expected, "broker {}:\n{logs}", i + 1);
        assert!(
            !logs.contains("not-the-password"),
            "the password is never logged"
        );
    }
}

/// Transaction markers go from the coordinator to each partition's leader over the
/// inter-broker listener (SASL_SSL, SCRAM-SHA-512 as User:broker): with partitions led by
/// all three brokers, some leader is always another broker than the coordinator, and a
/// read_committed consumer reads a committed transaction only once its markers are written
/// there (without them its records stay above the last stable offset).
#[test]
fn transaction_markers_cross_a_sasl_ssl_inter_broker_listener() {
    const TOPIC: &str = "tx";
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path());
    let cluster = secure_cluster(&certs, BROKER_PASSWORD);
    let brokers = &cluster.brokers;
    prepare(brokers, "t");
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic(TOPIC))
            .with_num_partitions(3)
            .with_replication_factor(3)]);
    wait_for(&brokers[0], "the topic created", |w| {
        let r = w.call(5, &create).expect("CreateTopics answered");
        r.topics[0].error_code == 0
    });
    wait_for(&brokers[0], "three partitions led by three brokers", |w| {
        let r = metadata(w);
        r.topics.iter().any(|t| {
            let leaders: BTreeSet<i32> = t.partitions.iter().map(|p| p.leader_id.0).collect();
            t.name == Some(topic(TOPIC))
                && leaders == BTreeSet::from([1, 2, 3])
                && t.partitions.iter().all(|p| p.isr_nodes.len() == 3)
        })
    });

    let (producer, _) = admin_producer(
        &cluster,
        &certs,
        &[
            ("transactional.id", "markers-over-sasl-ssl"),
            ("transaction.timeout.ms", "60000"),
            ("message.timeout.ms", "30000"),
        ],
    );
    let timeout = Duration::from_secs(30);
    producer
        .init_transactions(timeout)
        .expect("init_transactions");
    let committed = write_transaction(&producer, TOPIC, "committed", 10);
    producer.commit_transaction(timeout).expect("commit");
    let aborted = write_transaction(&producer, TOPIC, "aborted", 10);
    producer.abort_transaction(timeout).expect("abort");
    let last = write_transaction(&producer, TOPIC, "last", 10);
    producer.commit_transaction(timeout).expect("commit");

    let (bootstrap, settings) = admin_settings(&cluster, &certs);
    let mut config: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    config.push(("isolation.level", "read_committed"));
    let reader = harness::consumer(&bootstrap, &config);
    let expected: BTreeSet<String> = committed.union(&last).cloned().collect();
    let seen = payloads(&harness::consume(
        &reader,
        TOPIC,
        3,
        expected.len(),
        timeout,
    ));
    assert_read_committed(seen, &expected, &aborted, brokers);
}
