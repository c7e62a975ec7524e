//! Slowing producers whose requests keep failing: a client that sends batch
//! after batch the broker must refuse (too large, corrupt, for a topic that
//! does not exist, with an invalid acks) is not served at full rate forever.
//! Each client id has a token bucket of `failing_requests_per_second_max`
//! failed produce requests a second (a second's worth of burst); past it,
//! its responses carry `throttle_time_ms` (at most `failing_throttle_ms_max`)
//! and its connection is muted that long, and a warning names the client id
//! once. Requests that succeed cost nothing. At most `CLIENTS_MAX` client ids
//! are tracked, the one idle longest forgotten first.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

/// Client ids tracked at most.
pub const CLIENTS_MAX: usize = 10_000;

/// How failing producers are slowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerLimits {
    /// Failed produce requests a second a client id may send before it is
    /// slowed.
    pub failing_requests_per_second_max: u32,
    /// The longest wait one response asks for.
    pub failing_throttle_ms_max: u64,
}

impl Default for BreakerLimits {
    fn default() -> BreakerLimits {
        BreakerLimits {
            failing_requests_per_second_max: 50,
            failing_throttle_ms_max: 1_000,
        }
    }
}

#[derive(Debug)]
struct Client {
    tokens: f64,
    at: Instant,
    warned: bool,
}

/// Every producer's failures.
#[derive(Debug)]
pub(crate) struct Breakers {
    limits: BreakerLimits,
    clients: Mutex<HashMap<String, Client>>,
}

/// What one failed request costs its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tripped {
    pub ms: u64,
    /// The first time this client id is slowed: warn about it.
    pub first: bool,
}

impl Breakers {
    pub(crate) fn new(limits: BreakerLimits) -> Breakers {
        Breakers {
            limits,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one failed produce request of `client` at `now`; the wait it
    /// owes, if any.
    pub(crate) fn failed(&self, client: &str, now: Instant) -> Option<Tripped> {
        let rate = f64::from(self.limits.failing_requests_per_second_max.max(1));
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if !clients.contains_key(client) && clients.len() >= CLIENTS_MAX {
            let idle = clients.iter().min_by_key(|(_, c)| c.at).map(|(k, _)| k.clone());
            if let Some(idle) = idle {
                clients.remove(&idle);
            }
        }
        let c = clients.entry(client.to_owned()).or_insert(Client {
            tokens: rate,
            at: now,
            warned: false,
        });
        let elapsed = now.saturating_duration_since(c.at).as_secs_f64();
        c.tokens = (c.tokens + elapsed * rate).min(rate) - 1.0;
        c.at = now;
        if c.tokens >= 0.0 {
            return None;
        }
        let ms = ((-c.tokens / rate) * 1000.0).ceil() as u64;
        let first = !c.warned;
        c.warned = true;
        Some(Tripped {
            ms: ms.clamp(1, self.limits.failing_throttle_ms_max.max(1)),
            first,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_client_failing_past_its_rate_is_slowed_and_warned_about_once() {
        let b = Breakers::new(BreakerLimits {
            failing_requests_per_second_max: 10,
            failing_throttle_ms_max: 1_000,
        });
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(b.failed("bad", t0), None, "a second's worth of failures is free");
        }
        let first = b.failed("bad", t0).unwrap();
        assert_eq!(first, Tripped { ms: 100, first: true });
        let again = b.failed("bad", t0).unwrap();
        assert!(!again.first && again.ms == 200, "{again:?}");
        assert_eq!(b.failed("other", t0), None, "another client id is not touched");
        // A quiet second later, it is free again.
        assert_eq!(b.failed("bad", t0 + Duration::from_secs(2)), None);
    }
}
