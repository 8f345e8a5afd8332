//! Certificates and keys reloaded without a restart when their files change (issue 14;
//! Kafka reloads on an AlterConfigs of `ssl.keystore.*`, this broker watches the files).
//!
//! Each TLS listener looks at its keystore and truststore files every
//! `ssl_reload_check_interval_ms`: a file whose modification time, size or inode differs
//! from the last look makes it build a new rustls `ServerConfig` from the settings, which
//! new connections then get (connections already open keep theirs). A change that does
//! not build (a half-written file, a key that does not match its certificate) keeps the
//! configuration in use; the listener says so once per change, and tries again at the
//! next change. The listener actor owns its `ServerTls`; this is only the look at the
//! files.

use std::path::PathBuf;
use std::time::SystemTime;

use super::tls::{ClientAuth, TlsSettings};

/// What a file looked like: enough to see a rewrite (in place or by rename).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &PathBuf) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// The PEM files a TLS configuration is read from, and how they looked when last seen.
#[derive(Debug, Clone)]
pub struct KeystoreFiles {
    files: Vec<(PathBuf, Option<Stamp>)>,
}

impl KeystoreFiles {
    /// The files `settings` names (values that hold PEM text themselves are no files), as
    /// they look now. Taken before the configuration is built from them, so a change in
    /// between is seen at the first look.
    pub fn of(settings: &TlsSettings) -> KeystoreFiles {
        let is_file = |v: &&String| !v.trim_start().starts_with("-----BEGIN");
        let mut paths: Vec<&String> = [
            &settings.ssl_keystore_location,
            &settings.ssl_keystore_certificate_chain,
            &settings.ssl_keystore_key,
        ]
        .into_iter()
        .flatten()
        .filter(is_file)
        .collect();
        if settings.ssl_client_auth != ClientAuth::None {
            paths.extend(settings.ssl_truststore_location.iter().filter(is_file));
        }
        let files = paths
            .into_iter()
            .map(|p| {
                let path = PathBuf::from(p);
                let seen = stamp(&path);
                (path, seen)
            })
            .collect();
        KeystoreFiles { files }
    }

    /// Whether any file looks different from the last look; remembers this look.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        for (path, seen) in &mut self.files {
            let now = stamp(path);
            if now != *seen {
                *seen = now;
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_rewrite_and_ignores_pem_text() {
        let dir = tempfile::tempdir().unwrap();
        let keystore = dir.path().join("keystore.pem");
        std::fs::write(&keystore, "one").unwrap();
        let settings = TlsSettings {
            ssl_keystore_location: Some(keystore.display().to_string()),
            ssl_keystore_key: Some("-----BEGIN PRIVATE KEY-----\n".into()),
            ..TlsSettings::default()
        };
        let mut files = KeystoreFiles::of(&settings);
        assert_eq!(files.files.len(), 1, "PEM text is no file");
        assert!(!files.changed());
        std::fs::write(&keystore, "two, longer").unwrap();
        assert!(files.changed());
        assert!(!files.changed(), "each change is seen once");
        let replacement = dir.path().join("new.pem");
        std::fs::write(&replacement, "two, longer").unwrap();
        std::fs::rename(&replacement, &keystore).unwrap();
        assert!(files.changed(), "a rename over the file is a change");
        std::fs::remove_file(&keystore).unwrap();
        assert!(files.changed(), "so is its removal");
    }
}
