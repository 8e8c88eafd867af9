// job_page.js: one job, live. Its events arrive over server-sent events
// (EventSource on /v1/fine_tuning/jobs/{id}/events?stream=true, signed in by
// the session cookie): the browser reconnects by itself with Last-Event-ID,
// and when the stream is closed for good it is reopened with ?after= the
// last event seen, so no event is shown twice or missed. Metrics events
// feed the loss, learning-rate, tokens/s and memory charts and the layer
// sampling heatmap; every event goes to the log. The job object (status,
// buttons), the checkpoints and the layers' ratios and probabilities are
// fetched again when an event says they changed.

import { api, seg } from './api.js';
import { el, fill, bytes, duration, when, num, methodOf, TERMINAL } from './dom.js';
import { LineChart } from './linechart.js';
import { LayerView } from './layers.js';
import { statusBadge } from './jobs_page.js';

const LOG_MAX = 400;
const CAN_CANCEL = ['validating_files', 'queued', 'running', 'pausing', 'paused'];
const CAN_PAUSE = ['validating_files', 'queued', 'running'];

export function jobPage(main, id) {
  const base = `/v1/fine_tuning/jobs/${seg(id)}`;
  const head = el('div.job-head');
  const progress = el('progress', { max: 1, value: 0, 'aria-label': 'Progress' });
  const progressText = el('span.progress-text', { role: 'status', 'aria-live': 'polite' }, 'waiting for the first step');
  const buttons = {
    cancel: el('button.danger', { type: 'button', disabled: true }, 'Cancel'),
    pause: el('button', { type: 'button', disabled: true }, 'Pause'),
    resume: el('button', { type: 'button', disabled: true }, 'Resume'),
  };
  const notice = el('div.alert', { role: 'alert', hidden: true });
  const loss = new LineChart('Loss', [{ name: 'training', cls: 's0' }, { name: 'validation', cls: 's1' }]);
  const lr = new LineChart('Learning rate', [{ name: 'learning rate', cls: 's2' }]);
  const tps = new LineChart('Throughput (tokens/s)', [{ name: 'tokens/s', cls: 's3' }]);
  const mem = new LineChart('Memory', [{ name: 'resident', cls: 's4' }, { name: 'peak', cls: 's5' }], bytes);
  const layers = new LayerView();
  const log = el('ol.log', { 'aria-label': 'Event log' });
  const ckBody = el('tbody');
  const ckpts = el('section.card', { 'aria-labelledby': 'ck-title' },
    el('h2', { id: 'ck-title' }, 'Checkpoints'),
    el('div.scroll-x', {}, el('table.checkpoints', {},
      el('thead', {}, el('tr', {}, ['Step', 'Training loss', 'Validation loss', 'Size', 'sha256', ''].map((h) => el('th', { scope: 'col' }, h)))),
      ckBody)));
  main.replaceChildren(
    el('p', {}, el('a', { href: '#/jobs' }, '← All jobs')),
    head,
    el('div.card.controls', {}, el('div.progress-wrap.wide', {}, progress, progressText),
      el('div.buttons', {}, buttons.pause, buttons.resume, buttons.cancel)),
    notice,
    el('div.charts', {}, loss.node, lr.node, tps.node, mem.node),
    layers.node,
    ckpts,
    el('section.card', { 'aria-labelledby': 'log-title' }, el('h2', { id: 'log-title' }, 'Events'), log));

  let job = null, es = null, lastId = 0, stopped = false, retry = null;
  let lastPeriod = -1, layersAt = 0, layersTimer = null, jobTimer = null;

  function showJob(j) {
    job = j;
    const err = j.error && j.error.message ? el('p.warning', {}, `Error: ${j.error.message}`) : null;
    fill(head, el('h1', {}, 'Job ', el('code', {}, j.id), ' ', statusBadge(j.status)),
      el('dl.facts.inline', {},
        el('dt', {}, 'Model'), el('dd', {}, j.model),
        el('dt', {}, 'Method'), el('dd', {}, methodOf(j)),
        el('dt', {}, 'Created'), el('dd', {}, when(j.created_at)),
        el('dt', {}, 'Training file'), el('dd', {}, j.training_file),
        j.fine_tuned_model ? [el('dt', {}, 'Fine-tuned model'), el('dd', {}, j.fine_tuned_model)] : null,
        j.finished_at ? [el('dt', {}, 'Finished'), el('dd', {}, when(j.finished_at))] : null),
      err);
    buttons.cancel.disabled = !CAN_CANCEL.includes(j.status);
    buttons.pause.disabled = !CAN_PAUSE.includes(j.status);
    buttons.resume.disabled = j.status !== 'paused';
    if (j.status === 'succeeded') {
      progress.value = progress.max;
    }
  }

  async function loadJob() {
    showJob(await api('GET', base));
    return job;
  }

  function reloadJobSoon() {
    clearTimeout(jobTimer);
    jobTimer = setTimeout(() => loadJob().then((j) => {
      if (TERMINAL.includes(j.status)) {
        loadCheckpoints();
        loadLayers();
      }
    }).catch(() => {}), 150);
  }

  async function loadCheckpoints() {
    const l = await api('GET', `${base}/checkpoints?limit=100`);
    ckBody.replaceChildren(...l.data.slice().sort((a, b) => a.step_number - b.step_number).map((c) => el('tr', { 'data-checkpoint': c.id },
      el('td', { 'data-label': 'Step' }, String(c.step_number)),
      el('td', { 'data-label': 'Training loss' }, num(c.metrics.train_loss)),
      el('td', { 'data-label': 'Validation loss' }, num(c.metrics.valid_loss)),
      el('td', { 'data-label': 'Size' }, bytes(c.bytes)),
      el('td', { 'data-label': 'sha256' }, el('code.sha', { title: c.sha256 }, c.sha256)),
      el('td', {}, el('a.button', { href: `${base}/checkpoints/${seg(c.id)}/content`, download: `${id}-step-${c.step_number}.safetensors`, 'aria-label': `Download the checkpoint of step ${c.step_number}` }, 'Download')))));
    if (!l.data.length) ckBody.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No checkpoint yet.')));
  }

  async function loadLayers() {
    layersAt = Date.now();
    layers.setLayers(await api('GET', `${base}/layers`));
  }

  // at most one /layers read per 2 s, the last one always done
  function layersSoon() {
    clearTimeout(layersTimer);
    layersTimer = setTimeout(() => loadLayers().catch(() => {}), Math.max(0, 2000 - (Date.now() - layersAt)));
  }

  function logEvent(e) {
    const li = el(`li.level-${e.level}`, { 'data-type': e.type },
      el('time', { datetime: new Date(e.created_at * 1000).toISOString() }, new Date(e.created_at * 1000).toLocaleTimeString()),
      ' ', e.message);
    log.prepend(li);
    while (log.childElementCount > LOG_MAX) log.lastElementChild.remove();
  }

  function onMetrics(d) {
    const training = d.train_loss !== null && d.train_loss !== undefined;
    loss.add(0, d.step, d.train_loss);
    loss.add(1, d.step, d.valid_loss);
    if (training) {
      lr.add(0, d.step, d.learning_rate);
      tps.add(0, d.step, d.tokens_per_s);
      layers.addStep(d.step, d.sampled_blocks);
      const period = Math.floor((d.step - 1) / layers.interval());
      if (period !== lastPeriod) {
        lastPeriod = period;
        layersSoon();
      }
    }
    mem.add(0, d.step, d.rss_bytes);
    mem.add(1, d.step, d.peak_rss_bytes);
    progress.max = Math.max(1, d.total_steps);
    progress.value = d.step;
    progressText.textContent = `step ${d.step} of ${d.total_steps}, epoch ${d.epoch}` +
      (d.eta_s > 0 ? `, about ${duration(d.eta_s)} left` : '') + `, ${duration(d.elapsed_s)} elapsed`;
  }

  function onEvent(msg) {
    const e = JSON.parse(msg.data);
    const n = Number(msg.lastEventId);
    if (n <= lastId) return;
    lastId = n;
    logEvent(e);
    if (e.type === 'metrics' && e.data) onMetrics(e.data);
    else {
      reloadJobSoon();
      if (e.data && e.data.checkpoint_id) loadCheckpoints().catch(() => {});
    }
  }

  function connect() {
    if (stopped) return;
    es = new EventSource(`${base}/events?stream=true${lastId ? `&after=ftevent-${lastId}` : ''}`);
    es.addEventListener('message', onEvent);
    es.addEventListener('metrics', onEvent);
    es.addEventListener('error', async () => {
      // the stream ended or broke: done when the job is over, else go on
      let j = null;
      try {
        j = await loadJob();
      } catch (_) {
        j = null;
      }
      if (stopped) return;
      if (j && TERMINAL.includes(j.status)) {
        es.close();
        loadCheckpoints().catch(() => {});
        loadLayers().catch(() => {});
      } else if (es.readyState === EventSource.CLOSED) {
        clearTimeout(retry);
        retry = setTimeout(connect, 2000);
      }
    });
  }

  async function act(name) {
    notice.hidden = true;
    try {
      showJob(await api('POST', `${base}/${name}`));
    } catch (e) {
      notice.hidden = false;
      notice.textContent = e.message;
    }
  }
  buttons.cancel.addEventListener('click', () => act('cancel'));
  buttons.pause.addEventListener('click', () => act('pause'));
  buttons.resume.addEventListener('click', () => act('resume'));

  (async () => {
    try {
      await loadJob();
      await Promise.all([loadCheckpoints(), loadLayers()]);
      connect();
    } catch (e) {
      head.replaceChildren(el('h1', {}, 'Job ', el('code', {}, id)), el('p.alert', { role: 'alert' }, e.message));
    }
  })();

  return () => {
    stopped = true;
    clearTimeout(retry);
    clearTimeout(layersTimer);
    clearTimeout(jobTimer);
    if (es) es.close();
  };
}
