// A topic: its partitions (log start, end, size, segments, poisoned),
// polled; its settings and duplicate window; and the message browser
// (records.js); a form that produces a test record; and its deletion
// (deletion.js).

import { api, apiPost, badge, describeError, el, fill, fmtBytes, fmtInt, nameFromPath, poll, table } from './common.js';
import { deleting, offerDeletion, startDeletion } from './deletion.js';
import { setPartitions, showRecord, startBrowser } from './records.js';

const POLL_MS = 3000;
const name = nameFromPath('/console/topics');
const apiPath = `/api/v1/topics/${encodeURIComponent(name)}`;

const PARTITION_COLUMNS = [
  { label: 'Partition', num: true },
  { label: 'Log start', num: true },
  { label: 'End', num: true },
  { label: 'Records', num: true },
  { label: 'Size', num: true },
  { label: 'Segments', num: true },
  { label: 'Health' },
];

function partitionRow(p) {
  return [
    fmtInt(p.partition),
    fmtInt(p.log_start),
    fmtInt(p.end),
    fmtInt(p.end - p.log_start),
    fmtBytes(p.size_bytes),
    fmtInt(p.segments),
    p.poisoned ? el('span', {}, badge('poisoned', 'firing'), ' ', p.poisoned) : badge('ok'),
  ];
}

/** The topic's own settings; those not set are the broker's defaults. */
function renderSettings(config) {
  const rows = Object.entries(config || {}).map(([k, v]) => [el('code', {}, k), String(v)]);
  const columns = [{ label: 'Setting' }, { label: 'Value' }];
  fill('settings', table(columns, rows, 'Nothing set on this topic: every setting is the broker’s default.'));
}

function renderDedup(dedup) {
  if (!dedup) {
    fill('dedup');
    return;
  }
  const rows = Object.entries(dedup).map(([k, v]) => [el('code', {}, k), v === null ? '–' : String(v)]);
  fill('dedup', el('h3', {}, 'Duplicate window'), table([{ label: 'Measure' }, { label: 'Value' }], rows));
}

async function refresh() {
  if (deleting()) return;
  const t = await api(apiPath);
  if (deleting()) return;
  const partitions = t.partitions || [];
  fill('partitions', table(PARTITION_COLUMNS, partitions.map(partitionRow), 'No partitions.'));
  document.getElementById('topic-id').textContent = `id ${t.id}`;
  renderSettings(t.config);
  renderDedup(t.dedup);
  setPartitions(partitions.map((p) => p.partition));
  setProducePartitions(partitions.map((p) => p.partition));
  offerDeletion(t.deletion);
}

let producePartitions = 0;

function setProducePartitions(partitions) {
  if (partitions.length === producePartitions) return;
  producePartitions = partitions.length;
  const select = document.getElementById('produce-partition');
  const chosen = select.value;
  select.replaceChildren(
    el('option', { value: '' }, 'by key (any without one)'),
    ...partitions.map((p) => el('option', { value: p }, String(p))),
  );
  select.value = partitions.includes(Number(chosen)) ? chosen : '';
}

/** `name: value` lines as headers; a line without `:` is a header without a value. */
function parseHeaders(text) {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const at = line.indexOf(':');
      return at < 0 ? { key: line, value: null } : { key: line.slice(0, at).trim(), value: line.slice(at + 1).trim() };
    });
}

async function produce(e) {
  e.preventDefault();
  const value = (id) => document.getElementById(id).value;
  const body = { value: value('produce-value'), headers: parseHeaders(value('produce-headers')) };
  if (value('produce-key') !== '') body.key = value('produce-key');
  if (value('produce-partition') !== '') body.partition = Number(value('produce-partition'));
  const button = document.getElementById('produce-submit');
  button.disabled = true;
  fill('produce-result', 'Producing…');
  try {
    const done = await apiPost(`${apiPath}/records`, body);
    const where = `partition ${done.partition}, offset ${done.offset}`;
    fill(
      'produce-result',
      done.duplicate
        ? el('span', { class: 'badge badge-pending' }, 'dropped as a duplicate by the topic’s window')
        : el(
            'span',
            { id: 'produce-done' },
            badge('produced', 'ok'),
            ` at ${where}. `,
            el('button', { type: 'button', class: 'link', onclick: () => showRecord(done.partition, done.offset) }, 'Show it'),
          ),
    );
  } catch (err) {
    fill('produce-result', el('span', { id: 'produce-error', class: 'error' }, describeError(err)));
  } finally {
    button.disabled = false;
  }
}

document.getElementById('produce').addEventListener('submit', produce);

document.getElementById('topic-name').textContent = name;
document.title = `${name} · Topics · Veltrix`;
poll('topic', refresh, POLL_MS);
startBrowser(name);
startDeletion(name, apiPath, '/console/topics');
