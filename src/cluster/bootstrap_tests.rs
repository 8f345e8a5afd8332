//! The SCRAM bootstrap file on the simulated disk: written, replaced, read back, and read
//! strictly (every damage an error, never a panic); its writes durable.

use std::path::Path;
use std::sync::Arc;

use super::bootstrap::{
    add_user, bootstrap_path, read, BootstrapError, PendingBootstrap, MAX_FILE_BYTES,
};
use super::AppliedImage;
use crate::actors::metadata::{offline_credential, MetadataImage, MetadataRecord};
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::storage::sim::SimStorage;
use crate::storage::{RecordFile, Storage};

const DATA: &str = "/data";

fn data() -> &'static Path {
    Path::new(DATA)
}

/// The credential a bootstrap record holds.
fn credential(record: &MetadataRecord) -> (String, ScramMechanism, ScramCredential) {
    let (user, mechanism, c) = record
        .scram_credential()
        .unwrap_or_else(|| panic!("not a credential: {record:?}"));
    (user.to_string(), mechanism, c)
}

/// `broker user add` on the simulated disk.
fn add(
    sim: &SimStorage,
    user: &str,
    m: ScramMechanism,
    password: &[u8],
    iterations: i32,
) -> Result<(), BootstrapError> {
    let record = offline_credential(user, m, password, iterations)?;
    add_user(Arc::new(sim.clone()), data(), record)
}

fn records(sim: &SimStorage) -> Vec<MetadataRecord> {
    read(sim, data()).unwrap().expect("a bootstrap file")
}

#[test]
fn users_are_written_read_back_and_replaced() {
    let sim = SimStorage::new();
    assert!(read(&sim, data()).unwrap().is_none(), "no file yet");
    add(&sim, "zed", ScramMechanism::Sha512, b"z-pass", 4096).unwrap();
    add(&sim, "admin", ScramMechanism::Sha512, b"a-pass", 8192).unwrap();
    add(&sim, "admin", ScramMechanism::Sha256, b"a-pass", 4096).unwrap();
    let read_back: Vec<_> = records(&sim).iter().map(credential).collect();
    let names: Vec<_> = read_back.iter().map(|(u, m, _)| (u.as_str(), *m)).collect();
    assert_eq!(
        names,
        [
            ("admin", ScramMechanism::Sha256),
            ("admin", ScramMechanism::Sha512),
            ("zed", ScramMechanism::Sha512)
        ]
    );
    let (_, _, admin) = &read_back[1];
    assert_eq!(admin.iterations, 8192);
    assert!(admin.matches_password(ScramMechanism::Sha512, b"a-pass"));
    assert!(read_back[2]
        .2
        .matches_password(ScramMechanism::Sha512, b"z-pass"));

    // Again for the same user and mechanism: that entry is replaced, with a new salt.
    add(&sim, "admin", ScramMechanism::Sha512, b"new-pass", 4096).unwrap();
    let after: Vec<_> = records(&sim).iter().map(credential).collect();
    assert_eq!(after.len(), 3);
    let (user, mechanism, replaced) = &after[1];
    assert_eq!(
        (user.as_str(), *mechanism),
        ("admin", ScramMechanism::Sha512)
    );
    assert!(replaced.matches_password(ScramMechanism::Sha512, b"new-pass"));
    assert!(!replaced.matches_password(ScramMechanism::Sha512, b"a-pass"));
    assert_ne!(replaced.salt, admin.salt);
    assert_eq!(after[0], read_back[0]);
    assert_eq!(after[2], read_back[2]);
}

#[test]
fn the_password_is_not_in_the_file() {
    let sim = SimStorage::new();
    let password = b"a-very-recognizable-password";
    add(&sim, "admin", ScramMechanism::Sha512, password, 4096).unwrap();
    let bytes = sim.file_contents(&bootstrap_path(data())).unwrap();
    assert!(!bytes.windows(password.len()).any(|w| w == password));
}

