//! The controller's decisions on a committed image: fencing moves leaderships inside the
//! ISR only, a returning broker takes back leaderless partitions, registration epochs, and
//! a leader's ISR change taken only from the partition's current state.

use std::collections::BTreeMap;

use super::alter_partition::isr_changed;
use super::controller::{fence, on_heartbeat};
use super::rpc::{BrokerHeartbeat, IsrChange, Rejected};
use crate::actors::metadata::{MetadataImage, MetadataRecord, PartitionImage};

fn beat(id: i32, port: i32) -> BrokerHeartbeat {
    BrokerHeartbeat {
        id,
        host: "127.0.0.1".into(),
        port,
        rack: None,
        controller_addr: format!("127.0.0.1:{}", port + 100),
        starting: false,
        listeners: Vec::new(),
    }
}

/// Brokers 1..=3 registered; topic t: p0 [1,2,3], p1 [2,3,1], p2 [3,1,2] (ISR = replicas).
fn image() -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=3 {
        for record in on_heartbeat(&image, &beat(id, 9000 + id)) {
            image.apply(&record);
        }
    }
    image.apply(&MetadataRecord::TopicCreatedWithAssignments {
        name: "t".into(),
        id: 1,
        configs: BTreeMap::new(),
        assignments: vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]],
    });
    image
}

fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for record in records {
        image.apply(record);
    }
}

#[test]
fn registration_happens_once_and_a_moved_broker_gets_a_new_epoch() {
    let image = image();
    assert_eq!(image.brokers[&2].epoch, 1);
    assert!(on_heartbeat(&image, &beat(2, 9002)).is_empty());
    let moved = on_heartbeat(&image, &beat(2, 9999));
    assert!(matches!(
        moved[..],
        [MetadataRecord::BrokerRegistered {
            id: 2,
            epoch: 2,
            port: 9999,
            ..
        }]
    ));
    // New listeners are a new registration too: clients must be told the new endpoints.
    let mut relisted = beat(2, 9002);
    relisted.listeners = vec![crate::actors::metadata::BrokerListener {
        name: "EXTERNAL".into(),
        host: "broker2.example".into(),
        port: 19092,
    }];
    let records = on_heartbeat(&image, &relisted);
    assert!(
        matches!(&records[..], [MetadataRecord::BrokerRegistered { epoch: 2, listeners, .. }] if listeners == &relisted.listeners),
        "{records:?}"
    );
}

#[test]
fn fencing_moves_leaderships_inside_the_isr_and_shrinks_it() {
    let mut image = image();
    let records = fence(&image, 1);
    apply_all(&mut image, &records);
    assert!(image.brokers[&1].fenced);
    let t = &image.topics["t"].assignments;
    assert_eq!(
        t[0],
        PartitionImage {
            replicas: vec![1, 2, 3],
            leader: 2,
            leader_epoch: 1,
            isr: vec![2, 3],
            adding: Vec::new(),
            removing: Vec::new(),
            partition_epoch: 1,
        }
    );
    // Led by 2: only the ISR shrinks, the leader epoch stays.
    assert_eq!(
        (t[1].leader, t[1].leader_epoch, t[1].isr.clone()),
        (2, 0, vec![2, 3])
    );
    assert_eq!((t[2].leader, t[2].isr.clone()), (3, vec![3, 2]));
    assert_eq!(image.live_brokers().count(), 2);
}

#[test]
fn no_leader_is_elected_outside_the_isr_and_a_returning_member_takes_it_back() {
    let mut image = image();
    for id in [2, 3, 1] {
        let records = fence(&image, id);
        apply_all(&mut image, &records);
    }
    let p0 = image.topics["t"].assignments[0].clone();
    // 1 was the last in-sync replica: the partition is offline, its ISR kept as [1].
    assert_eq!((p0.leader, p0.isr.clone()), (-1, vec![1]));
    // Broker 2 (out of the ISR) comes back: it leads nothing (unclean election is off).
    let back = on_heartbeat(&image, &beat(2, 9002));
    apply_all(&mut image, &back);
    assert!(!image.brokers[&2].fenced);
    assert_eq!(image.topics["t"].assignments[0].leader, -1);
    // Broker 1, the last ISR member, comes back: it leads again, next epoch.
    let epoch = image.topics["t"].assignments[0].leader_epoch;
    let back = on_heartbeat(&image, &beat(1, 9001));
    apply_all(&mut image, &back);
    let p0 = &image.topics["t"].assignments[0];
    assert_eq!((p0.leader, p0.leader_epoch), (1, epoch + 1));
}

