//! Declared client quotas applied to a broker at start: each `[[quota]]`'s
//! entity gets exactly the entry's rates (a rate the entry leaves out is
//! removed), through the engine, durably, as AlterClientQuotas would. An
//! entity an earlier start declared and the file no longer does loses its
//! quotas; quotas set over the Kafka protocol for other entities stay. Which
//! entities came from the file is recorded in `declared-quotas.json` in the
//! data directory.

use std::collections::BTreeSet;

use veltrix_core::Broker;
use veltrix_core::quotas::{QuotaEntity, QuotaKind, QuotaOp};

use crate::apply::{ApplyError, read_declared, write_declared};
use crate::model::VeltrixConfig;

/// The file, in the data directory, naming the quota entities applied from
/// the configuration at the last start.
pub const DECLARED_QUOTAS_FILE: &str = "declared-quotas.json";

/// What applying the declared quotas changed: entities set, and entities no
/// longer declared whose quotas were removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedQuotas {
    pub set: Vec<String>,
    pub removed: Vec<String>,
}

fn key(e: &QuotaEntity) -> String {
    serde_json::to_string(e).expect("entities serialise")
}

/// Makes the quotas of `config`'s declared entities exactly the declared ones.
pub fn apply_quotas(broker: &Broker, config: &VeltrixConfig) -> Result<AppliedQuotas, ApplyError> {
    let dir = broker.data_dir();
    let previously = read_declared(dir, DECLARED_QUOTAS_FILE)?;
    let live = broker.quotas().entities();
    let mut applied = AppliedQuotas::default();
    let mut changes = Vec::new();
    for q in &config.quotas {
        if live.get(&q.entity) == Some(&q.values) {
            continue;
        }
        let ops = QuotaKind::ALL
            .into_iter()
            .map(|kind| QuotaOp {
                kind,
                value: q.values.get(&kind).copied(),
            })
            .collect();
        applied.set.push(q.entity.to_string());
        changes.push((q.entity.clone(), ops));
    }
    let declared: BTreeSet<String> = config.quotas.iter().map(|q| key(&q.entity)).collect();
    for old in previously.difference(&declared) {
        let Ok(entity) = serde_json::from_str::<QuotaEntity>(old) else {
            continue;
        };
        if live.contains_key(&entity) {
            let ops = QuotaKind::ALL
                .into_iter()
                .map(|kind| QuotaOp { kind, value: None })
                .collect();
            applied.removed.push(entity.to_string());
            changes.push((entity, ops));
        }
    }
    let results = broker.quotas().alter(&changes, false);
    for ((entity, _), result) in changes.iter().zip(results) {
        result.map_err(|source| ApplyError::Quota {
            entity: entity.to_string(),
            source,
        })?;
    }
    if declared != previously {
        write_declared(dir, DECLARED_QUOTAS_FILE, &declared)?;
    }
    Ok(applied)
}