#[test]
fn what_user_add_refuses_writes_nothing() {
    let sim = SimStorage::new();
    let m = ScramMechanism::Sha512;
    for (user, password, iterations) in [
        ("", &b"p"[..], 4096),
        ("admin", &b""[..], 4096),
        ("admin", &b"p"[..], 4095),
        ("admin", &b"p"[..], 16385),
    ] {
        let err = add(&sim, user, m, password, iterations).unwrap_err();
        assert!(matches!(err, BootstrapError::Invalid(_)), "{err}");
    }
    assert!(read(&sim, data()).unwrap().is_none());
}

/// Each write is durable before `add_user` returns: the file's and the directory's fsyncs
/// are made and checked (a failing one is an error, and the old file stays in force).
#[test]
fn writes_are_fsynced_and_a_failed_fsync_is_an_error() {
    let sim = SimStorage::new();
    sim.track_directory_entries();
    add(&sim, "admin", ScramMechanism::Sha512, b"one", 4096).unwrap();
    sim.power_cut();
    let kept = records(&sim);
    assert_eq!(kept.len(), 1, "the credential survives a power cut");

    sim.fail_fsync(Some("bootstrap".into()));
    let err = add(&sim, "bob", ScramMechanism::Sha512, b"two", 4096);
    assert!(err.is_err(), "a failed file fsync is an error");
    sim.clear_faults();
    assert_eq!(records(&sim), kept, "the old file is still in force");

    sim.fail_dir_sync("__cluster_metadata");
    let err = add(&sim, "bob", ScramMechanism::Sha512, b"two", 4096);
    assert!(err.is_err(), "a failed directory fsync is an error");
    sim.clear_faults();
}

#[test]
fn a_damaged_file_is_an_error_never_a_panic() {
    let sim = SimStorage::new();
    add(&sim, "admin", ScramMechanism::Sha512, b"a", 4096).unwrap();
    add(&sim, "bob", ScramMechanism::Sha256, b"b", 4096).unwrap();
    let path = bootstrap_path(data());
    let good = sim.file_contents(&path).unwrap();

    // Every single flipped byte and every cut is reported (a torn tail included: the file
    // is only ever renamed into place whole).
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        sim.set_file_contents(&path, bad);
        let err = read(&sim, data()).expect_err("a flipped byte is found");
        assert!(
            matches!(
                err,
                BootstrapError::Corrupt { .. } | BootstrapError::BadRecord { .. }
            ),
            "byte {at}: {err}"
        );
    }
    for len in 1..good.len() {
        sim.set_file_contents(&path, good[..len].to_vec());
        let err = read(&sim, data()).expect_err("a cut file is found");
        assert!(
            matches!(err, BootstrapError::Corrupt { .. }),
            "{len}: {err}"
        );
    }
    // Garbage of every shape: an error or a checked read, never a panic.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..500 {
        let len = round % 300;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        sim.set_file_contents(&path, bytes);
        let _ = read(&sim, data());
    }
    // A length prefix claiming 4 GiB allocates nothing of the kind.
    sim.set_file_contents(&path, vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1]);
    assert!(read(&sim, data()).is_err());

    // A damaged file is not overwritten by the next user add.
    let mut bad = good.clone();
    bad[10] ^= 1;
    sim.set_file_contents(&path, bad.clone());
    let err = add(&sim, "carol", ScramMechanism::Sha512, b"c", 4096);
    assert!(err.is_err());
    assert_eq!(sim.file_contents(&path).unwrap(), bad);
}

