//! Admission by tier: as the memory budget (`in_flight_bytes_max`) fills,
//! produce and fetch requests for `bulk` topics are throttled first (from
//! `tier_bulk_throttle_percent` of the budget), then `standard` ones (from
//! `tier_standard_throttle_percent`); `critical` ones are never throttled
//! here and flow until the budget is full, when every connection waits for
//! room (TCP back-pressure). A throttled client is answered as usual with
//! `throttle_time_ms` and its connection muted, as for a quota: it slows
//! down, it gets no error. A request is of its most important topic's tier,
//! so that a request carrying critical records is never held back.

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
}

impl Default for TierLimits {
    fn default() -> TierLimits {
        TierLimits {
            bulk_throttle_percent: 70,
            standard_throttle_percent: 85,
            throttle_ms_max: 1_000,
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

/// The most important tier among `topics` (unknown topics count as standard).
pub(crate) fn request_tier<'a>(ctx: &Ctx, topics: impl Iterator<Item = &'a str>) -> Tier {
    topics
        .map(|name| ctx.broker.topic(name).and_then(|t| t.config.tier).unwrap_or_default())
        .max()
        .unwrap_or_default()
}

/// The wait for a request of `tier` now, counted and the connection muted
/// when there is one. `kind`: `produce` or `fetch`.
pub(crate) fn admit(ctx: &Ctx, tier: Tier, kind: &str) -> i32 {
    let used = usize::try_from(ctx.metrics.in_flight_bytes.get()).unwrap_or(0);
    let ms = ctx.config.tiers.throttle_ms(tier, used, ctx.config.in_flight_bytes_max);
    // What a request of each tier would be told now.
    for t in Tier::ALL {
        let would = ctx.config.tiers.throttle_ms(t, used, ctx.config.in_flight_bytes_max);
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
}
