//! Client quotas at the front door (KIP-219): a response over the client's
//! quota carries `throttle_time_ms`, and the connection reads nothing more
//! until that time has passed, so a client that ignores the field is slowed
//! all the same. Nothing is refused: throttled clients slow down, they do not
//! get errors.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use veltrix_core::quotas::{ANONYMOUS, QuotaKind, Throttle};

use crate::handlers::Ctx;

/// Until when a connection reads no request.
#[derive(Debug, Default)]
pub(crate) struct Mute {
    until: Mutex<Option<Instant>>,
}

impl Mute {
    /// Reads wait `ms` from now (or longer, if already muted longer).
    pub(crate) fn mute(&self, ms: u64) {
        if ms == 0 {
            return;
        }
        let until = Instant::now() + Duration::from_millis(ms);
        let mut u = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if u.is_none_or(|t| t < until) {
            *u = Some(until);
        }
    }

    /// When reads may go on, if they must wait.
    pub(crate) fn until(&self) -> Option<Instant> {
        let mut u = self.until.lock().unwrap_or_else(|p| p.into_inner());
        match *u {
            Some(t) if t > Instant::now() => Some(t),
            _ => {
                *u = None;
                None
            }
        }
    }
}

/// The principal quotas see: every connection is unauthenticated until the
/// broker has authentication.
pub(crate) fn user(_ctx: &Ctx) -> &'static str {
    ANONYMOUS
}

/// Records `bytes` produced against the client's producer quota; on a
/// throttle, mutes the connection and counts it. Returns the
/// `throttle_time_ms` to answer.
pub(crate) fn record_produce(ctx: &Ctx, bytes: usize) -> i32 {
    let t = ctx
        .broker
        .quotas()
        .record(QuotaKind::ProducerByteRate, user(ctx), &ctx.client_id, bytes as f64);
    throttled(ctx, QuotaKind::ProducerByteRate, &t)
}

/// Records `bytes` about to be fetched against the client's consumer quota,
/// unless it still owes a wait: then the response goes without its records
/// (`true`). Returns the `throttle_time_ms` to answer, and whether the
/// records are withheld.
pub(crate) fn record_fetch(ctx: &Ctx, bytes: usize) -> (i32, bool) {
    let t = ctx.broker.quotas().record_unless_throttled(
        QuotaKind::ConsumerByteRate,
        user(ctx),
        &ctx.client_id,
        bytes as f64,
    );
    (throttled(ctx, QuotaKind::ConsumerByteRate, &t), t.withheld)
}

fn throttled(ctx: &Ctx, kind: QuotaKind, t: &Throttle) -> i32 {
    if t.ms == 0 {
        return 0;
    }
    ctx.mute.mute(t.ms);
    let entity = t.entity.as_ref().map(ToString::to_string).unwrap_or_default();
    let labels = [kind.label(), entity.as_str()];
    ctx.metrics.quota_throttled.with_label_values(&labels).inc();
    ctx.metrics
        .quota_throttle_seconds
        .with_label_values(&labels)
        .inc_by(t.ms as f64 / 1000.0);
    i32::try_from(t.ms).unwrap_or(i32::MAX)
}

/// The most bytes one fetch may return under the client's consumer quota.
pub(crate) fn fetch_cap(ctx: &Ctx) -> Option<usize> {
    let cap = ctx
        .broker
        .quotas()
        .bytes_cap(QuotaKind::ConsumerByteRate, user(ctx), &ctx.client_id)?;
    Some(usize::try_from(cap).unwrap_or(usize::MAX))
}
