// A group of any kind: its state, members and assignments, per partition
// the committed offset, the end and the lag (share groups: the window,
// records in flight and delivery counts), polled; and its lag over time
// as a chart, from the broker's bounded history; its offsets reset
// (reset.js); and its deletion (deletion.js).

import {
  ApiError,
  api,
  cards,
  el,
  fill,
  fmtInt,
  fmtSeconds,
  fmtTime,
  nameFromPath,
  poll,
  stateBadge,
  table,
  topicLink,
} from './common.js';
import { lagChart } from './chart.js';
import { deleting, offerDeletion, startDeletion } from './deletion.js';
import { setResetTopics, startReset } from './reset.js';

const POLL_MS = 3000;
const id = nameFromPath('/console/groups');
const apiPath = `/api/v1/groups/${encodeURIComponent(id)}`;

const OFFSET_COLUMNS = [
  { label: 'Topic' },
  { label: 'Partition', num: true },
  { label: 'Committed', num: true },
  { label: 'End', num: true },
  { label: 'Lag (records)', num: true },
  { label: 'Oldest unconsumed', num: true },
];

function offsetRow(o) {
  return [
    topicLink(o.topic),
    fmtInt(o.partition),
    fmtInt(o.committed),
    fmtInt(o.end),
    fmtInt(o.lag_records),
    fmtSeconds(o.lag_seconds),
  ];
}

const SHARE_COLUMNS = [
  { label: 'Topic' },
  { label: 'Partition', num: true },
  { label: 'Start', num: true },
  { label: 'End', num: true },
  { label: 'In flight', num: true },
  { label: 'Backing off', num: true },
  { label: 'Dead letters pending', num: true },
  { label: 'Deliveries 1 / 2 / 3 / 4 / 5+' },
  { label: 'Lag (records)', num: true },
  { label: 'Oldest unconsumed', num: true },
];

function shareRow(p) {
  const d = p.delivery_counts || {};
  const deliveries = ['1', '2', '3', '4', '5+'].map((k) => fmtInt(d[k])).join(' / ');
  return [
    topicLink(p.topic),
    fmtInt(p.partition),
    fmtInt(p.start_offset),
    fmtInt(p.end_offset),
    fmtInt(p.in_flight),
    fmtInt(p.backing_off),
    fmtInt(p.dead_letters_pending),
    deliveries,
    fmtInt(p.lag_records),
    fmtSeconds(p.lag_seconds),
  ];
}

function assignmentText(assignment) {
  return (assignment || []).map((a) => `${a.topic}: ${a.partitions.join(', ')}`).join('; ') || '–';
}

/**
 * The members' table. A classic group's members carry no epoch or
 * assignment (the assignment is the clients' own bytes): those columns are
 * shown only for the protocols that have them.
 */
function membersTable(members) {
  const protocol = members.some((m) => m.member_epoch !== undefined);
  const labels = ['Member', 'Client id', 'Host', 'Instance', ...(protocol ? ['Epoch', 'Assignment'] : [])];
  const rows = members.map((m) => [
    el('code', {}, m.member_id),
    m.client_id || '–',
    m.client_host || '–',
    m.instance_id || '–',
    ...(protocol ? [fmtInt(m.member_epoch), assignmentText(m.assignment)] : []),
  ]);
  return table(
    labels.map((label) => ({ label })),
    rows,
    'No members.',
  );
}

function renderSummary(g, lagRecords) {
  const extra = [];
  if (g.group_epoch !== undefined) extra.push(['Group epoch', fmtInt(g.group_epoch)]);
  fill(
    'group-summary',
    cards([
      ['Type', g.type],
      ['Protocol', g.protocol_type || '–'],
      ['State', stateBadge(g.state)],
      ['Members', fmtInt((g.members || []).length)],
      ['Lag (records)', fmtInt(lagRecords)],
      ['Lag as of', fmtTime(g.lag_evaluated_at_ms)],
      ...extra,
    ]),
  );
}

function renderSettings(settings) {
  const section = document.getElementById('group-settings-section');
  section.hidden = !settings;
  if (!settings) return;
  const rows = Object.entries(settings).map(([k, v]) => [el('code', {}, k), v === '' ? '–' : String(v)]);
  fill('group-settings', table([{ label: 'Setting' }, { label: 'Value' }], rows));
}

async function refresh() {
  if (deleting()) return;
  const g = await api(apiPath);
  if (deleting()) return;
  const share = g.type === 'share';
  const rows = share ? g.partitions || [] : g.offsets || [];
  const lagRecords = rows.reduce((n, r) => n + (r.lag_records || 0), 0);
  const had = hasPartitions;
  hasPartitions = rows.length > 0;
  if (hasPartitions && !had && lagPoll) lagPoll.now();
  renderSummary(g, lagRecords);
  fill(
    'offsets',
    share
      ? table(SHARE_COLUMNS, rows.map(shareRow), 'No share-partitions yet.')
      : table(OFFSET_COLUMNS, rows.map(offsetRow), 'No committed offsets.'),
  );
  fill('members', membersTable(g.members || []));
  renderSettings(share ? g.settings : null);
  setResetTopics(share ? [] : rows);
  const members = (g.members || []).length;
  offerDeletion(g.deletion, members > 0 ? 'The group has members: stop its consumers first.' : null);
}

let lagPoll = null;
/** Whether the group has partitions to lag on: no history is asked before. */
let hasPartitions = false;

/**
 * The chart, once the group has partitions. Hidden while the broker has no
 * lag evaluated for the group (404), and for good when the broker keeps no
 * history at all (no such route).
 */
async function refreshHistory() {
  const section = document.getElementById('lag-chart-section');
  if (!hasPartitions || deleting()) return;
  try {
    const body = await api(`${apiPath}/lag-history`);
    section.hidden = false;
    fill('lag-chart', lagChart(body.points || []));
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
    section.hidden = true;
    if (e.message.startsWith('no such route')) lagPoll.stop();
  }
}

document.getElementById('group-name').textContent = id;
document.title = `${id} · Groups · Veltrix`;
startReset(apiPath);
startDeletion(id, apiPath, '/console/groups');
poll('group', refresh, POLL_MS);
lagPoll = poll('lag-history', refreshHistory, POLL_MS);
