//! Client quotas, as Kafka defines them (KIP-13, KIP-55, KIP-219): byte rates
//! for producers and consumers per user, per client id, or per both, with
//! defaults, the most specific match winning. A client over its quota is not
//! refused: its response says how long to wait (`throttle_time_ms`), and the
//! front door reads nothing more from its connection for that long.
//!
//! The quotas themselves are durable state behind [`QuotaStore`]; each quota
//! holder's standing is a token bucket in memory ([`RateWindows`]: the rate
//! over any long time is the quota, bursts are bounded), one per holder, at
//! most `sensors_max` of them (idle ones are forgotten first), so a client
//! that invents a new client id per request costs a bounded amount of memory.

mod rate;
mod store;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use veltrix_log::io::Clock;

use rate::Rate;
pub use rate::RateWindows;
pub use store::{FileQuotaStore, MemoryQuotaStore, QUOTAS_FILE, QuotaStore, decode as decode_quotas_file};

use crate::error::Result;

/// The principal of a connection that did not authenticate, as Kafka names it.
pub const ANONYMOUS: &str = "ANONYMOUS";

/// Quota entities a broker keeps at most (`[quotas] entities_max`).
pub const ENTITIES_MAX_DEFAULT: usize = 10_000;

/// Sensors (clients being measured) kept at most (`[quotas] sensors_max`).
pub const SENSORS_MAX_DEFAULT: usize = 10_000;

/// The longest user or client id a quota may name: the quotas are kept
/// whole in memory and in one file, so `entities_max` of them stay small.
pub const ENTITY_NAME_BYTES_MAX: usize = 255;

/// An entity's name for one of its components: a user or a client id, or the
/// default for every one without a quota of its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Named(String),
    Default,
}

impl EntityName {
    fn matches(&self, actual: &str) -> bool {
        match self {
            EntityName::Named(n) => n == actual,
            EntityName::Default => true,
        }
    }
}

impl std::fmt::Display for EntityName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntityName::Named(n) => f.write_str(n),
            EntityName::Default => f.write_str("<default>"),
        }
    }
}

/// Who a quota is for: a user, a client id, or a user's client id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.user, &self.client_id) {
            (Some(u), Some(c)) => write!(f, "user {u}, client id {c}"),
            (Some(u), None) => write!(f, "user {u}"),
            (None, Some(c)) => write!(f, "client id {c}"),
            (None, None) => f.write_str("nobody"),
        }
    }
}

/// The quotas Kafka defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaKind {
    /// Bytes per second a producer may send (`producer_byte_rate`).
    ProducerByteRate,
    /// Bytes per second a consumer may fetch (`consumer_byte_rate`).
    ConsumerByteRate,
}

impl QuotaKind {
    pub const ALL: [QuotaKind; 2] = [QuotaKind::ProducerByteRate, QuotaKind::ConsumerByteRate];

    /// Kafka's name of the quota.
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::ProducerByteRate => "producer_byte_rate",
            QuotaKind::ConsumerByteRate => "consumer_byte_rate",
        }
    }

    pub fn from_key(key: &str) -> Option<QuotaKind> {
        QuotaKind::ALL.into_iter().find(|k| k.key() == key)
    }

    /// The label of metrics.
    pub fn label(self) -> &'static str {
        match self {
            QuotaKind::ProducerByteRate => "produce",
            QuotaKind::ConsumerByteRate => "fetch",
        }
    }
}

/// An entity's quotas, by kind.
pub type QuotaValues = BTreeMap<QuotaKind, f64>;

/// Why a quota change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuotaError {
    #[error("a quota entity names a user, a client id, or both")]
    EmptyEntity,
    #[error("a quota entity's name is {len} bytes long; at most {ENTITY_NAME_BYTES_MAX}")]
    NameTooLong { len: usize },
    #[error("`{key}` = {value}: a byte rate is a number of bytes per second, at least 1")]
    InvalidValue { key: &'static str, value: f64 },
    #[error("the broker keeps at most {max} quota entities")]
    TooMany { max: usize },
    #[error("storing the quotas failed: {0}")]
    Store(String),
}

/// One change of an entity's quotas: set a value, or remove it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaOp {
    pub kind: QuotaKind,
    /// `None` removes the quota.
    pub value: Option<f64>,
}

/// Limits and windows of [`Quotas`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaConfig {
    pub windows: RateWindows,
    pub entities_max: usize,
    pub sensors_max: usize,
}

impl Default for QuotaConfig {
    fn default() -> QuotaConfig {
        QuotaConfig {
            windows: RateWindows::default(),
            entities_max: ENTITIES_MAX_DEFAULT,
            sensors_max: SENSORS_MAX_DEFAULT,
        }
    }
}

