// layers.js: the per-block picture of a job's layer sampling (the OwLore
// paper's Figure 2 for this model), in hand-drawn SVG. Left: a heatmap with
// one row per transformer block and one column per sampling period (every
// sampling_interval steps), a cell filled when the block trained in that
// period, built from the metrics events' sampled_blocks; with many periods
// columns are binned and shaded by the share of periods. Right: each
// block's outlier ratio D_l and sampling probability as bars, from
// GET /v1/fine_tuning/jobs/{id}/layers. The <svg> carries data-filled (cells
// filled) and data-periods for tests.

import { el, svg, num } from './dom.js';

const MAX_COLS = 120;

export class LayerView {
  constructor() {
    this.layers = null;      // the /layers answer
    this.periods = new Map(); // period index -> Set of blocks
    this.pending = false;
    this.plot = svg('svg', { role: 'img', class: 'layers', 'data-filled': 0, 'data-periods': 0 });
    this.caption = el('p.muted', {}, 'Waiting for the first sampling period.');
    this.node = el('figure.card.layers-card', {},
      el('figcaption', {}, 'Layer sampling: blocks trained per period, outlier ratios and probabilities'),
      this.caption, el('div.scroll-x', { tabindex: 0, role: 'region', 'aria-label': 'Layer sampling heatmap' }, this.plot));
    this.draw();
  }

  interval() {
    return (this.layers && this.layers.sampling_interval) || 1;
  }

  setLayers(l) {
    this.layers = l;
    this.schedule();
  }

  // The metrics event of optimizer step `step` trained `blocks`.
  addStep(step, blocks) {
    if (!step || !Array.isArray(blocks) || !blocks.length) return;
    const p = Math.floor((step - 1) / this.interval());
    if (!this.periods.has(p)) this.periods.set(p, new Set());
    for (const b of blocks) this.periods.get(p).add(b);
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const data = (this.layers && this.layers.data) || [];
    let n = data.length;
    for (const s of this.periods.values()) for (const b of s) n = Math.max(n, b + 1);
    const nPeriods = this.periods.size ? Math.max(...this.periods.keys()) + 1 : 0;
    this.plot.replaceChildren();
    this.plot.setAttribute('data-periods', nPeriods);
    if (!n) {
      this.plot.setAttribute('viewBox', '0 0 400 40');
      this.plot.setAttribute('width', 400);
      this.plot.setAttribute('height', 40);
      this.plot.setAttribute('data-filled', 0);
      this.plot.append(svg('text', { x: 200, y: 24, 'text-anchor': 'middle', class: 'empty' }, 'no sampling data yet'));
      return;
    }
    const per = Math.max(1, Math.ceil(nPeriods / MAX_COLS));
    const cols = Math.max(1, Math.ceil(nPeriods / per));
    const rowH = Math.max(10, Math.min(20, Math.floor(360 / n)));
    const cellW = Math.max(4, Math.min(20, Math.floor(420 / cols)));
    const left = 56, top = 24, heatW = Math.max(cols * cellW, 140), barW = 110, gap = 18; // room for the titles
    const bx1 = left + heatW + gap, bx2 = bx1 + barW + gap;
    const width = bx2 + barW + 8, height = top + n * rowH + 28;
    this.plot.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.plot.setAttribute('width', width);
    this.plot.setAttribute('height', height);
    const g = svg('g', {});
    g.append(svg('text', { x: left, y: 14, class: 'axis-label' }, per > 1 ? `periods (${per} per column)` : 'sampling periods'));
    g.append(svg('text', { x: bx1, y: 14, class: 'axis-label' }, 'outlier ratio D_l'));
    g.append(svg('text', { x: bx2, y: 14, class: 'axis-label' }, 'probability'));
    const maxRatio = Math.max(1e-12, ...data.map((d) => d.outlier_ratio || 0));
    const maxProb = Math.max(1e-12, ...data.map((d) => d.probability || 0));
    let filled = 0;
    for (let b = 0; b < n; b++) {
      const y = top + b * rowH;
      g.append(svg('text', { x: left - 6, y: y + rowH * 0.75, 'text-anchor': 'end' }, `block ${b}`));
      g.append(svg('rect', { x: left, y, width: cols * cellW, height: rowH - 1, class: 'cell-empty' }));
      for (let c = 0; c < cols; c++) {
        let hit = 0;
        for (let p = c * per; p < Math.min(nPeriods, (c + 1) * per); p++) if (this.periods.get(p)?.has(b)) hit++;
        if (!hit) continue;
        filled++;
        const cell = svg('rect', { x: left + c * cellW, y, width: cellW - 1, height: rowH - 1, class: 'cell', 'fill-opacity': (0.25 + 0.75 * (hit / per)).toFixed(2) });
        cell.append(svg('title', {}, `block ${b}, ${per > 1 ? `periods ${c * per}–${(c + 1) * per - 1}: ${hit}` : `period ${c}`}`));
        g.append(cell);
      }
      const d = data[b] || {};
      const r = d.outlier_ratio, pr = d.probability;
      const rw = r === null || r === undefined ? 0 : (r / maxRatio) * barW;
      const pw = pr === null || pr === undefined ? 0 : (pr / maxProb) * barW;
      const rb = svg('rect', { x: bx1, y, width: Math.max(rw, 0), height: rowH - 2, class: 'bar-ratio' });
      rb.append(svg('title', {}, `block ${b}: D_l ${r === null || r === undefined ? 'n/a' : num(r)}`));
      const pb = svg('rect', { x: bx2, y, width: Math.max(pw, 0), height: rowH - 2, class: 'bar-prob' });
      pb.append(svg('title', {}, `block ${b}: p ${num(pr)}, trained in ${d.times_sampled ?? 0} periods`));
      g.append(rb, pb);
    }
    g.append(svg('text', { x: left, y: height - 8, class: 'axis-label' }, `${nPeriods} period${nPeriods === 1 ? '' : 's'} of ${this.interval()} step${this.interval() === 1 ? '' : 's'}`));
    this.plot.append(g);
    this.plot.setAttribute('data-filled', filled);
    const l = this.layers;
    this.caption.textContent = l
      ? `Sampling ${l.sampling}, gamma ${l.gamma} of ${n} blocks, every ${l.sampling_interval} steps` +
        (l.sampling === 'owl' ? `, tau ${num(l.tau)}` : '') + `; ${l.periods} periods started.`
      : `${n} blocks.`;
    const top3 = data.slice().sort((a, b) => (b.probability || 0) - (a.probability || 0)).slice(0, 3).map((d) => d.block);
    this.plot.setAttribute('aria-label', `Heatmap of ${n} blocks over ${nPeriods} sampling periods, ${filled} cells filled.` +
      (top3.length ? ` Most likely blocks: ${top3.join(', ')}.` : ''));
  }
}
