//! Delays, priorities and per-key order: what a record's headers and key
//! mean to a group that asks for them ([`Order`]).
//!
//! - `veltrix.deliver.at` (epoch ms, or RFC 3339) or `veltrix.delay.ms` (ms
//!   after the record's timestamp): not handed out before then, at most
//!   `delay_ms_max` from when the broker first reads it.
//! - `veltrix.priority`, `0` to `9`: among the records in the window, higher
//!   first.
//! - the key: a record is not handed out while an earlier one with the same
//!   key is in flight or waiting.
//!
//! A header that does not parse is ignored (the record is delivered as if
//! it had none) and counted.

use std::hash::BuildHasher;

use super::partition::{Order, RecordTraits};
use crate::records::DeliveryHeaders;

/// The traits of a record for a group with `order`, read at `now_ms`;
/// `bad` counts headers that did not parse.
pub fn traits_of(h: &DeliveryHeaders<'_>, order: &Order, now_ms: i64, bad: &mut u64) -> RecordTraits {
    let mut t = RecordTraits::default();
    if order.key_order
        && let Some(key) = h.key
    {
        // Never 0, which means no key.
        t.key = foldhash::fast::FixedState::with_seed(0x0076_656c_7472_6978).hash_one(key) | 1;
    }
    if order.priority
        && let Some(p) = h.priority
    {
        match std::str::from_utf8(p)
            .ok()
            .map(str::trim)
            .and_then(|p| p.parse::<u8>().ok())
        {
            Some(p) if p <= 9 => t.priority = p,
            _ => *bad += 1,
        }
    }
    if order.delays {
        let at = match (h.deliver_at, h.delay_ms) {
            (Some(at), _) => parse_time_ms(at),
            (None, Some(d)) => std::str::from_utf8(d)
                .ok()
                .and_then(|d| d.trim().parse::<i64>().ok())
                .filter(|d| *d >= 0)
                .map(|d| h.timestamp_ms.saturating_add(d)),
            (None, None) => Some(0),
        };
        match at {
            Some(at) => t.not_before_ms = at.min(now_ms.saturating_add(order.delay_ms_max)),
            None => *bad += 1,
        }
    }
    t
}

/// Epoch milliseconds, or an RFC 3339 time.
fn parse_time_ms(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            delays: true,
            delay_ms_max: 60_000,
            priority: true,
            key_order: true,
        }
    }

    #[test]
    fn headers_become_traits_and_bad_ones_are_counted() {
        let mut bad = 0;
        let h = DeliveryHeaders {
            timestamp_ms: 1_000,
            key: Some(b"player-7"),
            delay_ms: Some(b"2000"),
            priority: Some(b"9"),
            ..DeliveryHeaders::default()
        };
        let t = traits_of(&h, &order(), 500, &mut bad);
        assert_eq!((t.not_before_ms, t.priority, bad), (3_000, 9, 0));
        assert_ne!(t.key, 0);
        let same = traits_of(&h, &order(), 500, &mut bad);
        assert_eq!(same.key, t.key);

        let at = DeliveryHeaders {
            deliver_at: Some(b"2025-12-05T10:00:00Z"),
            ..DeliveryHeaders::default()
        };
        let t = traits_of(&at, &order(), 1_764_928_800_000 + 1_000, &mut bad);
        assert_eq!(t.not_before_ms, 1_764_928_800_000);
        // Far in the future: capped.
        let far = DeliveryHeaders {
            deliver_at: Some(b"99999999999999"),
            ..DeliveryHeaders::default()
        };
        assert_eq!(traits_of(&far, &order(), 10, &mut bad).not_before_ms, 60_010);

        for junk in [&b"soon"[..], b"-5", b""] {
            let h = DeliveryHeaders {
                delay_ms: Some(junk),
                priority: Some(b"high"),
                ..DeliveryHeaders::default()
            };
            let t = traits_of(&h, &order(), 0, &mut bad);
            assert_eq!((t.not_before_ms, t.priority), (0, 0), "delivered as if it had none");
        }
        assert_eq!(bad, 6);
    }
}