#[test]
fn an_isr_change_needs_the_current_leader_and_epoch_and_live_new_members() {
    let mut image = image();
    // Asked from the partition's current state (its partition epoch now).
    let change = |image: &MetadataImage, leader_id, leader_epoch, new_isr: &[i32]| IsrChange {
        topic: "t".into(),
        partition: 0,
        leader_id,
        leader_epoch,
        new_isr: new_isr.to_vec(),
        partition_epoch: image.topics["t"].assignments[0].partition_epoch,
    };
    let shrink = isr_changed(&image, &change(&image, 1, 0, &[1, 2])).unwrap();
    image.apply(&shrink);
    assert_eq!(image.topics["t"].assignments[0].isr, vec![1, 2]);
    assert_eq!(image.topics["t"].assignments[0].leader_epoch, 0);
    // Not the leader, or an old epoch: stale.
    assert!(matches!(
        isr_changed(&image, &change(&image, 2, 0, &[2])),
        Err(Rejected::Stale(_))
    ));
    assert!(matches!(
        isr_changed(&image, &change(&image, 1, 7, &[1])),
        Err(Rejected::Stale(_))
    ));
    // Without the leader, or with a non-replica: refused.
    for bad in [&[2][..], &[1, 9]] {
        assert!(matches!(
            isr_changed(&image, &change(&image, 1, 0, bad)),
            Err(Rejected::Invalid(_))
        ));
    }
    // A fenced broker is not added back.
    for record in fence(&image, 3) {
        image.apply(&record);
    }
    assert!(matches!(
        isr_changed(&image, &change(&image, 1, 0, &[1, 2, 3])),
        Err(Rejected::Invalid(_))
    ));
}

/// cluster_sim seed 588 (under a timing change): broker 2 came back from a power cut with
/// an empty log; its new incarnation was fenced, leaving p0's ISR, then unfenced. The
/// leader, 1, cut off from the controller, still worked from the ISR [1, 2, 3] and asked
/// to drop the lagging 3: [1, 2]. Same leader, same leader epoch, 2 unfenced: the change
/// was taken, and 2, its log empty, was in the ISR and later led. Acknowledged records
/// were lost. The partition epoch shows the change was asked from a state that is gone.
#[test]
fn an_isr_change_asked_from_an_older_state_of_the_partition_is_refused() {
    let mut image = image();
    let p0 = |image: &MetadataImage| image.topics["t"].assignments[0].clone();
    let seen = p0(&image);
    assert_eq!((seen.isr.clone(), seen.partition_epoch), (vec![1, 2, 3], 0));
    let restarted = BrokerHeartbeat {
        starting: true,
        ..beat(2, 9002)
    };
    let fenced = on_heartbeat(&image, &restarted);
    apply_all(&mut image, &fenced);
    let unfenced = on_heartbeat(&image, &beat(2, 9002));
    apply_all(&mut image, &unfenced);
    let now = p0(&image);
    assert!(!image.brokers[&2].fenced);
    assert_eq!((now.leader, now.leader_epoch), (1, seen.leader_epoch));
    assert_eq!(now.isr, vec![1, 3]);
    assert!(now.partition_epoch > seen.partition_epoch);
    // The leader's shrink, from the state it last heard of: INVALID_UPDATE_VERSION.
    let stale = IsrChange {
        topic: "t".into(),
        partition: 0,
        leader_id: 1,
        leader_epoch: seen.leader_epoch,
        new_isr: vec![1, 2],
        partition_epoch: seen.partition_epoch,
    };
    assert_eq!(
        isr_changed(&image, &stale),
        Err(Rejected::InvalidUpdateVersion {
            asked: seen.partition_epoch,
            current: now.partition_epoch,
        })
    );
    assert_eq!(p0(&image), now, "nothing changed");
    // From the current state (where a leader asks for 2 once it has caught up) it is taken.
    let current = IsrChange {
        partition_epoch: now.partition_epoch,
        ..stale
    };
    let record = isr_changed(&image, &current).unwrap();
    image.apply(&record);
    assert_eq!(p0(&image).isr, vec![1, 2]);
    assert_eq!(p0(&image).partition_epoch, now.partition_epoch + 1);
}

#[test]
fn a_restarted_broker_is_fenced_before_it_can_lead_again() {
    let mut image = image();
    let restarted = BrokerHeartbeat {
        starting: true,
        ..beat(1, 9001)
    };
    // Its new incarnation's first heartbeat: broker 1 loses p0 to 2 at the next epoch and
    // leaves every ISR.
    let records = on_heartbeat(&image, &restarted);
    apply_all(&mut image, &records);
    assert!(image.brokers[&1].fenced);
    let p0 = &image.topics["t"].assignments[0];
    assert_eq!(
        (p0.leader, p0.leader_epoch, p0.isr.clone()),
        (2, 1, vec![2, 3])
    );
    // A retried first heartbeat changes nothing more; the next one unfences it, as a
    // follower.
    assert!(on_heartbeat(&image, &restarted)
        .iter()
        .all(|r| matches!(r, MetadataRecord::BrokerUnfenced { id: 1 })));
    let back = on_heartbeat(&image, &beat(1, 9001));
    apply_all(&mut image, &back);
    assert!(!image.brokers[&1].fenced);
    assert_eq!(image.topics["t"].assignments[0].leader, 2);
    // A new broker's first heartbeat only registers it.
    let fresh = on_heartbeat(
        &image,
        &BrokerHeartbeat {
            starting: true,
            ..beat(4, 9004)
        },
    );
    assert!(matches!(
        fresh[..],
        [MetadataRecord::BrokerRegistered { id: 4, .. }]
    ));
}
