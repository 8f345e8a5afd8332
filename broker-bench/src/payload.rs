//! Message payloads: random capital letters (so compression has something realistic to do,
//! as Kafka's own perf tool does), a different window of them for each message, and for
//! end-to-end latency the send time in the first 8 bytes (nanoseconds since the UNIX epoch,
//! u64 big-endian).

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of random text the per-message windows are taken from, beyond the message size.
const POOL_EXTRA: usize = 64 * 1024;
/// Bytes at the start of a stamped payload.
pub const STAMP_LEN: usize = 8;

pub struct Payloads {
    pool: Vec<u8>,
    size: usize,
    scratch: Vec<u8>,
}

impl Payloads {
    pub fn new(size: usize, seed: u64) -> Payloads {
        let mut state = seed | 1;
        let pool = (0..size + POOL_EXTRA)
            .map(|_| {
                // xorshift64: cheap, and good enough to defeat trivial compression.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b'A' + (state % 26) as u8
            })
            .collect();
        Payloads {
            pool,
            size,
            scratch: vec![0; size],
        }
    }

    /// The payload of message `n`.
    pub fn plain(&self, n: u64) -> &[u8] {
        let start = (n.wrapping_mul(7919) % POOL_EXTRA as u64) as usize;
        &self.pool[start..start + self.size]
    }

    /// The payload of message `n` with `nanos` in its first 8 bytes (the size is at least 8).
    pub fn stamped(&mut self, n: u64, nanos: u64) -> &[u8] {
        let start = (n.wrapping_mul(7919) % POOL_EXTRA as u64) as usize;
        self.scratch
            .copy_from_slice(&self.pool[start..start + self.size]);
        write_stamp(&mut self.scratch, nanos);
        &self.scratch
    }
}

pub fn write_stamp(payload: &mut [u8], nanos: u64) {
    if let Some(head) = payload.get_mut(..STAMP_LEN) {
        head.copy_from_slice(&nanos.to_be_bytes());
    }
}

/// The send time a payload carries, if it is long enough to carry one.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    let head: [u8; STAMP_LEN] = payload.get(..STAMP_LEN)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// Nanoseconds since the UNIX epoch (0 for a clock set before 1970).
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let mut p = Payloads::new(100, 42);
        let nanos = 1_700_000_000_123_456_789;
        let stamped = p.stamped(5, nanos).to_vec();
        assert_eq!(stamped.len(), 100);
        assert_eq!(read_stamp(&stamped), Some(nanos));
        assert_eq!(&stamped[..8], &nanos.to_be_bytes());
        assert_eq!(read_stamp(&stamped[..7]), None);
    }

    #[test]
    fn payloads_are_letters_and_vary() {
        let p = Payloads::new(100, 7);
        assert!(p.plain(0).iter().all(|b| b.is_ascii_uppercase()));
        assert_eq!(p.plain(3).len(), 100);
        assert_ne!(p.plain(0), p.plain(1));
    }
}
