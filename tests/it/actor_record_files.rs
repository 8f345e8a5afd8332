//! Record files at start: a group file corrupt before its end stops the group registry
//! from starting, naming the file and byte, instead of skipping the group or cutting its
//! committed offsets silently.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use broker::actors::group::GroupSettings;
use broker::actors::group_registry::{GroupRegistry, GroupRegistryArgs};
use broker::coordinator::group_store::{file_name, CommittedOffset, GroupRecord};
use broker::storage::sim::SimStorage;
use broker::storage::{RecordFile, Storage};
use ractor::Actor;

#[tokio::test]
async fn a_group_file_corrupt_before_its_end_stops_the_start() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let dir = PathBuf::from("/data/__groups");
    storage.create_dir_all(&dir).unwrap();
    let path = dir.join(file_name("g"));
    let (mut file, _, _) = RecordFile::<GroupRecord>::open(storage.clone(), path.clone()).unwrap();
    file.append(&GroupRecord::Group { id: "g".into() }).unwrap();
    let first = sim.file_contents(&path).unwrap().len();
    for offset in [5, 6, 7] {
        let committed = CommittedOffset {
            offset,
            leader_epoch: 0,
            metadata: None,
        };
        file.append(&GroupRecord::Committed {
            entries: vec![("t".into(), 0, committed)],
        })
        .unwrap();
    }
    let mut bytes = sim.file_contents(&path).unwrap();
    bytes[first + 10] ^= 0xff; // the first committed offset, two more after it
    sim.set_file_contents(&path, bytes.clone());

    let args = GroupRegistryArgs {
        dir: dir.clone(),
        storage: storage.clone(),
        settings: GroupSettings {
            initial_rebalance_delay: Duration::from_millis(0),
            min_session_timeout: Duration::from_millis(1000),
            max_session_timeout: Duration::from_secs(300),
            offsets_retention: Duration::from_secs(24 * 3600),
            consumer: Default::default(),
        },
        offsets_topic: None,
    };
    let err = match Actor::spawn(None, GroupRegistry, args).await {
        Ok((actor, _)) => {
            actor.stop(None);
            panic!("the group registry started over a corrupt group file");
        }
        Err(err) => format!("{err}"),
    };
    assert!(
        err.contains(&file_name("g")) && err.contains(&format!("byte {first}")),
        "the error names the file and byte {first}: {err}"
    );
    assert_eq!(
        sim.file_contents(Path::new(&path)).unwrap(),
        bytes,
        "nothing was cut"
    );
}
