//! Idempotent producers (librdkafka, enable.idempotence=true) while every connection is
//! cut again and again mid-stream: retried batches are written once, order is kept, and
//! the count is exact.

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::producer::BaseRecord;

use crate::client_durability::{assert_exactly, value};
use crate::harness::*;
use crate::proxy::CuttingProxy;

#[test]
fn idempotent_producer_through_dropped_connections_writes_each_record_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    // Clients are told the proxy's address, so all their traffic crosses it.
    let broker = TestBroker::start(&format!("advertised_listener = \"127.0.0.1:{proxy_port}\""));
    let proxy = CuttingProxy::start(listener, broker.port());
    let bootstrap = format!("127.0.0.1:{}", proxy.port());
    create_topic(&bootstrap, "exactly-once", 3);

    let (producer, deliveries) = producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("message.timeout.ms", "120000"),
        ],
    );
    let count = 30_000;
    let rounds = 6;
    let mut cuts = 0;
    for round in 0..rounds {
        for i in round * (count / rounds)..(round + 1) * (count / rounds) {
            let v = value(i, 100);
            send(
                &producer,
                BaseRecord::to("exactly-once")
                    .partition((i % 3) as i32)
                    .key(b"k".as_slice())
                    .payload(v.as_slice()),
            );
        }
        if round + 1 == rounds {
            break;
        }
        // Once this round's records are moving (some acknowledged, the rest in flight),
        // cut every connection: requests written, answers lost.
        let before = deliveries.ok.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        while deliveries.ok.load(Ordering::SeqCst) == before && Instant::now() < deadline {
            producer.poll(Duration::from_millis(1));
        }
        if proxy.cut_all() > 0 {
            cuts += 1;
        }
    }
    flush(&producer);
    // Under load a round can find no connection open at the instant of its cut.
    assert!(
        cuts >= 3,
        "connections were cut mid-stream only {cuts} times"
    );
    assert_eq!(
        deliveries.failed.load(Ordering::SeqCst),
        0,
        "{:?}",
        deliveries.first_error.lock().unwrap()
    );
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), count);
    let consumer = consumer(&bootstrap, &[]);
    let records = consume(&consumer, "exactly-once", 3, count, Duration::from_secs(60));
    assert_exactly(&records, 3, count);
    println!("{count} records exactly once across {cuts} rounds of cut connections");
}
