//! The coordinator's metrics, read from its state and totals before each
//! scrape: nothing on the request paths.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{IntCounter, IntGauge};

use crate::broker::Broker;
use crate::metrics::Registrar;

/// A counter and the coordinator's total it follows.
type Follows = (IntCounter, fn(&super::TxnTotals) -> &AtomicU64);

#[derive(Debug, Clone)]
pub(crate) struct TxnMetrics {
    /// `veltrix_transactions_ended_total` by result and cause.
    ended: [Follows; 4],
    /// `veltrix_transaction_refused_total` by limit.
    refused: [Follows; 3],
    ids: IntGauge,
    open: IntGauge,
    pending: IntGauge,
}

impl TxnMetrics {
    pub(crate) fn new(r: &Registrar<'_>) -> TxnMetrics {
        let ended = r.int_counter_vec(
            "veltrix_transactions_ended_total",
            "Transactions decided, by result (committed, aborted) and cause: producer (EndTxn), timeout (open longer than its transaction.timeout.ms), new_producer (InitProducerId of the same transactional id fenced the producer that left it open).",
            &["result", "cause"],
        );
        let refused = r.int_counter_vec(
            "veltrix_transaction_refused_total",
            "Transactional requests refused with POLICY_VIOLATION by a limit: transactional_ids_max (InitProducerId), transaction_partitions_max (AddPartitionsToTxn), transaction_groups_max (AddOffsetsToTxn).",
            &["limit"],
        );
        TxnMetrics {
            ended: [
                (ended.with_label_values(&["committed", "producer"]), |t| &t.committed),
                (ended.with_label_values(&["aborted", "producer"]), |t| &t.aborted_by_producer),
                (ended.with_label_values(&["aborted", "timeout"]), |t| &t.aborted_by_timeout),
                (ended.with_label_values(&["aborted", "new_producer"]), |t| {
                    &t.aborted_by_new_producer
                }),
            ],
            refused: [
                (refused.with_label_values(&["transactional_ids_max"]), |t| &t.refused_ids),
                (refused.with_label_values(&["transaction_partitions_max"]), |t| {
                    &t.refused_partitions
                }),
                (refused.with_label_values(&["transaction_groups_max"]), |t| &t.refused_groups),
            ],
            ids: r.int_gauge(
                "veltrix_transactional_ids",
                "Transactional ids the coordinator knows (at most [limits] transactional_ids_max).",
            ),
            open: r.int_gauge(
                "veltrix_transactions_open",
                "Transactions open or decided but not yet complete: each holds back its partitions' last stable offset, and read_committed consumers with it.",
            ),
            pending: r.int_gauge(
                "veltrix_transactions_completing",
                "Transactions decided whose markers and offsets are not all written yet; one that stays is retried every housekeeping round (see the log for why it fails).",
            ),
        }
    }

    pub(crate) fn refresh(&self, broker: &Broker) {
        let coordinator = &broker.txn;
        let totals = coordinator.totals();
        for (counter, total) in self.ended.iter().chain(&self.refused) {
            let total = total(totals).load(Ordering::Relaxed);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let (ids, open) = coordinator.counts();
        self.ids.set(i64::try_from(ids).unwrap_or(i64::MAX));
        self.open.set(i64::try_from(open).unwrap_or(i64::MAX));
        let pending = coordinator.pending().len();
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
    }
}
