// A group's offsets reset on one of its topics: the plan first
// (POST /api/v1/groups/{id}/offsets/reset without `execute`: the partitions'
// current and new offsets, and how their lag would change), then, on
// Execute, the same request committed. The broker refuses the commit while
// changes over HTTP are off or the group has members, and says why.

import { apiPost, describeError, el, fill, fmtInt, table } from './common.js';

let path = '';
/** Each topic's partitions and ends, from the group's page. */
let topics = new Map();

const $ = (id) => document.getElementById(id);

/** The topics the group has offsets on, `[{topic, partition, end}]`. */
export function setResetTopics(offsets) {
  const next = new Map();
  for (const o of offsets) {
    if (!next.has(o.topic)) next.set(o.topic, []);
    next.get(o.topic).push(o.partition);
  }
  const same =
    next.size === topics.size && [...next].every(([t, ps]) => (topics.get(t) || []).length === ps.length);
  $('reset-section').hidden = next.size === 0;
  if (same) return;
  topics = next;
  const select = $('reset-topic');
  const chosen = select.value;
  select.replaceChildren(...[...topics.keys()].sort().map((t) => el('option', { value: t }, t)));
  if (topics.has(chosen)) select.value = chosen;
  partitionsOf();
}

function partitionsOf() {
  const select = $('reset-partition');
  const chosen = select.value;
  const partitions = (topics.get($('reset-topic').value) || []).slice().sort((a, b) => a - b);
  select.replaceChildren(
    el('option', { value: '' }, 'all'),
    ...partitions.map((p) => el('option', { value: p }, String(p))),
  );
  select.value = partitions.includes(Number(chosen)) ? chosen : '';
}

function showTarget() {
  const to = $('reset-to').value;
  $('reset-offset-label').hidden = to !== 'offset';
  $('reset-time-label').hidden = to !== 'time';
}

function request(execute) {
  const body = { topic: $('reset-topic').value, to: $('reset-to').value, execute };
  if ($('reset-partition').value !== '') body.partitions = [Number($('reset-partition').value)];
  if (body.to === 'offset') body.offset = Number($('reset-offset').value || 0);
  if (body.to === 'time') body.time_ms = new Date($('reset-time').value).getTime();
  return body;
}

const COLUMNS = [
  { label: 'Partition', num: true },
  { label: 'Current', num: true },
  { label: 'New', num: true },
  { label: 'End', num: true },
  { label: 'Lag now', num: true },
  { label: 'Lag after', num: true },
  { label: 'Lag change', num: true },
];

function signed(n) {
  return n > 0 ? `+${fmtInt(n)}` : fmtInt(n);
}

function planRow(step) {
  const lagNow = step.current === null || step.current === undefined ? null : step.log_end - step.current;
  const lagAfter = step.log_end - step.new;
  return [
    fmtInt(step.partition),
    step.current === null || step.current === undefined ? 'none' : fmtInt(step.current),
    el('span', {}, fmtInt(step.new), step.clamped ? el('span', { class: 'muted' }, ' (clamped)') : null),
    fmtInt(step.log_end),
    fmtInt(lagNow),
    fmtInt(lagAfter),
    lagNow === null ? '–' : signed(lagAfter - lagNow),
  ];
}

async function plan(e) {
  e.preventDefault();
  const body = request(false);
  fill('reset-result', el('p', { class: 'muted' }, 'Planning…'));
  try {
    const answer = await apiPost(path, body);
    const steps = answer.plan || [];
    const execute = el('button', { id: 'reset-execute', type: 'button' }, 'Execute');
    execute.addEventListener('click', () => run(body, execute));
    fill(
      'reset-result',
      el('h3', {}, `Plan for ${body.topic} (nothing changed yet)`),
      table(COLUMNS, steps.map(planRow), 'No partition to reset.'),
      el('div', { class: 'actions' }, execute, el('span', { id: 'reset-outcome', 'aria-live': 'polite' })),
    );
  } catch (err) {
    fill('reset-result', el('p', { id: 'reset-error', class: 'error' }, describeError(err)));
  }
}

async function run(body, button) {
  button.disabled = true;
  fill('reset-outcome', 'Committing…');
  try {
    const answer = await apiPost(path, { ...body, execute: true });
    fill('reset-outcome', el('span', { id: 'reset-done', class: 'badge badge-ok' }, `reset: ${(answer.plan || []).length} partition(s) committed`));
  } catch (err) {
    button.disabled = false;
    fill('reset-outcome', el('span', { id: 'reset-error', class: 'error' }, describeError(err)));
  }
}

/** Wires the form of the group whose API path is `groupPath`. */
export function startReset(groupPath) {
  path = `${groupPath}/offsets/reset`;
  $('reset-topic').addEventListener('change', partitionsOf);
  $('reset-to').addEventListener('change', showTarget);
  $('reset').addEventListener('submit', plan);
  showTarget();
}
