// The message browser of a topic page: the newest records of each
// partition, or from an offset or a time on; filtered by key, header and
// value text, through `GET /api/v1/topics/{name}/records`.
// Values are shown as pretty-printed JSON when they parse, as text when
// they are UTF-8, and as hex otherwise; the search is kept in the page's
// address, so a reload or a shared link shows the same records.

import {
  ApiError,
  api,
  clearProblem,
  describeError,
  el,
  fill,
  fmtBytes,
  fmtInt,
  fmtTime,
  showProblem,
} from './common.js';

const FIELDS = ['partition', 'seek', 'offset', 'time', 'key', 'header', 'header_value', 'text', 'limit'];
const LIMIT_DEFAULT = 50;
const HEX_BYTES_PER_LINE = 16;

let topic = '';
let known = [];

const input = (field) => document.getElementById(`browse-${field.replace('_', '-')}`);

/** The partitions the select offers, kept in step with the topic. */
export function setPartitions(partitions) {
  if (partitions.length === known.length) return;
  known = partitions;
  const select = input('partition');
  const chosen = select.value;
  select.replaceChildren(
    el('option', { value: '' }, 'all'),
    ...partitions.map((p) => el('option', { value: p }, String(p))),
  );
  select.value = partitions.includes(Number(chosen)) ? chosen : '';
}

/** The search's parameters for the API, from the form. */
function apiParams() {
  const params = new URLSearchParams();
  const value = (field) => input(field).value.trim();
  if (value('partition') !== '') params.set('partition', value('partition'));
  const seek = value('seek');
  if (seek === 'offset' && value('offset') !== '') params.set('offset', value('offset'));
  if (seek === 'time' && value('time') !== '') params.set('time_ms', String(new Date(value('time')).getTime()));
  for (const field of ['key', 'header', 'text']) {
    if (value(field) !== '') params.set(field, value(field));
  }
  if (value('header') !== '' && value('header_value') !== '') params.set('header_value', value('header_value'));
  params.set('limit', value('limit') || String(LIMIT_DEFAULT));
  return params;
}

function showSeek() {
  const seek = input('seek').value;
  document.getElementById('browse-offset-label').hidden = seek !== 'offset';
  document.getElementById('browse-time-label').hidden = seek !== 'time';
}

function hexLines(hex) {
  const bytes = hex.match(/../g) || [];
  const lines = [];
  for (let i = 0; i < bytes.length; i += HEX_BYTES_PER_LINE) {
    lines.push(bytes.slice(i, i + HEX_BYTES_PER_LINE).join(' '));
  }
  return lines.join('\n');
}

/** One key, value or header value: JSON, text, or hex. */
function valueView(v) {
  if (v === null || v === undefined) return el('span', { class: 'muted' }, 'null');
  const cut = v.cut ? el('span', { class: 'muted cut' }, ` (first part of ${fmtBytes(v.size)} shown)`) : null;
  if (v.text === null || v.text === undefined) {
    return el(
      'div',
      { class: 'value' },
      el('pre', { class: 'hex', title: 'binary, as hex' }, hexLines(v.hex || '')),
      cut,
    );
  }
  let pretty = null;
  const trimmed = v.text.trim();
  // JSON.parse reads numbers as doubles: a 64-bit id would be shown
  // rounded, so a text with 16 digits in a row is shown as it is.
  const exact = !/\d{16}/.test(trimmed);
  if (exact && (trimmed.startsWith('{') || trimmed.startsWith('['))) {
    try {
      pretty = JSON.stringify(JSON.parse(trimmed), null, 2);
    } catch (_) {
      // Not JSON after all (or cut short): shown as text.
    }
  }
  const pre = pretty === null ? el('pre', { class: 'text' }, v.text) : el('pre', { class: 'json' }, pretty);
  return el('div', { class: 'value' }, pre, cut);
}

