// The broker's settings, as `/api/v1/broker` reports them: one row per
// setting, nested tables flattened to dotted names; and what `veltrix
// check` said of the configuration the broker started with
// (`/api/v1/config/check`): each finding's rule, severity and message.

import { api, badge, el, fill, once, plural, table } from './common.js';

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

const SEVERITY = { error: 'firing', warning: 'pending' };

function where(d) {
  if (d.env) return el('code', {}, d.env);
  if (d.line) return `line ${d.line}:${d.column}`;
  return '–';
}

function finding(d) {
  return [
    el('code', { class: 'rule' }, d.rule),
    badge(d.severity, SEVERITY[d.severity] || 'muted'),
    el('span', {}, d.message, d.help ? el('span', { class: 'muted' }, ` Help: ${d.help}`) : null),
    where(d),
  ];
}

async function loadCheck() {
  const report = await api('/api/v1/config/check');
  const diagnostics = report.diagnostics || [];
  const file = report.file;
  const counts = `${plural(report.errors || 0, 'error')}, ${plural(report.warnings || 0, 'warning')}`;
  fill(
    'check-summary',
    file
      ? el('span', {}, 'The file the broker started with, ', el('code', {}, file), `, as it was read at start: ${counts}.`)
      : `The broker was started without a configuration file (the embedded default, with any VELTRIX_ environment overrides): ${counts}.`,
  );
  const columns = [{ label: 'Rule' }, { label: 'Severity' }, { label: 'Finding' }, { label: 'Where' }];
  fill('check', table(columns, diagnostics.map(finding), 'No findings: the configuration passes every rule.'));
}

once('config', load);
once('check', loadCheck);
