//! The treasure hunt: a mobile game's events, as the source stories describe
//! them. Players are the keys, so each player's events stay in order on one
//! partition. Most of the volume is small, frequent telemetry
//! (`location_ping`, `clue_found`); a little of it is what must never be lost
//! or doubled (`reward_granted`, `purchase`). A sale multiplies the rate for a
//! while, and the critical events must keep their latency through it.

use std::time::Duration;

use veltrix_client::Acks;

use crate::produce::{Rate, Spike, StreamSpec};

/// One kind of event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventKind {
    pub name: &'static str,
    /// Its share of all events.
    pub share: f64,
    pub record_bytes: usize,
    /// Whether losing one is a support ticket (acks=all whatever the rest use).
    pub critical: bool,
}

/// The mix of events: shares sum to 1.
pub const EVENTS: [EventKind; 4] = [
    EventKind {
        name: "location_ping",
        share: 0.70,
        record_bytes: 64,
        critical: false,
    },
    EventKind {
        name: "clue_found",
        share: 0.25,
        record_bytes: 200,
        critical: false,
    },
    EventKind {
        name: "reward_granted",
        share: 0.04,
        record_bytes: 256,
        critical: true,
    },
    EventKind {
        name: "purchase",
        share: 0.01,
        record_bytes: 512,
        critical: true,
    },
];

/// Settings of the profile.
#[derive(Debug, Clone)]
pub struct TreasureHunt {
    pub topic_prefix: String,
    pub partitions: i32,
    pub players: u64,
    /// Events per second across all kinds, outside spikes.
    pub rate: f64,
    /// Sales: every kind's rate times the factor.
    pub spikes: Vec<Spike>,
    /// Acks of the high-volume kinds; critical kinds always use acks=all.
    pub telemetry_acks: Acks,
    pub producers_per_kind: usize,
    pub batch_bytes: usize,
    pub linger: Duration,
    pub in_flight: usize,
    pub consumers_per_kind: usize,
    /// Every kind to this topic, named in each record's `event` header,
    /// instead of a topic per kind.
    pub one_topic: Option<String>,
}

impl TreasureHunt {
    /// One stream per kind of event.
    pub fn streams(&self) -> Vec<StreamSpec> {
        EVENTS
            .iter()
            .map(|e| StreamSpec {
                name: e.name.to_owned(),
                topic: self
                    .one_topic
                    .clone()
                    .unwrap_or_else(|| format!("{}{}", self.topic_prefix, e.name)),
                partitions: Some(self.partitions),
                topic_configs: Vec::new(),
                acks: if e.critical { Acks::All } else { self.telemetry_acks },
                record_bytes: e.record_bytes,
                players: Some(self.players),
                message_ids: false,
                event: self.one_topic.as_ref().map(|_| e.name.to_owned()),
                producers: self.producers_per_kind,
                rate: Rate {
                    per_s: self.rate * e.share,
                    spikes: self.spikes.clone(),
                },
                batch_bytes: self.batch_bytes,
                linger: self.linger,
                in_flight: self.in_flight,
                consumers: self.consumers_per_kind,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_adds_up_and_critical_events_are_durable() {
        let total: f64 = EVENTS.iter().map(|e| e.share).sum();
        assert!((total - 1.0).abs() < 1e-9);
        let th = TreasureHunt {
            topic_prefix: "th.".into(),
            partitions: 6,
            players: 1000,
            rate: 10_000.0,
            spikes: vec![Spike {
                start: Duration::from_secs(10),
                length: Duration::from_secs(30),
                factor: 10.0,
            }],
            telemetry_acks: Acks::Leader,
            producers_per_kind: 1,
            batch_bytes: 1 << 20,
            linger: Duration::from_millis(5),
            in_flight: 5,
            consumers_per_kind: 1,
            one_topic: None,
        };
        let streams = th.streams();
        assert_eq!(streams.len(), 4);
        let purchase = streams.iter().find(|s| s.name == "purchase").unwrap();
        assert_eq!(purchase.acks, Acks::All);
        assert_eq!(purchase.topic, "th.purchase");
        assert!((purchase.rate.at(Duration::from_secs(5)) - 100.0).abs() < 1e-9);
        assert!((purchase.rate.at(Duration::from_secs(15)) - 1000.0).abs() < 1e-9);
        assert!((purchase.rate.at(Duration::from_secs(40)) - 100.0).abs() < 1e-9);
        let ping = streams.iter().find(|s| s.name == "location_ping").unwrap();
        assert_eq!(ping.acks, Acks::Leader);
        assert!(streams.iter().all(|s| s.event.is_none()));

        // One topic for every kind: each record names its kind.
        let one = TreasureHunt {
            one_topic: Some("hunt".into()),
            ..th
        };
        for s in one.streams() {
            assert_eq!(s.topic, "hunt");
            assert_eq!(s.event.as_deref(), Some(s.name.as_str()));
        }
    }
}