/// The quota that applies to a client, and what its sensor is keyed by.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The entity whose quota applies.
    pub entity: QuotaEntity,
    pub quota: f64,
    /// The sensor: the user and client id as far as the entity names them
    /// (the actual names for a default; empty for a component it leaves out),
    /// so clients under one `user` quota share it, and each client id under a
    /// default client-id quota has its own.
    pub sensor: (String, String),
}

/// What a recorded request costs its client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Throttle {
    /// How long the client waits: in the response's `throttle_time_ms`, and
    /// the time its connection is muted.
    pub ms: u64,
    /// The response is not to be sent: the client already owed a wait (only
    /// from [`Quotas::record_unless_throttled`]; nothing was counted).
    pub withheld: bool,
    /// The entity whose quota was applied: a bounded label for metrics (one
    /// per declared entity), `None` when no quota applies.
    pub entity: Option<QuotaEntity>,
}

struct State {
    entities: BTreeMap<QuotaEntity, QuotaValues>,
    sensors: HashMap<(QuotaKind, String, String), Rate>,
    /// Sensors forgotten to stay within `sensors_max`.
    evicted: u64,
}

/// The broker's client quotas and the rates measured against them.
pub struct Quotas {
    config: QuotaConfig,
    clock: Arc<dyn Clock>,
    store: Arc<dyn QuotaStore>,
    state: Mutex<State>,
    /// Whether any quota is set: without one, requests skip the lock.
    any: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Quotas {
    /// The quotas `store` holds.
    pub fn open(config: QuotaConfig, clock: Arc<dyn Clock>, store: Arc<dyn QuotaStore>) -> Result<Quotas> {
        let entities = store.load()?;
        Ok(Quotas {
            any: std::sync::atomic::AtomicBool::new(!entities.is_empty()),
            config,
            clock,
            store,
            state: Mutex::new(State {
                entities,
                sensors: HashMap::new(),
                evicted: 0,
            }),
        })
    }

    pub fn config(&self) -> QuotaConfig {
        self.config
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every entity with its quotas.
    pub fn entities(&self) -> BTreeMap<QuotaEntity, QuotaValues> {
        self.state().entities.clone()
    }

    /// Applies `changes` to their entities, as AlterClientQuotas does: each
    /// change is checked on its own (the result has one entry per change) and
    /// the valid ones are stored together, durably, before they take effect;
    /// with `validate_only` nothing changes. An entity left without quotas is
    /// removed.
    pub fn alter(
        &self,
        changes: &[(QuotaEntity, Vec<QuotaOp>)],
        validate_only: bool,
    ) -> Vec<std::result::Result<(), QuotaError>> {
        let mut state = self.state();
        let mut next = state.entities.clone();
        let mut results = Vec::with_capacity(changes.len());
        for (entity, ops) in changes {
            results.push(apply(&mut next, entity, ops, self.config.entities_max));
        }
        if validate_only || next == state.entities {
            return results;
        }
        if let Err(e) = self.store.save(&next) {
            let e = QuotaError::Store(e.to_string());
            return results.into_iter().map(|r| r.and(Err(e.clone()))).collect();
        }
        self.any.store(!next.is_empty(), std::sync::atomic::Ordering::Relaxed);
        state.entities = next;
        results
    }

    /// The quota of `kind` that applies to `user` with `client_id`: the most
    /// specific entity that sets it, in Kafka's order.
    pub fn applied(&self, kind: QuotaKind, user: &str, client_id: &str) -> Option<Applied> {
        if !self.any.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        resolve(&self.state().entities, kind, user, client_id)
    }

    /// Records `value` (bytes) against the quota of `kind` of `user` with
    /// `client_id`, and says how long the client waits; nothing when no quota
    /// applies.
    pub fn record(&self, kind: QuotaKind, user: &str, client_id: &str, value: f64) -> Throttle {
        self.record_and(kind, user, client_id, value, false)
    }

    /// As [`Quotas::record`], but while the client still owes a wait its
    /// response is withheld (a fetch answered empty) and nothing is counted.
    pub fn record_unless_throttled(&self, kind: QuotaKind, user: &str, client_id: &str, value: f64) -> Throttle {
        self.record_and(kind, user, client_id, value, true)
    }

    fn record_and(&self, kind: QuotaKind, user: &str, client_id: &str, value: f64, unrecord: bool) -> Throttle {
        // The common case, no quota at all, costs no lock on the produce and
        // fetch paths.
        if !self.any.load(std::sync::atomic::Ordering::Relaxed) {
            return Throttle::default();
        }
        let now = self.clock.monotonic_ms();
        let w = self.config.windows;
        let mut state = self.state();
        let Some(applied) = resolve(&state.entities, kind, user, client_id) else {
            return Throttle::default();
        };
        let key = (kind, applied.sensor.0, applied.sensor.1);
        if !state.sensors.contains_key(&key) && state.sensors.len() >= self.config.sensors_max.max(1) {
            // Forget the sensor idle longest.
            if let Some(idle) = state
                .sensors
                .iter()
                .min_by_key(|(_, r)| r.last_ms)
                .map(|(k, _)| k.clone())
            {
                state.sensors.remove(&idle);
                state.evicted += 1;
            }
        }
        let rate = state.sensors.entry(key).or_insert_with(|| Rate::new(now));
        let (ms, withheld) = if unrecord {
            rate.record_unless_owing(w, now, applied.quota, value)
        } else {
            (rate.record(w, now, applied.quota, value), false)
        };
        Throttle {
            ms,
            withheld,
            entity: Some(applied.entity),
        }
    }

    /// The most bytes a client may be sent in one response under its quota of
    /// `kind`: its burst (as Kafka caps a fetch to what its quota lets
    /// through, so that one response never owes more than a burst's wait).
    pub fn bytes_cap(&self, kind: QuotaKind, user: &str, client_id: &str) -> Option<u64> {
        let applied = self.applied(kind, user, client_id)?;
        let burst_s = self.config.windows.burst_ms as f64 / 1000.0;
        Some((applied.quota * burst_s).max(1.0) as u64)
    }

    /// Sensors measured now, and sensors forgotten so far to stay within
    /// `sensors_max`.
    pub fn sensors(&self) -> (usize, u64) {
        let s = self.state();
        (s.sensors.len(), s.evicted)
    }
}

/// `ops` applied to `entity` in `all`, checked first.
fn apply(
    all: &mut BTreeMap<QuotaEntity, QuotaValues>,
    entity: &QuotaEntity,
    ops: &[QuotaOp],
    entities_max: usize,
) -> std::result::Result<(), QuotaError> {
    if entity.user.is_none() && entity.client_id.is_none() {
        return Err(QuotaError::EmptyEntity);
    }
    for name in [&entity.user, &entity.client_id].into_iter().flatten() {
        if let EntityName::Named(n) = name
            && n.len() > ENTITY_NAME_BYTES_MAX
        {
            return Err(QuotaError::NameTooLong { len: n.len() });
        }
    }
    for op in ops {
        if let Some(v) = op.value
            && !(v.is_finite() && v >= 1.0)
        {
            return Err(QuotaError::InvalidValue {
                key: op.kind.key(),
                value: v,
            });
        }
    }
    let mut values = all.get(entity).cloned().unwrap_or_default();
    for op in ops {
        match op.value {
            Some(v) => values.insert(op.kind, v),
            None => values.remove(&op.kind),
        };
    }
    if values.is_empty() {
        all.remove(entity);
        return Ok(());
    }
    if !all.contains_key(entity) && all.len() >= entities_max {
        return Err(QuotaError::TooMany { max: entities_max });
    }
    all.insert(entity.clone(), values);
    Ok(())
}

/// Kafka's order of precedence, most specific first.
fn resolve(
    entities: &BTreeMap<QuotaEntity, QuotaValues>,
    kind: QuotaKind,
    user: &str,
    client_id: &str,
) -> Option<Applied> {
    use EntityName::{Default, Named};
    let (u, c) = (Named(user.to_owned()), Named(client_id.to_owned()));
    let order = [
        (Some(u.clone()), Some(c.clone())),
        (Some(u.clone()), Some(Default)),
        (Some(u), None),
        (Some(Default), Some(c.clone())),
        (Some(Default), Some(Default)),
        (Some(Default), None),
        (None, Some(c)),
        (None, Some(Default)),
    ];
    order.into_iter().find_map(|(user_part, client_part)| {
        let entity = QuotaEntity {
            user: user_part,
            client_id: client_part,
        };
        let quota = *entities.get(&entity)?.get(&kind)?;
        debug_assert!(entity.user.as_ref().is_none_or(|u| u.matches(user)));
        let sensor = (
            entity.user.as_ref().map_or(String::new(), |_| user.to_owned()),
            entity
                .client_id
                .as_ref()
                .map_or(String::new(), |_| client_id.to_owned()),
        );
        Some(Applied { entity, quota, sensor })
    })
}
