// The lag alerts: those firing and pending, every declared rule with its
// state, and the recent transitions (firing, resolved). Polled.

import {
  api,
  badge,
  fill,
  fmtSeconds,
  fmtTime,
  groupLink,
  plural,
  poll,
  table,
  thresholdText,
  topicLink,
  valueText,
} from './common.js';

const POLL_MS = 5000;
const ORDER = { firing: 0, pending: 1, ok: 2 };

const RULE_COLUMNS = ['State', 'Alert', 'Group', 'Topic', 'Now', 'Threshold', 'For', 'Since'].map((label) => ({
  label,
}));

function ruleRow(a) {
  return [
    badge(a.state),
    a.name,
    groupLink(a.group),
    topicLink(a.topic),
    valueText(a),
    thresholdText(a.threshold),
    fmtSeconds((a.for_ms || 0) / 1000),
    fmtTime(a.since_ms),
  ];
}

const HISTORY_COLUMNS = ['When', 'Transition', 'Alert', 'Group', 'Topic', 'Value', 'Threshold', 'Firing since'].map(
  (label) => ({ label }),
);

function historyRow(e) {
  return [
    fmtTime(e.at_ms),
    badge(e.status, e.status === 'resolved' ? 'ok' : 'firing'),
    e.alert,
    groupLink(e.group),
    topicLink(e.topic),
    valueText(e),
    thresholdText(e.threshold),
    fmtTime(e.firing_since_ms),
  ];
}

async function refresh() {
  const body = await api('/api/v1/alerts');
  const rules = (body.alerts || []).slice().sort((a, b) => (ORDER[a.state] ?? 3) - (ORDER[b.state] ?? 3));
  const active = rules.filter((a) => a.state === 'firing' || a.state === 'pending');
  const recent = (body.recent || []).slice().sort((a, b) => b.at_ms - a.at_ms);
  const none =
    rules.length === 0
      ? 'No alerts are declared ([[alert]] in the configuration file).'
      : 'None: every rule is under its threshold.';
  fill('active', table(RULE_COLUMNS, active.map(ruleRow), none));
  fill('rules', table(RULE_COLUMNS, rules.map(ruleRow), 'No alerts are declared.'));
  fill('history', table(HISTORY_COLUMNS, recent.map(historyRow), 'No transitions since the broker started.'));
  const every = body.evaluation_interval_ms
    ? `Evaluated every ${fmtSeconds(body.evaluation_interval_ms / 1000)}. `
    : '';
  fill('evaluation', `${every}${plural(rules.length, 'rule')} declared.`);
}

poll('alerts', refresh, POLL_MS);