function recordView(r) {
  const headers = (r.headers || []).map((h) =>
    el('div', { class: 'header-pair' }, el('dt', {}, h.key), el('dd', {}, valueView(h.value))),
  );
  return el(
    'article',
    { class: 'record', 'data-partition': r.partition, 'data-offset': r.offset },
    el(
      'p',
      { class: 'record-meta' },
      `partition ${r.partition} · offset ${fmtInt(r.offset)} · ${fmtTime(r.timestamp_ms)}`,
    ),
    el(
      'dl',
      { class: 'record-fields' },
      el('div', { class: 'field' }, el('dt', {}, 'Key'), el('dd', { class: 'record-key' }, valueView(r.key))),
      el(
        'div',
        { class: 'field' },
        el('dt', {}, 'Headers'),
        el(
          'dd',
          { class: 'record-headers' },
          headers.length ? el('dl', {}, headers) : el('span', { class: 'muted' }, 'none'),
        ),
      ),
      el('div', { class: 'field' }, el('dt', {}, 'Value'), el('dd', { class: 'record-value' }, valueView(r.value))),
    ),
  );
}

function summary(body, params) {
  const n = (body.records || []).length;
  const found = `${fmtInt(n)} ${n === 1 ? 'record' : 'records'} found, ${fmtInt(body.scanned)} scanned`;
  const more = body.truncated ? ' (the search stopped early: narrow it, or seek further on)' : '';
  const last = n > 0 ? body.records[n - 1] : null;
  const next =
    last && params.has('partition')
      ? el('button', { type: 'button', class: 'link', onclick: () => continueAfter(last.offset) }, 'Next records →')
      : null;
  return [`${found}${more}. `, next];
}

function continueAfter(offset) {
  input('seek').value = 'offset';
  input('offset').value = String(offset + 1);
  showSeek();
  search();
}

function describeBrowseError(e) {
  if (e instanceof ApiError && e.status === 404 && e.message.startsWith('no such route')) {
    return 'This broker does not serve the message browser yet (GET /api/v1/topics/{name}/records).';
  }
  return describeError(e);
}

async function search() {
  const params = apiParams();
  writeLocation();
  fill('browse-summary', 'Searching…');
  try {
    const body = await api(`/api/v1/topics/${encodeURIComponent(topic)}/records?${params}`);
    const records = body.records || [];
    fill('records', records.map(recordView));
    fill('browse-summary', summary(body, params));
    clearProblem('records');
  } catch (e) {
    fill('records');
    fill('browse-summary', describeBrowseError(e));
    showProblem('records', describeBrowseError(e));
  }
}

function writeLocation() {
  const params = new URLSearchParams();
  for (const field of FIELDS) {
    const value = input(field).value.trim();
    if (value !== '' && !(field === 'seek' && value === 'latest')) params.set(field, value);
  }
  history.replaceState(null, '', `${location.pathname}?${params}`);
}

/** A search in the address (a reload, a link) is filled in and run. */
function readLocation() {
  const params = new URLSearchParams(location.search);
  if (![...params.keys()].some((k) => FIELDS.includes(k))) return false;
  for (const field of FIELDS) {
    if (!params.has(field)) continue;
    if (field === 'partition') {
      const select = input('partition');
      if (![...select.options].some((o) => o.value === params.get(field)))
        select.append(el('option', { value: params.get(field) }, params.get(field)));
    }
    input(field).value = params.get(field);
  }
  showSeek();
  return true;
}

/** Shows the record at `offset` of `partition` (just produced, say). */
export function showRecord(partition, offset) {
  const select = input('partition');
  if (![...select.options].some((o) => o.value === String(partition)))
    select.append(el('option', { value: partition }, String(partition)));
  select.value = String(partition);
  input('seek').value = 'offset';
  input('offset').value = String(offset);
  for (const field of ['key', 'header', 'header_value', 'text']) input(field).value = '';
  input('limit').value = '1';
  showSeek();
  search();
}

/** Wires the form of the topic `name`'s page; runs a search the address holds. */
export function startBrowser(name) {
  topic = name;
  input('seek').addEventListener('change', showSeek);
  document.getElementById('browse').addEventListener('submit', (e) => {
    e.preventDefault();
    search();
  });
  if (readLocation()) search();
}
