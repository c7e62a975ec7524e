// The broker's settings, as `/api/v1/broker` reports them: one row per
// setting, nested tables flattened to dotted names.

import { api, el, fill, once, table } from './common.js';

function flatten(prefix, value, rows) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(prefix ? `${prefix}.${k}` : k, v, rows);
  } else {
    rows.push([
      el('code', {}, prefix),
      value === null ? '–' : Array.isArray(value) ? JSON.stringify(value) : String(value),
    ]);
  }
  return rows;
}

async function load() {
  const b = await api('/api/v1/broker');
  const rows = flatten('', { version: b.version, data_dir: b.data_dir, ...(b.settings || {}) }, []);
  fill('config', table([{ label: 'Setting' }, { label: 'Value' }], rows, 'The broker reports no settings.'));
}

once('config', load);
