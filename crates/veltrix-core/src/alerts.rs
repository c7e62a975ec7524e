//! Backlog and dead-letter alerts, evaluated inside the broker on what it
//! measures itself.
//!
//! Each rule watches one group on one topic: the records it has not committed
//! past (summed over the topic's partitions), the age of the oldest of them,
//! or (share groups) the dead letters written in the last minute.
//! A rule over its threshold is pending; once it has stayed over for its `for`
//! duration it fires; when it drops back to or under the threshold it resolves.
//! Firing and resolving are the transitions reported (log, metric, webhook).
//! Plain data: the time is a parameter.

use serde::Serialize;

use crate::lag::TopicLag;

/// What a rule compares with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// Records not committed past.
    LagRecords(u64),
    /// Age of the oldest record not committed past, in milliseconds.
    LagMs(u64),
    /// Dead letters written for the group's records of the topic in the
    /// last minute.
    DeadLettersPerMinute(u64),
}

/// Dead letters written so far for a group's records of a topic (since the
/// broker started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterCount {
    pub group: String,
    pub topic: String,
    pub total: u64,
}

/// The window of a dead-letter rate.
pub const DEAD_LETTER_RATE_WINDOW_MS: i64 = 60_000;

/// A declared alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRule {
    /// Unique; names the alert in logs, metrics and notifications.
    pub name: String,
    pub group: String,
    pub topic: String,
    pub threshold: Threshold,
    /// How long the rule must stay over its threshold before it fires.
    pub for_ms: u64,
}

impl AlertRule {
    /// The default name: group, topic and what is measured.
    pub fn default_name(group: &str, topic: &str, threshold: Threshold) -> String {
        let what = match threshold {
            Threshold::LagRecords(_) => "lag_records",
            Threshold::LagMs(_) => "lag_seconds",
            Threshold::DeadLettersPerMinute(_) => "dead_letters_per_minute",
        };
        format!("{group}/{topic}/{what}")
    }
}

/// Where a rule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AlertState {
    Ok,
    /// Over the threshold since `since_ms`, not yet for long enough.
    Pending {
        since_ms: i64,
    },
    /// Firing since `since_ms`.
    Firing {
        since_ms: i64,
    },
}

/// A rule and its current state, as `/alerts` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertStatus {
    #[serde(flatten)]
    pub rule: AlertRule,
    #[serde(flatten)]
    pub state: AlertState,
    /// The measured value at the last evaluation: records, milliseconds,
    /// or dead letters in the last minute.
    pub value: i64,
    /// Dead-letter totals at past evaluations (time, total), the last
    /// minute's and one before it.
    #[serde(skip)]
    samples: std::collections::VecDeque<(i64, u64)>,
}

impl AlertStatus {
    /// Dead letters in the last minute, from `total` now and the samples.
    fn dead_letter_rate(&mut self, total: u64, now_ms: i64) -> u64 {
        self.samples.push_back((now_ms, total));
        // Keep the newest sample at or before the window's start, and those after.
        while self.samples.len() > 1 && self.samples[1].0 <= now_ms - DEAD_LETTER_RATE_WINDOW_MS {
            self.samples.pop_front();
        }
        let (_, then) = self.samples[0];
        // A total below an earlier one restarted (the broker did): all of it is new.
        if total >= then { total - then } else { total }
    }
}

/// A transition worth telling someone about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertEvent {
    pub alert: String,
    pub group: String,
    pub topic: String,
    /// `firing` or `resolved`.
    pub status: &'static str,
    pub threshold: Threshold,
    pub value: i64,
    /// When the transition happened (milliseconds since the epoch).
    pub at_ms: i64,
    /// For `resolved`: when it had started firing.
    pub firing_since_ms: Option<i64>,
}

/// Every declared rule and its state.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    statuses: Vec<AlertStatus>,
}

impl Alerts {
    pub fn new(rules: Vec<AlertRule>) -> Alerts {
        Alerts {
            statuses: rules
                .into_iter()
                .map(|rule| AlertStatus {
                    rule,
                    state: AlertState::Ok,
                    value: 0,
                    samples: Default::default(),
                })
                .collect(),
        }
    }

    pub fn statuses(&self) -> &[AlertStatus] {
        &self.statuses
    }

    /// Evaluates every rule on the current lag; returns the transitions.
    /// A group that has committed nothing for the topic has no lag to measure
    /// and counts as 0.
    pub fn evaluate(&mut self, lag: &[TopicLag], now_ms: i64) -> Vec<AlertEvent> {
        self.evaluate_all(lag, &[], now_ms)
    }

