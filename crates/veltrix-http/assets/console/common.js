// What every page of the console shares: the JSON API, building the DOM
// (text only: nothing from the broker is ever parsed as HTML, and the
// Content-Security-Policy's Trusted Types would refuse it anyway),
// formatting, the problems banner, and polling while the tab is visible.

/** An answer from the API other than 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, message, path) {
    super(message);
    this.status = status;
    this.path = path;
  }
}

/**
 * GET a path of the API as JSON. Same origin, so the browser sends the
 * credentials it holds for the broker (basic credentials) by itself.
 */
export function api(path) {
  return request(path, { method: 'GET' });
}

/**
 * POST `body` as JSON to a path of the API; its JSON answer. The browser
 * sends its `Origin`, which the broker checks against its own host.
 */
export function apiPost(path, body) {
  return request(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/**
 * DELETE a path of the API; its JSON answer. Same origin, like `apiPost`:
 * the broker refuses a change another site sends.
 */
export function apiDelete(path) {
  return request(path, { method: 'DELETE' });
}

async function request(path, init) {
  let response;
  try {
    response = await fetch(path, {
      ...init,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json', ...(init.headers || {}) },
    });
  } catch (e) {
    throw new ApiError(0, `the broker did not answer (${e.message})`, path);
  }
  if (response.ok) return response.json();
  let message = response.statusText || `status ${response.status}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') message = body.error;
  } catch (_) {
    // Not JSON: the status line says enough.
  }
  throw new ApiError(response.status, message, path);
}

/** A sentence for the banner: what failed and what to do about it. */
export function describeError(e) {
  if (!(e instanceof ApiError)) return `The console failed: ${e && e.message ? e.message : e}`;
  switch (e.status) {
    case 0:
      return `No answer from the broker for ${e.path}: ${e.message}. Is it running?`;
    case 401:
      return `Authentication required for ${e.path}: ${e.message}. Reload the page and sign in with a user of this broker.`;
    case 403:
      return `Not allowed: ${e.message} (${e.path}). An administrator can grant the ACL this page needs.`;
    default:
      return `${e.path} answered ${e.status}: ${e.message}`;
  }
}

const problems = new Map();

/** Shows a problem under its key, replacing the key's previous one. */
export function showProblem(key, message) {
  problems.set(key, message);
  renderProblems();
}

export function clearProblem(key) {
  if (problems.delete(key)) renderProblems();
}

function renderProblems() {
  const box = document.getElementById('problems');
  box.replaceChildren(...[...problems.values()].map((m) => el('p', {}, m)));
  box.hidden = problems.size === 0;
}

/**
 * An element: `props` are attributes, with `class`, `text` and `on<event>`
 * handled apart; children are nodes or strings (made text nodes).
 */
export function el(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element, as `el` makes HTML ones. */
export function svg(tag, props = {}, ...children) {
  return build(document.createElementNS(SVG, tag), props, children);
}

function build(node, props, children) {
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.setAttribute('class', v);
    else if (k === 'text') node.textContent = String(v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** A link within the console: a fixed path and one encoded name. */
export function link(base, name, text = name) {
  return el('a', { href: `${base}/${encodeURIComponent(name)}` }, text);
}

export function topicLink(name) {
  return link('/console/topics', name);
}

export function groupLink(id) {
  return link('/console/groups', id);
}

/**
 * A table: `columns` are `{label, num}` (numbers right-aligned), `rows`
 * arrays of cells (nodes or strings); `empty` is said when there are none.
 */
export function table(columns, rows, empty = 'None.') {
  if (rows.length === 0) return el('p', { class: 'muted' }, empty);
  const head = el(
    'tr',
    {},
    columns.map((c) => el('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)),
  );
  const body = rows.map((row) =>
    el(
      'tr',
      {},
      row.map((cell, i) => el('td', { class: columns[i] && columns[i].num ? 'num' : null }, cell)),
    ),
  );
  return el('div', { class: 'table-wrap' }, el('table', {}, el('thead', {}, head), el('tbody', {}, body)));
}

/** A definition list of `[label, value]` pairs, as cards. */
export function cards(pairs) {
  return pairs.map(([label, value, extra]) =>
    el(
      'div',
      { class: 'card' },
      el('dt', {}, label),
      el('dd', {}, value),
      extra ? el('dd', { class: 'muted' }, extra) : null,
    ),
  );
}

/** Replaces the children of the element with this id. */
export function fill(id, ...nodes) {
  document.getElementById(id).replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined));
}

export function badge(word, kind = word) {
  return el('span', { class: `badge badge-${kind}` }, word);
}

/** A group's state, coloured: stable is well, empty is idle, dead is gone. */
export function stateBadge(state) {
  const word = String(state || 'unknown');
  const lower = word.toLowerCase();
  const kind =
    lower === 'stable'
      ? 'ok'
      : lower === 'dead' || lower === 'unknown'
        ? 'firing'
        : lower === 'empty'
          ? 'muted'
          : 'pending';
  return badge(word, kind);
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function fmtInt(n) {
  return n === null || n === undefined ? '–' : integer.format(n);
}

/** `1 rule`, `2 rules`. */
export function plural(n, word) {
  return `${fmtInt(n)} ${n === 1 ? word : `${word}s`}`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Seconds as `3d 4h`, `5m 12s`, `0.4s`. */
export function fmtSeconds(s) {
  if (s === null || s === undefined) return '–';
  if (s < 10) return `${Number(s.toFixed(1))}s`;
  const parts = [
    [Math.floor(s / 86400), 'd'],
    [Math.floor((s % 86400) / 3600), 'h'],
    [Math.floor((s % 3600) / 60), 'm'],
    [Math.floor(s % 60), 's'],
  ];
  const first = parts.findIndex(([v]) => v > 0);
  return parts
    .slice(first, first + 2)
    .map(([v, u]) => `${v}${u}`)
    .join(' ');
}

/** Milliseconds since the epoch as local `YYYY-MM-DD HH:MM:SS`. */
export function fmtTime(ms) {
  if (ms === null || ms === undefined || ms <= 0) return '–';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The last segment of the path after `prefix/`, decoded: a topic or group. */
export function nameFromPath(prefix) {
  const rest = location.pathname.slice(prefix.length + 1);
  return decodeURIComponent(rest);
}

/** Marks the page's entry in the navigation as the current one. */
function markNav() {
  const section = document.body.dataset.section;
  const current = document.querySelector(`nav a[data-nav="${section}"]`);
  if (current) current.setAttribute('aria-current', 'page');
}

function setLive(text) {
  const live = document.getElementById('live');
  if (live) live.textContent = text;
}

/**
 * Runs `task` now and every `intervalMs` after each run ends (never two at
 * once), only while the tab is visible: hidden, it stops; shown again, it
 * runs at once. A failure goes to the banner under `key` until a run
 * succeeds. Returns `{stop, now}`.
 */
export function poll(key, task, intervalMs) {
  let timer = null;
  let running = false;
  let stopped = false;
  const schedule = () => {
    if (!stopped && document.visibilityState === 'visible') timer = setTimeout(run, intervalMs);
  };
  async function run() {
    timer = null;
    if (stopped || running || document.visibilityState !== 'visible') return;
    running = true;
    try {
      await task();
      clearProblem(key);
      setLive(`Live · updated ${fmtTime(Date.now()).slice(11)}`);
    } catch (e) {
      showProblem(key, describeError(e));
    } finally {
      running = false;
    }
    schedule();
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      if (timer === null) run();
    } else {
      clearTimeout(timer);
      timer = null;
      setLive('Paused while the tab is hidden');
    }
  });
  run();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = null;
    },
    now() {
      clearTimeout(timer);
      timer = null;
      run();
    },
  };
}

/** Runs `task` once, its failure shown in the banner under `key`. */
export async function once(key, task) {
  try {
    await task();
    clearProblem(key);
  } catch (e) {
    showProblem(key, describeError(e));
  }
}

/** `fn` called `ms` after the last of a burst of calls. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/**
 * After a deletion the list is opened with `?deleted=NAME`: said once under
 * the navigation, and taken out of the address so a reload does not say it
 * again.
 */
function announceDeleted() {
  const params = new URLSearchParams(location.search);
  const gone = params.get('deleted');
  const notice = document.getElementById('notice');
  if (gone === null || notice === null) return;
  const kind = { topics: 'topic ', groups: 'group ' }[document.body.dataset.section] || '';
  notice.textContent = `Deleted ${kind}“${gone}”.`;
  notice.hidden = false;
  params.delete('deleted');
  const query = params.toString();
  history.replaceState(null, '', query ? `?${query}` : location.pathname);
}

markNav();
announceDeleted();

/** An alert's threshold (`{"lag_records": n}` and the like) in words. */
export function thresholdText(threshold) {
  const [kind, n] = Object.entries(threshold || {})[0] || ['', null];
  switch (kind) {
    case 'lag_records':
      return `lag > ${fmtInt(n)} records`;
    case 'lag_ms':
      return `lag > ${fmtSeconds(n / 1000)}`;
    case 'dead_letters_per_minute':
      return `> ${fmtInt(n)} dead letters a minute`;
    default:
      return JSON.stringify(threshold);
  }
}

/** What an alert measured last, in its threshold's unit. */
export function valueText(alert) {
  const kind = Object.keys(alert.threshold || {})[0];
  if (kind === 'lag_ms') return fmtSeconds(alert.value / 1000);
  if (kind === 'dead_letters_per_minute') return `${fmtInt(alert.value)} a minute`;
  return `${fmtInt(alert.value)} records`;
}
