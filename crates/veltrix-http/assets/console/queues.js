// Queues: share groups with their records in flight and delivery counts
// per share-partition; a dead-letter topic's letters with their
// disposition headers, a selection of which is redriven (one job per run
// of consecutive letters of a partition); and the redrive jobs' progress.
// Polled.

import {
  api,
  apiPost,
  badge,
  describeError,
  el,
  fill,
  fmtInt,
  fmtSeconds,
  fmtTime,
  groupLink,
  poll,
  stateBadge,
  table,
  topicLink,
} from './common.js';

const POLL_MS = 5000;
/** Share groups whose partitions are fetched at most per refresh. */
const SHARE_DETAILS_MAX = 50;
/** Letters listed at once. */
const LETTERS_MAX = 100;
/** Where a share group names its dead-letter topic. */
const DLQ_KEY = 'errors.deadletterqueue.topic.name';

const $ = (id) => document.getElementById(id);

/** Letters ticked, as `partition:offset`, kept across refreshes. */
const selected = new Set();
let letters = [];
let dlqTopic = new URLSearchParams(location.search).get('topic') || '';

const SHARE_COLUMNS = [
  { label: 'Group' },
  { label: 'State' },
  { label: 'Members', num: true },
  { label: 'Topic' },
  { label: 'Partition', num: true },
  { label: 'In flight', num: true },
  { label: 'Backing off', num: true },
  { label: 'Deliveries 1 / 2 / 3 / 4 / 5+' },
  { label: 'Dead-lettered', num: true },
  { label: 'Lag (records)', num: true },
  { label: 'Oldest unconsumed', num: true },
];

function shareRows(g) {
  const partitions = g.partitions || [];
  const group = [groupLink(g.group_id), stateBadge(g.state), fmtInt((g.members || []).length)];
  if (partitions.length === 0) return [[...group, '–', '–', '–', '–', '–', '–', '–', '–']];
  return partitions.map((p) => {
    const d = p.delivery_counts || {};
    return [
      ...group,
      topicLink(p.topic),
      fmtInt(p.partition),
      fmtInt(p.in_flight),
      fmtInt(p.backing_off),
      ['1', '2', '3', '4', '5+'].map((k) => fmtInt(d[k])).join(' / '),
      fmtInt((p.records || {}).dead_lettered),
      fmtInt(p.lag_records),
      fmtSeconds(p.lag_seconds),
    ];
  });
}

async function refreshShare() {
  const body = await api('/api/v1/groups');
  const share = (body.groups || []).filter((g) => g.type === 'share');
  share.sort((a, b) => (a.group_id < b.group_id ? -1 : 1));
  const shown = share.slice(0, SHARE_DETAILS_MAX);
  const details = await Promise.all(shown.map((g) => api(`/api/v1/groups/${encodeURIComponent(g.group_id)}`)));
  const more =
    share.length > shown.length
      ? el('p', { class: 'muted' }, `The first ${SHARE_DETAILS_MAX} of ${fmtInt(share.length)} share groups.`)
      : null;
  fill('share-groups', table(SHARE_COLUMNS, details.flatMap(shareRows), 'No share groups.'), more);
  const topics = [...new Set(details.map((g) => (g.settings || {})[DLQ_KEY]).filter((t) => t))].sort();
  setDlqTopics(topics);
}

function setDlqTopics(topics) {
  const select = $('dlq-topic');
  if (dlqTopic && !topics.includes(dlqTopic)) topics = [dlqTopic, ...topics];
  const current = [...select.options].map((o) => o.value);
  if (current.length !== topics.length || current.some((t, i) => t !== topics[i])) {
    select.replaceChildren(...topics.map((t) => el('option', { value: t }, t)));
  }
  if (!dlqTopic && topics.length > 0) dlqTopic = topics[0];
  select.value = dlqTopic;
}

const LETTER_COLUMNS = [
  { label: '' },
  { label: 'Partition', num: true },
  { label: 'Offset', num: true },
  { label: 'Dead-lettered' },
  { label: 'From' },
  { label: 'Group' },
  { label: 'Reason' },
  { label: 'Deliveries', num: true },
  { label: 'Key' },
  { label: 'Value' },
  { label: 'Disposition headers' },
];

function preview(b) {
  if (!b) return el('span', { class: 'muted' }, 'null');
  const text = b.text !== undefined ? b.text : `0x${b.hex}`;
  return el('code', {}, b.truncated ? `${text}…` : text);
}

function letterKey(l) {
  return `${l.partition}:${l.offset}`;
}

