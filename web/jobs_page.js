// jobs_page.js: the jobs list: status, model, method, progress, ETA and
// creation time of the tenant's fine-tuning jobs, refreshed every few
// seconds while shown. Progress comes from each job's latest metrics event
// (step of total_steps), read once for a finished job and at every refresh
// for an active one.

import { api, seg } from './api.js';
import { el, duration, when, methodOf, TERMINAL } from './dom.js';

const REFRESH_MS = 2500;
const ACTIVE = ['running', 'pausing', 'paused'];

const finished = new Map(); // job id -> its final progress

async function progressOf(job) {
  if (!ACTIVE.includes(job.status) && !TERMINAL.includes(job.status)) return null;
  if (finished.has(job.id)) return finished.get(job.id);
  const ev = await api('GET', `/v1/fine_tuning/jobs/${seg(job.id)}/events?limit=20`);
  const m = ev.data.find((e) => e.type === 'metrics' && e.data && e.data.total_steps);
  const p = m ? { step: m.data.step, total: m.data.total_steps } : null;
  if (TERMINAL.includes(job.status)) finished.set(job.id, p);
  return p;
}

export function statusBadge(status) {
  return el(`span.badge.status-${status}`, {}, status.replace('_', ' '));
}

function progressCell(p) {
  if (!p) return el('span.muted', {}, '—');
  const pct = Math.min(100, Math.round((100 * p.step) / Math.max(1, p.total)));
  return el('span.progress-wrap', {},
    el('progress', { max: 100, value: pct, 'aria-label': `${pct}% (${p.step} of ${p.total} steps)` }),
    el('span.progress-text', {}, `${p.step}/${p.total}`));
}

function row(job, p) {
  const eta = job.estimated_finish && !TERMINAL.includes(job.status) ? job.estimated_finish - Date.now() / 1000 : null;
  return el('tr', { 'data-job': job.id },
    el('td', { 'data-label': 'Job' }, el('a', { href: `#/jobs/${job.id}` }, job.id)),
    el('td', { 'data-label': 'Status' }, statusBadge(job.status)),
    el('td', { 'data-label': 'Model' }, job.model),
    el('td', { 'data-label': 'Method' }, methodOf(job)),
    el('td', { 'data-label': 'Progress' }, progressCell(p)),
    el('td', { 'data-label': 'ETA' }, eta === null ? '—' : duration(Math.max(0, eta))),
    el('td', { 'data-label': 'Created' }, when(job.created_at)));
}

// Renders into `main`; returns a function that stops the refreshing.
export function jobsPage(main) {
  const body = el('tbody', {});
  const status = el('p.muted', { role: 'status', 'aria-live': 'polite' }, 'Loading jobs…');
  const table = el('table.jobs', {},
    el('caption.visually-hidden', {}, 'Fine-tuning jobs'),
    el('thead', {}, el('tr', {}, ['Job', 'Status', 'Model', 'Method', 'Progress', 'ETA', 'Created'].map((h) => el('th', { scope: 'col' }, h)))),
    body);
  main.replaceChildren(
    el('div.page-head', {}, el('h1', {}, 'Fine-tuning jobs'), el('a.button.primary', { href: '#/new' }, 'New job')),
    status, el('div.card.table-card', {}, table));
  let stopped = false, timer = null;
  async function refresh() {
    try {
      const list = await api('GET', '/v1/fine_tuning/jobs?limit=100');
      const progress = await Promise.all(list.data.map((j) => progressOf(j).catch(() => null)));
      if (stopped) return;
      body.replaceChildren(...list.data.map((j, i) => row(j, progress[i])));
      status.textContent = list.data.length ? `${list.data.length} job${list.data.length === 1 ? '' : 's'}, updated ${new Date().toLocaleTimeString()}` : 'No jobs yet: start one with New job.';
    } catch (e) {
      if (!stopped) status.textContent = `Could not load the jobs: ${e.message}`;
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
