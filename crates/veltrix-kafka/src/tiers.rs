//! Admission by tier: as the memory budget (`in_flight_bytes_max`) fills,
//! produce and fetch requests for `bulk` topics are throttled first (from
//! `tier_bulk_throttle_percent` of the budget), then `standard` ones (from
//! `tier_standard_throttle_percent`); `critical` ones are never throttled
//! here and flow until the budget is full, when every connection waits for
//! room (TCP back-pressure). A throttled client is answered as usual with
//! `throttle_time_ms` and its connection muted, as for a quota: it slows
//! down, it gets no error. A request is of its most important topic's tier,
//! so that a request carrying critical records is never held back.
//!
//! Memory is not the only thing a flood takes: CPU, the disk and its fsyncs
//! are shared too, and a broker that appends bulk batches as fast as they
//! arrive can keep its budget half empty while critical acknowledgements
//! wait behind them. So the critical tier's own service time is watched as
//! well ([`CriticalGuard`]): while too many critical produces take longer
//! than `tier_critical_latency_target_ms`, bulk (then standard) requests are
//! throttled harder each interval, and the throttle eases off once the
//! critical tier is served in time again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use veltrix_core::Tier;

use crate::handlers::Ctx;

/// When each tier is throttled, and how hard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimits {
    /// Bulk topics are throttled once the budget is this full (percent).
    pub bulk_throttle_percent: u8,
    /// Standard topics are throttled once the budget is this full (percent).
    pub standard_throttle_percent: u8,
    /// The wait asked of a client when the budget is full; less the less
    /// full it is, from a tenth of it at the tier's threshold.
    pub throttle_ms_max: u64,
    /// The service time critical produces should keep (read to answered);
    /// 0 turns the guard off.
    pub critical_latency_target_ms: u64,
}

impl Default for TierLimits {
    fn default() -> TierLimits {
        TierLimits {
            bulk_throttle_percent: 70,
            standard_throttle_percent: 85,
            throttle_ms_max: 1_000,
            critical_latency_target_ms: 5,
        }
    }
}

impl TierLimits {
    /// The wait for a request of `tier` with `used` of `max` bytes of the
    /// budget held; 0 below the tier's threshold, and always for critical.
    pub fn throttle_ms(&self, tier: Tier, used: usize, max: usize) -> u64 {
        let threshold = match tier {
            Tier::Critical => return 0,
            Tier::Standard => self.standard_throttle_percent,
            Tier::Bulk => self.bulk_throttle_percent,
        };
        if max == 0 {
            return 0;
        }
        let full = used as f64 / max as f64;
        let from = f64::from(threshold.min(100)) / 100.0;
        if full < from {
            return 0;
        }
        let over = if from >= 1.0 {
            1.0
        } else {
            ((full - from) / (1.0 - from)).min(1.0)
        };
        let ms = self.throttle_ms_max as f64 * (0.1 + 0.9 * over);
        (ms.ceil() as u64).clamp(1, self.throttle_ms_max.max(1))
    }
}

/// How often the guard judges the critical tier's service.
const GUARD_INTERVAL: Duration = Duration::from_millis(100);
/// The guard lets go when no critical produce was answered for this long:
/// with nothing to protect, nothing is throttled for it.
const GUARD_IDLE: Duration = Duration::from_secs(1);
/// The first throttle the guard asks of a tier, and below which it stops.
const GUARD_THROTTLE_MS_MIN: u64 = 5;

/// Watches how long critical produces take (from read to answered) and
/// throttles bulk, then standard, requests while too many of them are late:
/// in an interval where more than one in fifty took longer than the target,
/// bulk's throttle doubles (from [`GUARD_THROTTLE_MS_MIN`] up to the tiers'
/// `throttle_ms_max`), and once it is at its largest standard's does too; in
/// an interval on time they shrink by a quarter, standard's first, so that a
/// flood that returns meets the throttle still in place.
#[derive(Debug)]
pub struct CriticalGuard {
    target: Duration,
    throttle_ms_max: u64,
    epoch: Instant,
    /// The throttles asked of bulk and standard requests now (ms).
    bulk_ms: AtomicU64,
    standard_ms: AtomicU64,
    /// When a critical produce was last answered (µs since `epoch`).
    last_seen_us: AtomicU64,
    window: Mutex<GuardWindow>,
}

#[derive(Debug)]
struct GuardWindow {
    started: Instant,
    answered: u32,
    late: u32,
}