#[test]
fn a_file_too_large_or_holding_other_records_is_refused() {
    let sim = SimStorage::new();
    let path = bootstrap_path(data());
    sim.set_file_contents(&path, vec![0; MAX_FILE_BYTES as usize + 1]);
    assert!(matches!(
        read(&sim, data()),
        Err(BootstrapError::TooLarge { .. })
    ));

    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let write = |records: &[MetadataRecord]| {
        sim.set_file_contents(&path, Vec::new());
        let (mut file, _, _) = RecordFile::open(storage.clone(), path.clone()).unwrap();
        let end = [MetadataRecord::ScramBootstrapped];
        file.rewrite(&[records, &end].concat()).unwrap();
        read(&sim, data())
    };
    let upsert = |user: &str, salt: Vec<u8>, key: usize, iterations: i32| {
        MetadataRecord::ScramCredentialUpserted {
            user: user.into(),
            mechanism: ScramMechanism::Sha512,
            salt,
            stored_key: vec![1; key],
            server_key: vec![2; key],
            iterations,
        }
    };
    assert_eq!(
        write(&[upsert("a", vec![1], 64, 4096)])
            .unwrap()
            .unwrap()
            .len(),
        1
    );
    // Without its end record the file is cut short.
    sim.set_file_contents(&path, Vec::new());
    let (mut file, _, _) = RecordFile::open(storage.clone(), path.clone()).unwrap();
    file.rewrite(&[upsert("a", vec![1], 64, 4096)]).unwrap();
    assert!(matches!(
        read(&sim, data()),
        Err(BootstrapError::Corrupt { .. })
    ));
    for bad in [
        MetadataRecord::TopicDeleted { name: "t".into() },
        MetadataRecord::ScramBootstrapped,
        upsert("", vec![1], 64, 4096),
        upsert(&"u".repeat(1025), vec![1], 64, 4096),
        upsert("a", vec![], 64, 4096),
        upsert("a", vec![1; 1025], 64, 4096),
        upsert("a", vec![1], 32, 4096),
        upsert("a", vec![1], 64, 100),
    ] {
        let result = write(&[upsert("ok", vec![1], 64, 4096), bad.clone()]);
        assert!(
            matches!(result, Err(BootstrapError::BadRecord { index: 1, .. })),
            "{bad:?}: {result:?}"
        );
    }
}

#[test]
fn the_marker_sets_the_image_flag_and_survives_compaction() {
    let mut image = MetadataImage::default();
    assert!(!image.scram_bootstrapped);
    image.apply(&MetadataRecord::ScramBootstrapped);
    assert!(image.scram_bootstrapped);
    assert_eq!(MetadataImage::replay(&image.records()), image);
    // The flag travels in snapshots (the serialized image).
    let bytes = rmp_serde::to_vec(&image).unwrap();
    let back: MetadataImage = rmp_serde::from_slice(&bytes).unwrap();
    assert!(back.scram_bootstrapped);
}

#[test]
fn a_voter_whose_file_was_not_applied_drops_it_once_bootstrapped() {
    let sim = SimStorage::new();
    add(&sim, "admin", ScramMechanism::Sha512, b"a", 4096).unwrap();
    let mut pending = PendingBootstrap::load(&sim, data()).unwrap();
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(AppliedImage::default()));
    pending.follow(&rx);
    assert!(
        !pending.is_done(),
        "waits while the cluster is not bootstrapped"
    );
    // The image after one record, as the quorum would publish it.
    let publish = |record: MetadataRecord| {
        let mut image = MetadataImage::default();
        image.apply(&record);
        let applied = AppliedImage {
            last_applied: None,
            image,
        };
        tx.send(Arc::new(applied)).unwrap();
    };
    publish(MetadataRecord::ScramBootstrapped);
    pending.follow(&rx);
    assert!(pending.is_done());

    // Brokers registered without any bootstrap (a first leader without a file): the
    // metadata is not new either.
    let mut pending = PendingBootstrap::load(&sim, data()).unwrap();
    publish(MetadataRecord::BrokerRegistered {
        id: 1,
        epoch: 1,
        host: "h".into(),
        port: 1,
        rack: None,
        listeners: Vec::new(),
    });
    pending.follow(&rx);
    assert!(pending.is_done());

    // A damaged file stops the controller's start.
    let path = bootstrap_path(data());
    let mut bytes = sim.file_contents(&path).unwrap();
    bytes[9] ^= 1;
    sim.set_file_contents(&path, bytes);
    assert!(PendingBootstrap::load(&sim, data()).is_err());
}