    /// [`evaluate`](Self::evaluate), with the dead letters written so far.
    pub fn evaluate_all(&mut self, lag: &[TopicLag], dead_letters: &[DeadLetterCount], now_ms: i64) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for s in &mut self.statuses {
            let measured = lag.iter().find(|l| l.group == s.rule.group && l.topic == s.rule.topic);
            let (value, limit) = match s.rule.threshold {
                Threshold::LagRecords(n) => (measured.map_or(0, |l| l.lag_records), n),
                Threshold::LagMs(ms) => (measured.map_or(0, |l| l.lag_ms), ms),
                Threshold::DeadLettersPerMinute(n) => {
                    let total = dead_letters
                        .iter()
                        .find(|d| d.group == s.rule.group && d.topic == s.rule.topic)
                        .map_or(0, |d| d.total);
                    let rate = s.dead_letter_rate(total, now_ms);
                    (i64::try_from(rate).unwrap_or(i64::MAX), n)
                }
            };
            s.value = value;
            let over = u64::try_from(value).unwrap_or(0) > limit;
            let for_ms = i64::try_from(s.rule.for_ms).unwrap_or(i64::MAX);
            let event = |status: &'static str, firing_since_ms: Option<i64>| AlertEvent {
                alert: s.rule.name.clone(),
                group: s.rule.group.clone(),
                topic: s.rule.topic.clone(),
                status,
                threshold: s.rule.threshold,
                value,
                at_ms: now_ms,
                firing_since_ms,
            };
            s.state = match (s.state, over) {
                (AlertState::Ok, false) => AlertState::Ok,
                (AlertState::Ok, true) if for_ms == 0 => {
                    events.push(event("firing", None));
                    AlertState::Firing { since_ms: now_ms }
                }
                (AlertState::Ok, true) => AlertState::Pending { since_ms: now_ms },
                (AlertState::Pending { .. }, false) => AlertState::Ok,
                (AlertState::Pending { since_ms }, true) if now_ms - since_ms >= for_ms => {
                    events.push(event("firing", None));
                    AlertState::Firing { since_ms: now_ms }
                }
                (pending @ AlertState::Pending { .. }, true) => pending,
                (firing @ AlertState::Firing { .. }, true) => firing,
                (AlertState::Firing { since_ms }, false) => {
                    events.push(event("resolved", Some(since_ms)));
                    AlertState::Ok
                }
            };
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(records: i64, ms: i64) -> Vec<TopicLag> {
        vec![TopicLag {
            group: "g".into(),
            topic: "t".into(),
            lag_records: records,
            lag_ms: ms,
        }]
    }

    fn rule(threshold: Threshold, for_ms: u64) -> AlertRule {
        AlertRule {
            name: AlertRule::default_name("g", "t", threshold),
            group: "g".into(),
            topic: "t".into(),
            threshold,
            for_ms,
        }
    }

    #[test]
    fn a_rule_fires_after_staying_over_for_its_duration_and_resolves_once_under() {
        let mut a = Alerts::new(vec![rule(Threshold::LagMs(10_000), 30_000)]);
        assert_eq!(a.evaluate(&lag(5, 9_000), 0), vec![]);
        assert_eq!(a.evaluate(&lag(5, 11_000), 1_000), vec![]);
        assert_eq!(a.statuses()[0].state, AlertState::Pending { since_ms: 1_000 });
        assert_eq!(a.evaluate(&lag(5, 40_000), 30_999), vec![], "not yet 30 s over");
        let fired = a.evaluate(&lag(5, 41_000), 31_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(
            (fired[0].status, fired[0].value, fired[0].alert.as_str()),
            ("firing", 41_000, "g/t/lag_seconds")
        );
        assert_eq!(a.evaluate(&lag(5, 50_000), 40_000), vec![], "fires once");
        let resolved = a.evaluate(&lag(0, 0), 45_000);
        assert_eq!(
            (resolved[0].status, resolved[0].firing_since_ms),
            ("resolved", Some(31_000))
        );
        assert_eq!(a.statuses()[0].state, AlertState::Ok);
    }

    #[test]
    fn dipping_under_the_threshold_restarts_the_wait() {
        let mut a = Alerts::new(vec![rule(Threshold::LagRecords(100), 10_000)]);
        a.evaluate(&lag(101, 0), 0);
        a.evaluate(&lag(100, 0), 5_000); // at the threshold is not over it
        a.evaluate(&lag(500, 0), 6_000);
        assert_eq!(a.evaluate(&lag(500, 0), 15_000), vec![]);
        assert_eq!(a.evaluate(&lag(500, 0), 16_000)[0].status, "firing");
    }

    #[test]
    fn a_dead_letter_rate_fires_over_its_threshold_and_resolves_when_letters_stop() {
        let mut a = Alerts::new(vec![rule(Threshold::DeadLettersPerMinute(10), 0)]);
        let count = |total| {
            vec![DeadLetterCount {
                group: "g".into(),
                topic: "t".into(),
                total,
            }]
        };
        assert_eq!(
            a.evaluate_all(&[], &count(100), 0),
            vec![],
            "what came before is no rate"
        );
        assert_eq!(a.evaluate_all(&[], &count(105), 20_000), vec![]);
        let fired = a.evaluate_all(&[], &count(111), 40_000);
        assert_eq!((fired[0].status, fired[0].value), ("firing", 11));
        assert_eq!(fired[0].alert, "g/t/dead_letters_per_minute");
        // No more letters: a minute later the rate is back to 0.
        // Measured from the last evaluation at least a minute back (0 s).
        assert_eq!(a.evaluate_all(&[], &count(111), 70_000), vec![]);
        assert_eq!(a.statuses()[0].value, 11);
        assert_eq!(a.evaluate_all(&[], &count(111), 101_000)[0].status, "resolved");
    }

    #[test]
    fn a_group_without_commits_for_the_topic_has_no_lag() {
        let mut a = Alerts::new(vec![rule(Threshold::LagRecords(0), 0)]);
        assert_eq!(a.evaluate(&[], 0), vec![]);
        assert_eq!(a.evaluate(&lag(1, 0), 1)[0].status, "firing");
    }
}
