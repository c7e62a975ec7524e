// The groups of every kind (classic, consumer, share): state, members and
// lag per topic, polled, with a filter by part of the group's id.

import { api, el, fill, fmtInt, fmtSeconds, fmtTime, groupLink, poll, stateBadge, table, topicLink } from './common.js';

const POLL_MS = 5000;
/** Rows drawn at most; the filter narrows the rest down. */
const ROWS_MAX = 200;

let groups = [];
let evaluatedAt = 0;

const COLUMNS = [
  { label: 'Group' },
  { label: 'Type' },
  { label: 'State' },
  { label: 'Members', num: true },
  { label: 'Lag (records)', num: true },
  { label: 'Oldest unconsumed', num: true },
  { label: 'Topics' },
];

function row(g) {
  const lag = g.lag || [];
  const records = lag.reduce((n, l) => n + (l.lag_records || 0), 0);
  const seconds = lag.reduce((n, l) => Math.max(n, l.lag_seconds || 0), 0);
  const topics = lag.flatMap((l, i) => (i === 0 ? [topicLink(l.topic)] : [', ', topicLink(l.topic)]));
  return [
    groupLink(g.group_id),
    g.type,
    stateBadge(g.state),
    fmtInt(g.members),
    fmtInt(records),
    lag.length ? fmtSeconds(seconds) : '–',
    el('span', {}, topics),
  ];
}

function render() {
  const needle = document.getElementById('group-filter').value.trim().toLowerCase();
  const matching = groups.filter((g) => g.group_id.toLowerCase().includes(needle));
  const shown = matching.slice(0, ROWS_MAX);
  const empty = needle ? 'No group’s id contains that.' : 'No groups yet.';
  const more =
    matching.length > shown.length
      ? el('p', { class: 'muted' }, `The first ${ROWS_MAX} are shown: filter to find the others.`)
      : null;
  fill('groups', table(COLUMNS, shown.map(row), empty), more);
  const lagAt = evaluatedAt > 0 ? ` · lag as of ${fmtTime(evaluatedAt)}` : '';
  document.getElementById('group-count').textContent =
    `${fmtInt(matching.length)} of ${fmtInt(groups.length)} groups${lagAt}`;
}

async function refresh() {
  const body = await api('/api/v1/groups');
  groups = (body.groups || []).slice().sort((a, b) => (a.group_id < b.group_id ? -1 : a.group_id > b.group_id ? 1 : 0));
  evaluatedAt = body.lag_evaluated_at_ms || 0;
  render();
}

document.getElementById('group-filter').addEventListener('input', render);
document.getElementById('group-filter-form').addEventListener('submit', (e) => e.preventDefault());
poll('groups', refresh, POLL_MS);