impl CriticalGuard {
    pub fn new(limits: &TierLimits, now: Instant) -> CriticalGuard {
        CriticalGuard {
            target: Duration::from_millis(limits.critical_latency_target_ms),
            throttle_ms_max: limits.throttle_ms_max.max(GUARD_THROTTLE_MS_MIN),
            epoch: now,
            bulk_ms: AtomicU64::new(0),
            standard_ms: AtomicU64::new(0),
            last_seen_us: AtomicU64::new(0),
            window: Mutex::new(GuardWindow {
                started: now,
                answered: 0,
                late: 0,
            }),
        }
    }

    fn enabled(&self) -> bool {
        !self.target.is_zero()
    }

    /// A critical produce was answered `took` after it was read.
    pub fn answered(&self, took: Duration, now: Instant) {
        if !self.enabled() {
            return;
        }
        let since = now.saturating_duration_since(self.epoch).as_micros();
        self.last_seen_us
            .store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Relaxed);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.answered += 1;
        if took > self.target {
            w.late += 1;
        }
        if now.saturating_duration_since(w.started) < GUARD_INTERVAL {
            return;
        }
        let congested = w.late * 50 > w.answered;
        *w = GuardWindow {
            started: now,
            answered: 0,
            late: 0,
        };
        drop(w);
        let bulk = self.bulk_ms.load(Ordering::Relaxed);
        let standard = self.standard_ms.load(Ordering::Relaxed);
        let grow = |ms: u64| (ms * 2).clamp(GUARD_THROTTLE_MS_MIN, self.throttle_ms_max);
        let shrink = |ms: u64| {
            if ms * 3 / 4 < GUARD_THROTTLE_MS_MIN {
                0
            } else {
                ms * 3 / 4
            }
        };
        let (bulk, standard) = match (congested, bulk >= self.throttle_ms_max) {
            (true, false) => (grow(bulk), standard),
            (true, true) => (bulk, grow(standard)),
            (false, _) if standard > 0 => (bulk, shrink(standard)),
            (false, _) => (shrink(bulk), standard),
        };
        self.bulk_ms.store(bulk, Ordering::Relaxed);
        self.standard_ms.store(standard, Ordering::Relaxed);
    }

    /// The wait the guard asks of a request of `tier` now.
    pub fn throttle_ms(&self, tier: Tier, now: Instant) -> u64 {
        let cell = match tier {
            Tier::Critical => return 0,
            Tier::Standard => &self.standard_ms,
            Tier::Bulk => &self.bulk_ms,
        };
        if !self.enabled() {
            return 0;
        }
        let since = u64::try_from(now.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX);
        let idle = u64::try_from(GUARD_IDLE.as_micros()).unwrap_or(u64::MAX);
        if since.saturating_sub(self.last_seen_us.load(Ordering::Relaxed)) > idle {
            return 0;
        }
        cell.load(Ordering::Relaxed)
    }
}

/// The most important tier among `topics` (unknown topics count as standard).
pub(crate) fn request_tier<'a>(ctx: &Ctx, topics: impl Iterator<Item = &'a str>) -> Tier {
    topics
        .map(|name| ctx.broker.topic(name).and_then(|t| t.config.tier).unwrap_or_default())
        .max()
        .unwrap_or_default()
}

