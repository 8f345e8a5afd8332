//! The open-file limit (RLIMIT_NOFILE): raised to the hard limit at start, and the number
//! of client connections it leaves room for. Every connection costs one descriptor; the
//! partitions need theirs too (a log, an offset index and a time index per open segment,
//! the record files), so connections get only part of the limit.

use tracing::{info, warn};

/// (soft, hard) limit on open files of this process; None where it cannot be read.
pub fn nofile() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

/// Raises the soft limit to the hard one (the usual soft limit, 1,024, is too few for a
/// broker with many clients; the hard one is what the administrator allowed). Logs both.
/// Returns the soft limit in force afterwards.
pub fn raise_nofile() -> Option<u64> {
    let (soft, hard) = nofile()?;
    if soft >= hard {
        info!(soft, hard, "Open file limit.");
        return Some(soft);
    }
    let limit = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit we own.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    if rc == 0 {
        info!(
            from = soft,
            to = hard,
            "Raised the open file limit to its hard limit."
        );
        Some(hard)
    } else {
        let err = std::io::Error::last_os_error();
        warn!(soft, hard, %err, "Could not raise the open file limit.");
        Some(soft)
    }
}

/// Connections a limit of `fds` open files leaves room for: a quarter of it (at least 64)
/// stays free for segments, indexes and record files, and at least 16 connections are
/// allowed.
pub fn connections_for(fds: u64) -> usize {
    let headroom = (fds / 4).max(64);
    fds.saturating_sub(headroom).max(16).min(i32::MAX as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::connections_for;

    #[test]
    fn connections_leave_headroom_for_files() {
        assert_eq!(connections_for(1024), 768);
        assert_eq!(connections_for(200), 136);
        assert_eq!(connections_for(20), 16);
        assert_eq!(connections_for(1_048_576), 786_432);
    }
}
