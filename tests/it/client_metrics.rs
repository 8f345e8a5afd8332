//! Prometheus metrics on `metrics_listen`: after librdkafka produces 1,000 records with
//! acks=all, GET /metrics shows the Produce requests, the partition's log end offset and
//! high watermark, fsyncs, connections, per-actor handling times and the start time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::producer::BaseRecord;

use crate::harness::*;

/// The /metrics page, or None while the listener is not up.
pub fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut page = String::new();
    stream.read_to_string(&mut page).ok()?;
    page.starts_with("HTTP/1.1 200").then_some(page)
}

/// The value of the first sample whose name and labels contain every `parts`.
pub fn sample(page: &str, name: &str, parts: &[&str]) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_show_requests_offsets_and_fsyncs() {
    let port = free_port();
    let broker = TestBroker::start(&format!("metrics_listen = \"127.0.0.1:{port}\""));
    let (producer, deliveries) = producer(&broker.bootstrap(), &[("acks", "all")]);
    for i in 0..1000 {
        let value = format!("m-{i}");
        send(
            &producer,
            BaseRecord::to("metered")
                .partition(0)
                .payload(value.as_bytes()),
        );
    }
    flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 1000);

    // The gauges are set right after the partition answers: poll briefly for them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = scrape(port);
        let hw = page.as_deref().and_then(|p| {
            sample(
                p,
                "broker_high_watermark",
                &["topic=\"metered\"", "partition=\"0\""],
            )
        });
        if hw == Some(1000.0) {
            break page.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no high watermark of 1000 in 10 s: {page:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let at_least = |name: &str, parts: &[&str], min: f64| {
        let v = sample(&page, name, parts).unwrap_or_else(|| panic!("{name} {parts:?} missing"));
        assert!(v >= min, "{name} {parts:?} = {v} < {min}");
    };
    at_least("broker_log_end_offset", &["topic=\"metered\""], 1000.0);
    at_least(
        "broker_log_size_bytes",
        &["topic=\"metered\""],
        1000.0 * 3.0,
    );
    at_least("broker_requests_total", &["api=\"Produce\""], 1.0);
    at_least(
        "broker_request_duration_seconds_count",
        &["api=\"Produce\""],
        1.0,
    );
    at_least("broker_fsyncs_total", &[], 1.0);
    at_least("broker_fsync_duration_seconds_count", &[], 1.0);
    at_least("broker_connections", &[], 1.0);
    at_least("broker_network_bytes_in_total", &[], 1000.0);
    at_least("broker_network_bytes_out_total", &[], 1.0);
    // At least the append and the flush that made it durable.
    at_least(
        "broker_actor_handle_seconds_count",
        &["actor=\"partition\""],
        2.0,
    );
    at_least(
        "broker_actor_outstanding_requests",
        &["actor=\"partition\""],
        0.0,
    );
    at_least("broker_recovery_seconds", &[], 0.0);
}

/// Polls the page (bounded) until `ready` holds for it.
pub fn scrape_until(port: u16, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(page) = scrape(port).filter(|p| ready(p)) {
            return page;
        }
        assert!(Instant::now() < deadline, "no {what} in 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_deleted_topics_series_leave_the_page() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    let port = free_port();
    let broker = TestBroker::start(&format!("metrics_listen = \"127.0.0.1:{port}\""));
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "doomed", 2);
    create_topic(&bootstrap, "kept", 1);
    let (producer, deliveries) = producer(&bootstrap, &[]);
    for (topic, partition) in [("doomed", 0), ("doomed", 1), ("kept", 0)] {
        send_and_wait(
            &producer,
            &deliveries,
            BaseRecord::to(topic)
                .partition(partition)
                .payload(b"v".as_slice()),
        );
    }
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 3);
    let hw = |topic: &'static str, partition: &'static str| {
        move |page: &str| {
            let labels = [
                &format!("topic=\"{topic}\"")[..],
                &format!("partition=\"{partition}\""),
            ];
            sample(page, "broker_high_watermark", &labels) == Some(1.0)
        }
    };
    scrape_until(port, "series of every partition", |p| {
        hw("doomed", "0")(p) && hw("doomed", "1")(p) && hw("kept", "0")(p)
    });

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deleted = runtime
        .block_on(admin.delete_topics(&["doomed"], &AdminOptions::new()))
        .expect("delete_topics answered");
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");

    // DeleteTopics is answered once the partitions are deleted, their series with them.
    let page = scrape(port).expect("the page");
    let doomed: Vec<&str> = page
        .lines()
        .filter(|l| l.contains("topic=\"doomed\""))
        .collect();
    assert!(doomed.is_empty(), "series of a deleted topic: {doomed:?}");
    for name in [
        "broker_log_end_offset",
        "broker_high_watermark",
        "broker_log_start_offset",
        "broker_log_size_bytes",
    ] {
        assert!(
            sample(&page, name, &["topic=\"kept\""]).is_some(),
            "{name} of a kept topic"
        );
    }

    // A new topic of the same name starts its series afresh.
    create_topic(&bootstrap, "doomed", 1);
    send_and_wait(
        &producer,
        &deliveries,
        BaseRecord::to("doomed")
            .partition(0)
            .payload(b"v".as_slice()),
    );
    scrape_until(port, "series of the new topic", hw("doomed", "0"));
}

#[test]
fn the_metrics_endpoint_bounds_what_a_scraper_sends() {
    let port = free_port();
    let _broker = TestBroker::start(&format!("metrics_listen = \"127.0.0.1:{port}\""));
    scrape_until(port, "metrics page", |p| {
        p.contains("broker_recovery_seconds")
    });
    // A silent scraper holds only its own connection.
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(scrape(port).is_some());
    // A request head past 8 KiB is not read further: the connection is closed unanswered.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nX-Pad: ");
    let _ = stream.write_all(&[b'a'; 64 * 1024]);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(answer.is_empty(), "answered {} bytes", answer.len());
    assert!(scrape(port).is_some());
}
