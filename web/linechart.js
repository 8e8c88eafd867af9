// linechart.js: a hand-drawn SVG line chart (no charting library): one or
// more series of [x, y] points over shared axes, with a legend, tick labels
// and an accessible summary. The chart keeps its points and redraws itself
// (at most once per animation frame) when points are added; the <svg>
// carries data-points, the number of points drawn, for tests.

import { el, svg, num } from './dom.js';

const W = 520, H = 230, L = 62, R = 12, T = 12, B = 30;

// Tick values spanning [lo, hi], about n of them, at round steps.
function ticks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

export class LineChart {
  // title: heading; series: [{name, cls}] (cls picks the CSS stroke colour);
  // yFormat formats y ticks; xLabel names the x axis.
  constructor(title, series, yFormat = num, xLabel = 'step') {
    this.title = title;
    this.series = series.map((s) => ({ ...s, points: [] }));
    this.yFormat = yFormat;
    this.xLabel = xLabel;
    this.pending = false;
    this.plot = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart', 'data-points': 0 });
    this.summary = el('p.visually-hidden', { 'aria-live': 'off' });
    const legend = el('ul.legend', {},
      this.series.map((s) => el('li', {}, el(`span.swatch.${s.cls}`, { 'aria-hidden': 'true' }), s.name)));
    this.node = el('figure.card.chart-card', {}, el('figcaption', {}, title), legend, this.plot, this.summary);
    this.draw();
  }

  // Adds point [x, y] to series i (y null or not finite: skipped).
  add(i, x, y) {
    if (y === null || y === undefined || !isFinite(y)) return;
    this.series[i].points.push([x, y]);
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        this.draw();
      });
    }
  }

  draw() {
    const all = this.series.flatMap((s) => s.points);
    this.plot.replaceChildren();
    this.plot.setAttribute('data-points', all.length);
    this.plot.setAttribute('aria-label', `${this.title}: ${this.describe()}`);
    if (!all.length) {
      this.plot.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'no data yet'));
      this.summary.textContent = 'No data yet.';
      return;
    }
    let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
    let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) {
      const d = Math.abs(y0) * 0.1 || 1;
      y0 -= d;
      y1 += d;
    }
    const pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    const g = svg('g', { class: 'axes' });
    for (const v of ticks(y0, y1, 4)) {
      g.append(svg('line', { x1: L, x2: W - R, y1: sy(v), y2: sy(v), class: 'grid' }));
      g.append(svg('text', { x: L - 6, y: sy(v) + 4, 'text-anchor': 'end' }, this.yFormat(v)));
    }
    for (const v of ticks(x0, x1, 6)) {
      if (Math.abs(v - Math.round(v)) > 1e-9) continue;
      g.append(svg('text', { x: sx(v), y: H - B + 16, 'text-anchor': 'middle' }, String(v)));
    }
    g.append(svg('text', { x: W - R, y: H - 2, 'text-anchor': 'end', class: 'axis-label' }, this.xLabel));
    g.append(svg('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
    g.append(svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
    this.plot.append(g);
    for (const s of this.series) {
      if (!s.points.length) continue;
      const d = s.points.map((p, k) => `${k ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
      this.plot.append(svg('path', { d, class: `line ${s.cls}` }));
      if (s.points.length < 40) {
        for (const p of s.points) this.plot.append(svg('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, class: `dot ${s.cls}` }));
      }
    }
    this.summary.textContent = this.describe();
  }

  describe() {
    return this.series
      .map((s) => {
        const p = s.points[s.points.length - 1];
        return p ? `${s.name} ${this.yFormat(p[1])} at ${this.xLabel} ${p[0]} (${s.points.length} points)` : `${s.name}: no data`;
      })
      .join('; ');
  }
}