/// The wait for a request of `tier` now (for the memory budget or the
/// critical tier's service, whichever asks more), counted and the connection
/// muted when there is one. `kind`: `produce` or `fetch`.
pub(crate) fn admit(ctx: &Ctx, tier: Tier, kind: &str) -> i32 {
    let used = usize::try_from(ctx.metrics.in_flight_bytes.get()).unwrap_or(0);
    let now = Instant::now();
    let would = |t: Tier| {
        let memory = ctx.config.tiers.throttle_ms(t, used, ctx.config.in_flight_bytes_max);
        memory.max(ctx.guard.throttle_ms(t, now))
    };
    let ms = would(tier);
    // What a request of each tier would be told now.
    for t in Tier::ALL {
        let would = would(t);
        ctx.metrics
            .tier_admission_throttle_seconds
            .with_label_values(&[t.name()])
            .set(would as f64 / 1000.0);
    }
    if ms == 0 {
        return 0;
    }
    ctx.mute.mute(ms);
    let labels = [tier.name(), kind];
    ctx.metrics.tier_throttled.with_label_values(&labels).inc();
    ctx.metrics
        .tier_throttle_seconds
        .with_label_values(&labels)
        .inc_by(ms as f64 / 1000.0);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// Record bytes of produce requests of one tier held from when they are read
/// until they are answered: the budget's use by tier.
pub(crate) struct TierBytes {
    gauge: prometheus::IntGauge,
    bytes: i64,
}

impl TierBytes {
    pub(crate) fn hold(ctx: &Ctx, tier: Tier, bytes: usize) -> TierBytes {
        let gauge = ctx.metrics.tier_in_flight_bytes.with_label_values(&[tier.name()]);
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        gauge.add(bytes);
        TierBytes { gauge, bytes }
    }
}

impl Drop for TierBytes {
    fn drop(&mut self) {
        self.gauge.sub(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_is_throttled_first_then_standard_and_critical_never() {
        let t = TierLimits::default();
        let max = 1_000;
        assert_eq!(t.throttle_ms(Tier::Bulk, 690, max), 0);
        assert_eq!(t.throttle_ms(Tier::Bulk, 700, max), 100);
        assert_eq!(t.throttle_ms(Tier::Standard, 700, max), 0);
        assert_eq!(t.throttle_ms(Tier::Standard, 850, max), 100);
        assert!(t.throttle_ms(Tier::Bulk, 850, max) > 500);
        assert_eq!(t.throttle_ms(Tier::Bulk, 1_000, max), 1_000);
        assert_eq!(t.throttle_ms(Tier::Standard, 1_000, max), 1_000);
        assert_eq!(t.throttle_ms(Tier::Critical, 1_000, max), 0);
    }

    fn guard(target_ms: u64) -> (CriticalGuard, Instant) {
        let now = Instant::now();
        let limits = TierLimits {
            critical_latency_target_ms: target_ms,
            throttle_ms_max: 80,
            ..TierLimits::default()
        };
        (CriticalGuard::new(&limits, now), now)
    }

    /// One interval of critical produces, `late` of `answered` over 5 ms.
    fn interval(g: &CriticalGuard, at: &mut Instant, answered: u32, late: u32) {
        for n in 0..answered {
            let took = Duration::from_millis(if n < late { 20 } else { 1 });
            g.answered(took, *at);
        }
        *at += GUARD_INTERVAL;
        g.answered(Duration::from_millis(1), *at);
    }

    #[test]
    fn late_critical_produces_throttle_bulk_first_then_standard_and_it_eases_off() {
        let (g, mut at) = guard(5);
        interval(&g, &mut at, 100, 0);
        assert_eq!(g.throttle_ms(Tier::Bulk, at), 0);
        interval(&g, &mut at, 100, 10);
        assert_eq!(g.throttle_ms(Tier::Bulk, at), GUARD_THROTTLE_MS_MIN);
        assert_eq!(g.throttle_ms(Tier::Standard, at), 0);
        let mut bulk = Vec::new();
        for _ in 0..6 {
            interval(&g, &mut at, 100, 10);
            bulk.push(g.throttle_ms(Tier::Bulk, at));
        }
        assert_eq!(bulk, [10, 20, 40, 80, 80, 80], "doubling up to the largest");
        assert!(
            g.throttle_ms(Tier::Standard, at) >= GUARD_THROTTLE_MS_MIN,
            "standard once bulk is at its largest"
        );
        assert_eq!(g.throttle_ms(Tier::Critical, at), 0);
        // On time again: standard lets go first, then bulk, step by step.
        interval(&g, &mut at, 100, 0);
        assert_eq!(g.throttle_ms(Tier::Bulk, at), 80);
        for _ in 0..10 {
            interval(&g, &mut at, 100, 0);
        }
        assert_eq!(g.throttle_ms(Tier::Standard, at), 0);
        let eased = g.throttle_ms(Tier::Bulk, at);
        assert!(eased < 80 && eased > 0, "{eased}");
        for _ in 0..30 {
            interval(&g, &mut at, 100, 0);
        }
        assert_eq!(g.throttle_ms(Tier::Bulk, at), 0);
    }

    #[test]
    fn one_late_produce_in_fifty_is_on_time_and_no_critical_traffic_means_no_guard() {
        let (g, mut at) = guard(5);
        interval(&g, &mut at, 100, 2);
        assert_eq!(g.throttle_ms(Tier::Bulk, at), 0);
        for _ in 0..5 {
            interval(&g, &mut at, 100, 50);
        }
        assert!(g.throttle_ms(Tier::Bulk, at) > 0);
        // The critical producer went away: nothing left to protect.
        assert_eq!(g.throttle_ms(Tier::Bulk, at + GUARD_IDLE + Duration::from_millis(1)), 0);
    }

    #[test]
    fn a_zero_target_turns_the_guard_off() {
        let (g, mut at) = guard(0);
        for _ in 0..5 {
            interval(&g, &mut at, 100, 100);
        }
        assert_eq!(g.throttle_ms(Tier::Bulk, at), 0);
    }
}
