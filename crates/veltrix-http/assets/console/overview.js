// The overview: the broker (version, uptime, counts, memory budget,
// connections, storage), throughput in and out (rates from the totals of
// two successive answers), the alerts firing now, and the partitions
// refusing writes. Polled.

import {
  api,
  badge,
  cards,
  clearProblem,
  describeError,
  el,
  fill,
  fmtBytes,
  fmtInt,
  fmtSeconds,
  fmtTime,
  groupLink,
  plural,
  poll,
  showProblem,
  table,
  thresholdText,
  topicLink,
  valueText,
} from './common.js';

const POLL_MS = 3000;

/** The previous answer's totals and when they were read, for rates. */
let previous = null;

/** Per second between two answers; null until there are two, or after a restart. */
function rates(b) {
  const t = b.traffic;
  const at = b.sampled_at_ms;
  if (!t || typeof at !== 'number') return null;
  const prev = previous;
  previous = { t, at };
  if (!prev || at <= prev.at) return null;
  const seconds = (at - prev.at) / 1000;
  const rate = (k) => Math.max(0, (t[k] - prev.t[k]) / seconds);
  return {
    inBytes: rate('produce_bytes'),
    inRecords: rate('produce_records'),
    outBytes: rate('fetch_bytes'),
    outRecords: rate('fetch_records'),
  };
}

function fmtRate(r, bytesKey, recordsKey) {
  if (!r) return 'measuring…';
  return `${fmtBytes(Math.round(r[bytesKey]))}/s · ${fmtInt(Math.round(r[recordsKey]))} records/s`;
}

function renderBroker(b) {
  const memory = b.memory || {};
  const max = memory.in_flight_bytes_max || 0;
  const used = memory.in_flight_bytes || 0;
  const meter =
    max > 0 ? el('meter', { min: 0, max, value: used, title: `${fmtBytes(used)} of ${fmtBytes(max)}` }) : null;
  const r = rates(b);
  const t = b.traffic || {};
  const c = b.connections || {};
  const storage = b.storage || {};
  const total = (bytes, records) => `${fmtBytes(bytes)}, ${plural(records || 0, 'record')} since start`;
  fill(
    'broker',
    cards([
      ['Version', b.version],
      ['Uptime', fmtSeconds(b.uptime_seconds)],
      ['Topics', el('a', { href: '/console/topics' }, fmtInt(b.topics))],
      ['Partitions', fmtInt(b.partitions)],
      ['Groups', el('a', { href: '/console/groups' }, fmtInt(b.groups))],
      ['In (produced)', el('span', { id: 'rate-in' }, fmtRate(r, 'inBytes', 'inRecords')), total(t.produce_bytes, t.produce_records)],
      ['Out (fetched)', el('span', { id: 'rate-out' }, fmtRate(r, 'outBytes', 'outRecords')), total(t.fetch_bytes, t.fetch_records)],
      ['Connections', `${fmtInt(c.kafka)} Kafka`, `${fmtInt(c.http)} HTTP`],
      [
        'Storage',
        `${fmtBytes(storage.log_bytes)} in logs`,
        storage.disk_available_bytes > 0 ? `${fmtBytes(storage.disk_available_bytes)} free on the disk` : null,
      ],
      ['Memory budget in use', `${fmtBytes(used)} of ${fmtBytes(max)}`, meter],
    ]),
  );
}

function renderFiring(body) {
  const alerts = body.alerts || [];
  const firing = alerts.filter((a) => a.state === 'firing');
  const pending = alerts.filter((a) => a.state === 'pending').length;
  const rows = firing.map((a) => [
    badge('firing'),
    a.name,
    topicLink(a.topic),
    groupLink(a.group),
    valueText(a),
    thresholdText(a.threshold),
    fmtTime(a.since_ms),
  ]);
  const columns = ['', 'Alert', 'Topic', 'Group', 'Now', 'Threshold', 'Since'].map((label) => ({ label }));
  const note = `${plural(alerts.length, 'rule')}, ${fmtInt(pending)} pending. `;
  fill(
    'firing',
    table(columns, rows, alerts.length === 0 ? 'No alerts are declared.' : 'None firing.'),
    el('p', { class: 'muted' }, note, el('a', { href: '/console/alerts' }, 'Every alert and its history')),
  );
}

function renderHealth(ready) {
  const poisoned = ready.poisoned_partitions || [];
  const rows = poisoned.map((p) => [topicLink(p.topic), fmtInt(p.partition), p.cause]);
  const columns = [{ label: 'Topic' }, { label: 'Partition', num: true }, { label: 'Why it refuses writes' }];
  fill(
    'health',
    el('p', {}, 'Broker: ', badge(ready.status, ready.status === 'ready' ? 'ok' : 'pending')),
    table(columns, rows, 'No partition is poisoned: every partition takes writes.'),
  );
}

/** Each part on its own: a refusal of one (an ACL) leaves the others. */
function settle(key, outcome, render) {
  if (outcome.status === 'fulfilled') {
    render(outcome.value);
    clearProblem(key);
  } else {
    showProblem(key, describeError(outcome.reason));
  }
}

async function refresh() {
  const [broker, alerts, ready] = await Promise.allSettled([
    api('/api/v1/broker'),
    api('/api/v1/alerts'),
    api('/ready'),
  ]);
  settle('broker', broker, renderBroker);
  settle('alerts', alerts, renderFiring);
  settle('ready', ready, renderHealth);
}

poll('overview', refresh, POLL_MS);
