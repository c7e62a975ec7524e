//! Rate-limited warnings: at most one log line per kind of warning and peer
//! address per interval, the next one saying how many were left out.
//!
//! A hostile or broken client can trigger a warning per request (a malformed
//! frame, a refused connection), and a warning per request turns a flood of bad
//! frames into a flood of log lines that fills the disk. The table of keys is
//! bounded by [`WARN_KEYS_MAX`]: past it, the key warned about longest ago is
//! forgotten (its pending count of left-out lines with it; the
//! `veltrix_warnings_suppressed_total` counter still has them). Time is a
//! parameter, so the limiter is plain data under a lock; the front doors pass
//! the peer's address, which is only a key here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;

/// Keys (kind of warning and peer address) remembered at most.
pub const WARN_KEYS_MAX: usize = 1024;

/// What a key last logged, and what it left out since.
#[derive(Debug, Clone, Copy)]
struct Seen {
    logged: Instant,
    suppressed: u64,
}

/// See the module docs. Shared by the connections of a front door.
#[derive(Debug)]
pub struct WarnLimiter {
    interval: Duration,
    keys: Mutex<HashMap<(&'static str, Option<IpAddr>), Seen>>,
    /// `veltrix_warnings_suppressed_total`, by kind.
    suppressed: IntCounterVec,
}

impl WarnLimiter {
    /// One line per key per `interval`; left-out lines are counted in
    /// `suppressed`, labelled by kind.
    pub fn new(interval: Duration, suppressed: IntCounterVec) -> WarnLimiter {
        WarnLimiter {
            interval,
            keys: Mutex::new(HashMap::new()),
            suppressed,
        }
    }

    /// Whether to log a warning of `kind` about `peer` now: `Some(n)` to log it,
    /// saying that `n` were left out before it; `None` to leave it out.
    pub fn allow(&self, kind: &'static str, peer: Option<IpAddr>) -> Option<u64> {
        self.allow_at(kind, peer, Instant::now())
    }

    /// [`WarnLimiter::allow`] at the time `now`.
    pub fn allow_at(&self, kind: &'static str, peer: Option<IpAddr>, now: Instant) -> Option<u64> {
        // A panic elsewhere while holding the lock leaves the table consistent
        // (each update is one assignment), so poisoning is ignored.
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(seen) = keys.get_mut(&(kind, peer)) {
            if now.saturating_duration_since(seen.logged) < self.interval {
                seen.suppressed += 1;
                self.suppressed.with_label_values(&[kind]).inc();
                return None;
            }
            let left_out = seen.suppressed;
            *seen = Seen {
                logged: now,
                suppressed: 0,
            };
            return Some(left_out);
        }
        if keys.len() >= WARN_KEYS_MAX {
            let oldest = keys.iter().min_by_key(|(_, seen)| seen.logged).map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                keys.remove(&oldest);
            }
        }
        keys.insert(
            (kind, peer),
            Seen {
                logged: now,
                suppressed: 0,
            },
        );
        Some(0)
    }

    /// Keys remembered now.
    pub fn keys(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};

    use super::{WARN_KEYS_MAX, WarnLimiter};
    use crate::Metrics;

    fn ip(n: u32) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::from(n)))
    }

    /// A flood of one warning from one peer logs one line per interval, the
    /// next one counting what was left out; other kinds and peers have their
    /// own allowance.
    #[test]
    fn one_line_per_kind_and_peer_per_interval_counting_the_rest() {
        let metrics = Metrics::new(true);
        let limiter = WarnLimiter::new(Duration::from_secs(10), metrics.warnings_suppressed.clone());
        let t0 = Instant::now();
        assert_eq!(limiter.allow_at("bad_frame", ip(1), t0), Some(0));
        for i in 0..1000 {
            assert_eq!(
                limiter.allow_at("bad_frame", ip(1), t0 + Duration::from_millis(i)),
                None
            );
        }
        assert_eq!(limiter.allow_at("bad_frame", ip(2), t0), Some(0));
        assert_eq!(limiter.allow_at("refused", ip(1), t0), Some(0));
        assert_eq!(
            limiter.allow_at("bad_frame", ip(1), t0 + Duration::from_secs(10)),
            Some(1000)
        );
        assert_eq!(limiter.allow_at("bad_frame", ip(1), t0 + Duration::from_secs(11)), None);
        assert_eq!(
            metrics.warnings_suppressed.with_label_values(&["bad_frame"]).get(),
            1001
        );
    }

    /// Warnings from more peers than the table holds keep it at its limit by
    /// forgetting the key warned about longest ago.
    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest_key() {
        let limiter = WarnLimiter::new(Duration::from_secs(10), Metrics::new(true).warnings_suppressed.clone());
        let t0 = Instant::now();
        for n in 0..(WARN_KEYS_MAX as u32 * 3) {
            assert_eq!(
                limiter.allow_at("bad_frame", ip(n), t0 + Duration::from_millis(n.into())),
                Some(0)
            );
            assert!(limiter.keys() <= WARN_KEYS_MAX);
        }
        assert_eq!(limiter.keys(), WARN_KEYS_MAX);
        // The newest peers are still limited; the first was forgotten.
        let late = t0 + Duration::from_millis(WARN_KEYS_MAX as u64 * 3);
        assert_eq!(
            limiter.allow_at("bad_frame", ip(WARN_KEYS_MAX as u32 * 3 - 1), late),
            None
        );
        assert_eq!(limiter.allow_at("bad_frame", ip(0), late), Some(0));
    }
}
