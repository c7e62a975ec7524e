// A topic: its partitions (log start, end, size, segments, poisoned),
// polled; its settings and duplicate window; and the message browser
// (records.js).

import { api, badge, el, fill, fmtBytes, fmtInt, nameFromPath, poll, table } from './common.js';
import { setPartitions, startBrowser } from './records.js';

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
  const t = await api(apiPath);
  const partitions = t.partitions || [];
  fill('partitions', table(PARTITION_COLUMNS, partitions.map(partitionRow), 'No partitions.'));
  document.getElementById('topic-id').textContent = `id ${t.id}`;
  renderSettings(t.config);
  renderDedup(t.dedup);
  setPartitions(partitions.map((p) => p.partition));
}

document.getElementById('topic-name').textContent = name;
document.title = `${name} · Topics · Veltrix`;
poll('topic', refresh, POLL_MS);
startBrowser(name);
