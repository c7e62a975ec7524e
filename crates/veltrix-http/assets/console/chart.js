// A line chart in SVG, drawn by hand: a group's lag over time. Attributes
// only (no inline style, which the Content-Security-Policy refuses); the
// colours come from console.css through the classes.

import { el, fmtInt, fmtTime, svg } from './common.js';

const WIDTH = 760;
const HEIGHT = 240;
const MARGIN = { left: 64, right: 16, top: 14, bottom: 30 };
const Y_TICKS = 4;
const X_TICKS = 4;

/** The smallest 1, 2 or 5 times a power of ten at or above `n` (at least 1). */
function niceCeiling(n) {
  if (n <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= n) return step * power;
  }
  return 10 * power;
}

function scales(points) {
  const times = points.map((p) => p.at_ms);
  let [t0, t1] = [Math.min(...times), Math.max(...times)];
  if (t0 === t1) [t0, t1] = [t0 - 1000, t1 + 1000];
  // Ticks at whole multiples of a 1, 2 or 5 step, so their labels are exact.
  const yMax = Y_TICKS * niceCeiling(Math.max(...points.map((p) => p.lag_records)) / Y_TICKS);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  return {
    x: (t) => MARGIN.left + ((t - t0) / (t1 - t0)) * plotW,
    y: (v) => MARGIN.top + plotH - (v / yMax) * plotH,
    t0,
    t1,
    yMax,
  };
}

function axes(s) {
  const nodes = [];
  for (let i = 0; i <= Y_TICKS; i += 1) {
    const v = (s.yMax * i) / Y_TICKS;
    const y = s.y(v);
    nodes.push(svg('line', { class: 'grid', x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y, y2: y }));
    nodes.push(svg('text', { class: 'tick', x: MARGIN.left - 6, y: y + 4, 'text-anchor': 'end' }, fmtInt(v)));
  }
  let previous = '';
  for (let i = 0; i <= X_TICKS; i += 1) {
    const t = s.t0 + ((s.t1 - s.t0) * i) / X_TICKS;
    const anchor = i === 0 ? 'start' : i === X_TICKS ? 'end' : 'middle';
    const label = fmtTime(t).slice(11);
    // Over a few seconds, ticks share a label: each is written once.
    if (label !== previous)
      nodes.push(svg('text', { class: 'tick', x: s.x(t), y: HEIGHT - 8, 'text-anchor': anchor }, label));
    previous = label;
  }
  return nodes;
}

/** The chart of `points` (`{at_ms, lag_records}`, oldest first). */
export function lagChart(points) {
  if (points.length === 0) return el('p', { class: 'muted' }, 'No lag recorded yet.');
  const s = scales(points);
  const coords = points.map((p) => `${s.x(p.at_ms).toFixed(1)},${s.y(p.lag_records).toFixed(1)}`);
  const last = points[points.length - 1];
  const baseline = s.y(0).toFixed(1);
  const area = `${s.x(points[0].at_ms).toFixed(1)},${baseline} ${coords.join(' ')} ${s.x(last.at_ms).toFixed(1)},${baseline}`;
  const label = `Lag over time: ${fmtInt(last.lag_records)} records at ${fmtTime(last.at_ms)}, over ${points.length} samples`;
  return svg(
    'svg',
    {
      class: 'line-chart',
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: 'img',
      'aria-label': label,
      'data-points': points.length,
      'data-last': last.lag_records,
    },
    svg('title', {}, label),
    axes(s),
    svg('polygon', { class: 'area', points: area }),
    svg('polyline', { class: 'line', points: coords.join(' ') }),
    svg(
      'circle',
      { class: 'dot', cx: s.x(last.at_ms), cy: s.y(last.lag_records), r: 3.5 },
      svg('title', {}, `${fmtInt(last.lag_records)} records at ${fmtTime(last.at_ms)}`),
    ),
  );
}