function letterRow(l) {
  const key = letterKey(l);
  const box = el('input', {
    type: 'checkbox',
    class: 'letter-select',
    'data-letter': key,
    'aria-label': `Select the letter at partition ${l.partition}, offset ${l.offset}`,
    checked: selected.has(key),
    disabled: l.redriven,
  });
  box.addEventListener('change', () => {
    if (box.checked) selected.add(key);
    else selected.delete(key);
    $('dlq-redrive').disabled = selected.size === 0;
  });
  const s = l.source || {};
  const headers = el(
    'details',
    {},
    el('summary', {}, `${fmtInt((l.headers || []).length)} headers`),
    el(
      'ul',
      { class: 'headers' },
      (l.headers || []).map(([k, v]) => el('li', {}, el('code', {}, k), ' = ', v === null ? el('span', { class: 'muted' }, 'null') : el('code', {}, v))),
    ),
  );
  return [
    box,
    fmtInt(l.partition),
    fmtInt(l.offset),
    el('span', {}, fmtTime(l.timestamp_ms), l.redriven ? [' ', badge('redriven', 'ok')] : null),
    s.topic ? el('span', {}, topicLink(s.topic), ` [${s.partition}] @${fmtInt(s.offset)}`) : '–',
    l.group ? groupLink(l.group) : '–',
    el('span', {}, l.reason || '–', l.message ? el('span', { class: 'muted' }, ` ${l.message}`) : null),
    fmtInt(l.deliveries),
    preview(l.key),
    preview(l.value),
    headers,
  ];
}

async function refreshLetters() {
  if (!dlqTopic) {
    fill('letters', el('p', { class: 'muted' }, 'No share group names a dead-letter topic.'));
    return;
  }
  const body = await api(`/api/v1/dlq/${encodeURIComponent(dlqTopic)}/letters?limit=${LETTERS_MAX}`);
  letters = body.letters || [];
  const listed = new Set(letters.map(letterKey));
  for (const key of [...selected]) if (!listed.has(key)) selected.delete(key);
  $('dlq-redrive').disabled = selected.size === 0;
  fill(
    'letters',
    table(LETTER_COLUMNS, letters.map(letterRow), `No letters in ${dlqTopic}.`),
    body.more ? el('p', { class: 'muted' }, `The first ${LETTERS_MAX} letters.`) : null,
  );
}

/** The selection as runs of consecutive listed letters of one partition. */
function runs() {
  const out = [];
  let run = null;
  for (const l of letters) {
    if (!selected.has(letterKey(l)) || (run && run.partition !== l.partition)) {
      if (run) out.push(run);
      run = null;
    }
    if (!selected.has(letterKey(l))) continue;
    if (run) run.offset_last = l.offset;
    else run = { partition: l.partition, offset_first: l.offset, offset_last: l.offset };
  }
  if (run) out.push(run);
  return out;
}

async function redrive() {
  const button = $('dlq-redrive');
  button.disabled = true;
  const path = `/api/v1/dlq/${encodeURIComponent(dlqTopic)}/redrive`;
  try {
    const jobs = [];
    for (const run of runs()) jobs.push(await apiPost(path, run));
    selected.clear();
    fill('dlq-outcome', el('span', { id: 'dlq-done', class: 'badge badge-ok' }, `${jobs.length} redrive job(s) started: ${jobs.map((j) => `#${j.id}`).join(', ')}`));
  } catch (err) {
    fill('dlq-outcome', el('span', { id: 'dlq-error', class: 'error' }, describeError(err)));
  }
  letterPoll.now();
  jobPoll.now();
}

const JOB_COLUMNS = [
  { label: 'Job', num: true },
  { label: 'From' },
  { label: 'To' },
  { label: 'State' },
  { label: 'Moved', num: true },
  { label: 'Skipped', num: true },
  { label: 'Remaining', num: true },
  { label: 'Started' },
  { label: 'Updated' },
];

function jobState(state) {
  const s = (state && state.state) || String(state);
  const kind = s === 'done' ? 'ok' : s === 'failed' ? 'firing' : 'pending';
  return el('span', {}, badge(s, kind), state && state.reason ? ` ${state.reason}` : null);
}

async function refreshJobs() {
  const body = await api('/api/v1/redrives');
  const jobs = (body.redrives || []).slice().sort((a, b) => b.id - a.id);
  const rows = jobs.map((j) => [
    fmtInt(j.id),
    topicLink(j.topic),
    j.target ? topicLink(j.target) : 'each letter’s source',
    jobState(j.state),
    fmtInt(j.moved),
    fmtInt(j.skipped),
    fmtInt(j.remaining),
    fmtTime(j.created_ms),
    fmtTime(j.updated_ms),
  ]);
  fill('redrives', table(JOB_COLUMNS, rows, 'No redrives yet.'));
}

$('dlq-topic').addEventListener('change', () => {
  dlqTopic = $('dlq-topic').value;
  selected.clear();
  history.replaceState(null, '', `${location.pathname}?topic=${encodeURIComponent(dlqTopic)}`);
  letterPoll.now();
});
$('dlq-form').addEventListener('submit', (e) => e.preventDefault());
$('dlq-redrive').addEventListener('click', redrive);

let letterPoll = null;
const sharePoll = poll(
  'share',
  async () => {
    const had = dlqTopic;
    await refreshShare();
    if (!had && dlqTopic && letterPoll) letterPoll.now();
  },
  POLL_MS,
);
letterPoll = poll('letters', refreshLetters, POLL_MS);
const jobPoll = poll('redrives', refreshJobs, POLL_MS);
void sharePoll;
