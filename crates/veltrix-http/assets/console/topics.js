// The topics: a search by part of the name (debounced) and pages of 50.
// The API pages and searches itself when it knows `q`, `offset` and
// `limit` (its answer then has `total`); a broker that answers every topic
// at once is searched and paged here instead.

import { api, badge, debounce, fill, fmtBytes, fmtInt, once, table, topicLink } from './common.js';

const PAGE_SIZE = 50;
const SEARCH_DEBOUNCE_MS = 250;

const state = { q: '', page: 0, seq: 0 };

function readLocation() {
  const params = new URLSearchParams(location.search);
  state.q = params.get('q') || '';
  state.page = Math.max(0, Number.parseInt(params.get('page') || '0', 10) || 0);
  document.getElementById('topic-search').value = state.q;
}

function writeLocation() {
  const params = new URLSearchParams();
  if (state.q) params.set('q', state.q);
  if (state.page > 0) params.set('page', String(state.page));
  const query = params.toString();
  history.replaceState(null, '', query ? `?${query}` : location.pathname);
}

/** `{total, topics}` of the current page, whichever way the API pages. */
async function fetchPage() {
  const params = new URLSearchParams({ offset: String(state.page * PAGE_SIZE), limit: String(PAGE_SIZE) });
  if (state.q) params.set('q', state.q);
  const body = await api(`/api/v1/topics?${params}`);
  const topics = body.topics || [];
  if (typeof body.total === 'number') return { total: body.total, topics };
  const needle = state.q.toLowerCase();
  const matching = topics.filter((t) => t.name.toLowerCase().includes(needle));
  matching.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const start = state.page * PAGE_SIZE;
  return { total: matching.length, topics: matching.slice(start, start + PAGE_SIZE) };
}

function row(t) {
  const parts = t.partitions || [];
  const sum = (f) => parts.reduce((n, p) => n + f(p), 0);
  const poisoned = parts.filter((p) => p.poisoned).length;
  const dedup = t.dedup ? `${fmtInt(t.dedup.window_ms / 1000)} s` : '–';
  return [
    topicLink(t.name),
    fmtInt(parts.length),
    fmtInt(sum((p) => p.end - p.log_start)),
    fmtBytes(sum((p) => p.size_bytes)),
    poisoned > 0 ? badge(`${poisoned} poisoned`, 'firing') : badge('ok'),
    dedup,
  ];
}

const COLUMNS = [
  { label: 'Topic' },
  { label: 'Partitions', num: true },
  { label: 'Records', num: true },
  { label: 'Size', num: true },
  { label: 'Health' },
  { label: 'Duplicate window' },
];

function renderPager(total) {
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const first = total === 0 ? 0 : state.page * PAGE_SIZE + 1;
  const last = Math.min(total, (state.page + 1) * PAGE_SIZE);
  document.getElementById('pager').hidden = pages <= 1;
  document.getElementById('page-info').textContent = `${fmtInt(first)}–${fmtInt(last)} of ${fmtInt(total)}`;
  document.getElementById('page-prev').disabled = state.page === 0;
  document.getElementById('page-next').disabled = state.page + 1 >= pages;
}

async function load() {
  const seq = ++state.seq;
  const { total, topics } = await fetchPage();
  if (seq !== state.seq) return; // A later search answered, or will.
  if (topics.length === 0 && state.page > 0 && total > 0) {
    state.page = Math.floor((total - 1) / PAGE_SIZE);
    return load();
  }
  const empty = state.q ? `No topic's name contains “${state.q}”.` : 'No topics yet.';
  fill('topics', table(COLUMNS, topics.map(row), empty));
  const shown = `${fmtInt(total)} ${total === 1 ? 'topic' : 'topics'}${state.q ? ' match' : ''}`;
  document.getElementById('topic-count').textContent = shown;
  renderPager(total);
  writeLocation();
  // Time to first render, for tests/console/measure_render.py: the first
  // time the table holds the broker's topics.
  if (performance.getEntriesByName('topics-rendered').length === 0) performance.mark('topics-rendered');
}

function go(page) {
  state.page = page;
  once('topics', load);
}

function wire() {
  const search = document.getElementById('topic-search');
  const searched = debounce(() => {
    state.q = search.value.trim();
    go(0);
  }, SEARCH_DEBOUNCE_MS);
  search.addEventListener('input', searched);
  document.getElementById('topic-search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.q = search.value.trim();
    go(0);
  });
  document.getElementById('page-prev').addEventListener('click', () => go(Math.max(0, state.page - 1)));
  document.getElementById('page-next').addEventListener('click', () => go(state.page + 1));
}

readLocation();
wire();
once('topics', load);
