//! Connection storms from one address (Kafka's `max.connections.per.ip` and
//! the per-IP `connection_creation_rate` of KIP-612): at most
//! `connections_per_ip_max` connections open per client address, and new ones
//! at most `connections_per_ip_per_second_max` a second (a token bucket with a
//! second's worth of burst). A connection over either is closed as soon as it
//! is accepted, before anything is read or allocated for it; other addresses'
//! clients are not touched. The table of addresses is bounded: at most
//! `ADDRESSES_MAX`, forgetting first an address with nothing open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// Addresses remembered at most (those with connections open always are).
pub const ADDRESSES_MAX: usize = 100_000;

/// Why a new connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address has `connections_per_ip_max` open.
    TooMany,
    /// Its address opens connections faster than allowed.
    TooFast,
}

impl Refusal {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::TooMany => "per_ip_max",
            Refusal::TooFast => "per_ip_rate",
        }
    }
}

#[derive(Debug)]
struct Address {
    open: usize,
    tokens: f64,
    at: Instant,
}

/// Every address's open connections and creation rate.
#[derive(Debug)]
pub(crate) struct PerIp {
    open_max: usize,
    per_second_max: f64,
    addresses: Mutex<HashMap<IpAddr, Address>>,
}

/// A connection's place among its address's; given back on drop.
#[derive(Debug)]
pub(crate) struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut a = self.table.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = a.get_mut(&self.ip) {
            e.open = e.open.saturating_sub(1);
        }
    }
}

impl PerIp {
    pub(crate) fn new(open_max: usize, per_second_max: u32) -> Arc<PerIp> {
        Arc::new(PerIp {
            open_max: open_max.max(1),
            per_second_max: f64::from(per_second_max.max(1)),
            addresses: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection from `ip`, or why it is closed.
    pub(crate) fn admit(self: &Arc<PerIp>, ip: IpAddr) -> Result<IpSlot, Refusal> {
        self.admit_at(ip, Instant::now())
    }

    fn admit_at(self: &Arc<PerIp>, ip: IpAddr, now: Instant) -> Result<IpSlot, Refusal> {
        let mut a = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if !a.contains_key(&ip) && a.len() >= ADDRESSES_MAX {
            // Forget an address with nothing open (its rate starts afresh).
            let idle = a.iter().find(|(_, e)| e.open == 0).map(|(k, _)| *k);
            if let Some(idle) = idle {
                a.remove(&idle);
            }
        }
        let e = a.entry(ip).or_insert(Address {
            open: 0,
            tokens: self.per_second_max,
            at: now,
        });
        let elapsed = now.saturating_duration_since(e.at).as_secs_f64();
        e.tokens = (e.tokens + elapsed * self.per_second_max).min(self.per_second_max);
        e.at = now;
        if e.open >= self.open_max {
            return Err(Refusal::TooMany);
        }
        if e.tokens < 1.0 {
            return Err(Refusal::TooFast);
        }
        e.tokens -= 1.0;
        e.open += 1;
        Ok(IpSlot {
            table: self.clone(),
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_held_to_its_count_and_rate_and_others_are_not() {
        let t = PerIp::new(3, 5);
        let t0 = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut held: Vec<IpSlot> = (0..3).map(|_| t.admit_at(a, t0).unwrap()).collect();
        assert_eq!(t.admit_at(a, t0).unwrap_err(), Refusal::TooMany);
        assert!(t.admit_at(b, t0).is_ok(), "another address is not touched");
        held.pop();
        // One closed: room again, and one of the five tokens left.
        let _again = t.admit_at(a, t0).unwrap();
        held.clear();
        let _x = t.admit_at(a, t0).unwrap();
        assert_eq!(t.admit_at(a, t0).unwrap_err(), Refusal::TooFast);
        let later = t0 + std::time::Duration::from_millis(400);
        assert!(t.admit_at(a, later).is_ok(), "two tokens back after 0.4 s at 5/s");
    }
}
