// new_job.js: the new-job form. Pick or upload a training dataset (its
// validation report shows before anything runs), an optional validation
// file, the base model (GET /v1/models) and the method; edit its
// hyperparameters (empty: the server's default, shown as the placeholder
// once the planner has answered). Every change asks the planner
// (POST /v1/fine_tuning/plan, the same checks as creation) for the
// predicted memory and time, and shows the server's refusal, with the
// offending field marked, before the job can be started.

import { api, ApiError } from './api.js';
import { el, fill, bytes, duration, num } from './dom.js';
import { reportView, dropZone } from './dataset.js';

const METHODS = [
  ['owlore', 'OwLore: outlier-weighted layer sampling with low-rank (GaLore) updates'],
  ['owlore_full_rank', 'OwLore, full rank: outlier-weighted layer sampling with AdamW'],
  ['lisa', 'LISA: uniform layer sampling with AdamW'],
  ['galore', 'GaLore: every block, low-rank projected gradients'],
  ['full', 'Full fine-tuning: every block, AdamW'],
  ['lora', 'LoRA: low-rank adapters on every linear layer, base weights frozen'],
];
const SAMPLED = ['owlore', 'owlore_full_rank', 'lisa'];
const OWL = ['owlore', 'owlore_full_rank'];
const LOWRANK = ['owlore', 'galore'];
const GALORE = ['galore'];
const FULLRANK = ['full', 'lisa', 'owlore_full_rank'];
const LORA = ['lora'];

// name, integer?, methods it matters for (null: all), help
const HPARAMS = [
  ['n_epochs', true, null, 'Passes over the training data.'],
  ['learning_rate', false, null, 'Peak learning rate; it warms up, then decays linearly.'],
  ['batch_size', true, null, 'Sequences per optimizer step (memory grows with it).'],
  ['sequence_length', true, null, 'Tokens per training window, at most the model\'s context.'],
  ['gamma', true, SAMPLED, 'Blocks trained at once; the others stay frozen for the period.'],
  ['sampling_interval', true, SAMPLED, 'K: optimizer steps between two block samplings.'],
  ['tau', false, OWL, 'Outlier threshold: a weight is an outlier above tau times its layer\'s mean magnitude.'],
  ['rank', true, LOWRANK, 'GaLore rank of the projected gradients (0: full rank).'],
  ['update_proj_gap', true, LOWRANK, 'T: steps between two GaLore projection updates.'],
  ['galore_scale', false, LOWRANK, 'Scale of the projected update.'],
  ['lora_rank', true, LORA, 'Rank r of the adapters (A is r x in, B is out x r).'],
  ['lora_alpha', false, LORA, 'Adapter scale numerator: the update is alpha / r times B A x.'],
  ['lora_dropout', false, LORA, 'Dropout on the adapters\' input while training, in [0, 1).'],
  ['lora_merge', true, LORA, '1: the final checkpoint holds the merged weights; 0: every checkpoint holds the adapter alone.'],
  ['activation_checkpointing', true, null, '1: keep only each block\'s input and run the block again in the backward pass (less memory, about a third more compute).'],
  ['recompute_blocks', true, null, 'With activation_checkpointing 1: only the lowest this many blocks run again in the backward pass, the blocks above keep their activations (more memory, less compute); 0: every block.'],
  ['bf16_activations', true, null, '1: keep the activations the backward pass reads (of the blocks not recomputed) in bf16 until then: about 40% of their fp32 memory, for a few elementwise passes instead of a recomputation; the loss is unchanged, the gradients read those values rounded to bf16.'],
  ['bf16_weights', true, null, '1: keep the weights (embedding, blocks, head) in bf16 with no fp32 copy (about half the weight memory), each update rounded stochastically; gradients and optimizer state stay fp32.'],
  ['stagger_refreshes', true, GALORE, '1: with every block on GaLore, each matrix refreshes its projector at its own phase of update_proj_gap, spreading the refreshes over the steps; 0: every matrix refreshes at the same steps, as galore_torch does.'],
  ['update_in_backward', true, FULLRANK, '1: each block tensor takes its AdamW step in the backward pass as soon as its gradient is complete, so the blocks\' gradients are never stored (4 bytes a trained parameter less); the steps are the same. With clipping, a first backward pass finds the gradient norm (a third to two thirds more compute).'],
  ['max_grad_norm', false, null, 'Clip each step\'s global gradient norm to this value (0: no clipping).'],
  ['max_steps', true, null, 'Stop after this many optimizer steps (0: as many as the epochs need).'],
  ['eval_every', true, null, 'Steps between validation losses (0: at the end only).'],
  ['save_every', true, null, 'Steps between checkpoints (0: at the end only).'],
];

function field(id, label, control, help) {
  return el('div.field', { 'data-field': id },
    el('label', { for: id }, label), control,
    help ? el('p.help', { id: `${id}-help` }, help) : null);
}

export function newJobPage(main, go) {
  const say = (msg) => { live.textContent = msg; };
  const live = el('p.muted', { role: 'status', 'aria-live': 'polite' });
  const trainSel = el('select', { id: 'training_file', 'aria-describedby': 'training_file-help' });
  const validSel = el('select', { id: 'validation_file', 'aria-describedby': 'validation_file-help' });
  const modelSel = el('select', { id: 'model' });
  const methodSel = el('select', { id: 'method', 'aria-describedby': 'method-help' },
    METHODS.map(([v, d]) => el('option', { value: v }, `${v} — ${d.split(':')[0]}`)));
  const methodHelp = el('p.help', { id: 'method-help' });
  const report = el('div.report-slot', { 'aria-live': 'polite' });
  const files = new Map();
  const inputs = {};
  const hpFields = HPARAMS.map(([name, isInt, only, help]) => {
    const input = el('input', { id: `hp-${name}`, name, type: 'text', inputmode: isInt ? 'numeric' : 'decimal', autocomplete: 'off', placeholder: 'auto', 'aria-describedby': `hp-${name}-help` });
    inputs[name] = { input, isInt, only };
    return field(`hp-${name}`, name, input, help);
  });
  const suffix = el('input', { id: 'suffix', type: 'text', maxlength: 64, autocomplete: 'off', placeholder: 'optional' });
  const seed = el('input', { id: 'seed', type: 'text', inputmode: 'numeric', autocomplete: 'off', placeholder: 'auto' });
  const planBox = el('section.card.plan', { 'aria-labelledby': 'plan-title', 'aria-live': 'polite' },
    el('h2', { id: 'plan-title' }, 'Planner'), el('p.muted', {}, 'Choose a valid training file to see the predicted memory and time.'));
  const errorBox = el('div.alert', { role: 'alert', hidden: true });
  const start = el('button.primary', { type: 'submit', disabled: true }, 'Start fine-tuning');
  const form = el('form.new-job', { novalidate: true },
    el('section.card', { 'aria-labelledby': 'data-title' },
      el('h2', { id: 'data-title' }, 'Data'),
      dropZone((f) => { files.set(f.id, f); fillFiles(f.id); showReport(); }, say),
      live,
      field('training_file', 'Training file', trainSel, 'Uploaded files; invalid ones cannot train.'),
      report,
      field('validation_file', 'Validation file', validSel, 'Optional: held-out data for the validation loss.')),
    el('section.card', { 'aria-labelledby': 'model-title' },
      el('h2', { id: 'model-title' }, 'Model and method'),
      field('model', 'Base model', modelSel, null),
      el('div.field', {}, el('label', { for: 'method' }, 'Method'), methodSel, methodHelp),
      el('div.grid', {}, hpFields),
      el('details', {}, el('summary', {}, 'More'), el('div.grid', {}, field('suffix', 'Suffix', suffix, 'Part of the fine-tuned model\'s name.'), field('seed', 'Seed', seed, 'Random seed (auto: the method\'s).')))),
    planBox, errorBox, el('div.actions', {}, start, el('a.button', { href: '#/jobs' }, 'Cancel')));
  main.replaceChildren(el('h1', {}, 'New fine-tuning job'), form);

  function fillFiles(selected) {
    const opts = [...files.values()].sort((a, b) => b.created_at - a.created_at);
    fill(trainSel, el('option', { value: '' }, '— choose —'),
      opts.map((f) => el('option', { value: f.id, selected: f.id === selected }, `${f.filename} (${f.status === 'processed' ? `${f.validation?.examples ?? '?'} examples` : 'invalid'}) ${f.id}`)));
    const keep = validSel.value;
    fill(validSel, el('option', { value: '' }, 'none'),
      opts.filter((f) => f.status === 'processed').map((f) => el('option', { value: f.id, selected: f.id === keep }, `${f.filename} ${f.id}`)));
    if (selected) trainSel.value = selected;
  }

  function showReport() {
    const f = files.get(trainSel.value);
    report.replaceChildren(f ? reportView(f) : '');
    update();
  }

  function body() {
    const type = methodSel.value, hp = {};
    for (const [name, { input, isInt }] of Object.entries(inputs)) {
      const v = input.value.trim();
      if (!v) continue;
      const n = Number(v);
      hp[name] = v === 'auto' ? 'auto' : Number.isFinite(n) && (!isInt || Number.isInteger(n)) ? n : v;
    }
    const b = { model: modelSel.value || undefined, training_file: trainSel.value, method: { type, [type]: { hyperparameters: hp } } };
    if (validSel.value) b.validation_file = validSel.value;
    if (suffix.value.trim()) b.suffix = suffix.value.trim();
    if (seed.value.trim()) b.seed = Number.isInteger(Number(seed.value)) ? Number(seed.value) : seed.value;
    return b;
  }

  function markInvalid(param) {
    for (const { input } of Object.values(inputs)) input.removeAttribute('aria-invalid');
    for (const c of [trainSel, validSel, modelSel, methodSel, suffix, seed]) c.removeAttribute('aria-invalid');
    if (!param) return;
    const p = param.replace(/^method\./, '');
    const target = inputs[p]?.input || { training_file: trainSel, validation_file: validSel, model: modelSel, suffix, seed, type: methodSel }[p];
    if (target) target.setAttribute('aria-invalid', 'true');
  }

  function showError(e) {
    errorBox.hidden = false;
    errorBox.replaceChildren(el('strong', {}, e.status === 422 ? 'Refused: ' : 'The server refuses this job: '), e.message, e.param ? el('span.muted', {}, ` (${e.param})`) : '');
    markInvalid(e.param);
  }

  function showPlan(p) {
    errorBox.hidden = true;
    markInvalid(null);
    const m = p.memory, hps = p.method[p.method.type].hyperparameters;
    for (const [name, { input }] of Object.entries(inputs)) {
      input.placeholder = hps[name] === undefined ? 'auto' : `auto (${num(hps[name])})`;
    }
    const parts = [['weights', m.weights], ['gradients', m.gradients], ['optimizer state', m.optimizer_state], ['activations', m.activations], ['workspace', m.workspace]];
    fill(planBox, el('h2', { id: 'plan-title' }, 'Planner'),
      el('p.big', { 'data-peak': m.total_peak }, `Predicted peak memory ${bytes(m.total_peak)}`, p.memory_limit ? el('span.muted', {}, ` of ${bytes(p.memory_limit)} allowed`) : ''),
      el('div.stack', { role: 'img', 'aria-label': parts.map(([k, v]) => `${k} ${bytes(v)}`).join(', ') },
        parts.filter(([, v]) => v > 0).map(([k, v], i) => {
          const seg = el(`span.stack-seg.c${i}`, { title: `${k}: ${bytes(v)}` });
          seg.style.flexGrow = String(v);
          return seg;
        })),
      el('ul.legend', {}, parts.map(([k, v], i) => el('li', {}, el(`span.swatch.c${i}`, { 'aria-hidden': 'true' }), `${k} ${bytes(v)}`))),
      el('dl.facts', {},
        el('dt', {}, 'Throughput'), el('dd', {}, `${num(p.tokens_per_s, 3)} tokens/s (predicted, ${p.dtype})`),
        el('dt', {}, 'Steps'), el('dd', {}, `${p.steps} (${p.examples} examples)`),
        el('dt', {}, 'Tokens'), el('dd', {}, String(p.tokens)),
        el('dt', {}, 'Estimated time'), el('dd', { 'data-seconds': p.estimated_seconds }, duration(p.estimated_seconds))),
      p.warnings.map((w) => el('p.warning', {}, w)));
  }

  let seq = 0, timer = null;
  function update() {
    const type = methodSel.value;
    methodHelp.textContent = METHODS.find(([v]) => v === type)[1];
    for (const { input, only } of Object.values(inputs)) {
      input.closest('.field').classList.toggle('dim', !!only && !only.includes(type));
    }
    clearTimeout(timer);
    const f = files.get(trainSel.value);
    start.disabled = !f || f.status !== 'processed';
    if (!f) return;
    timer = setTimeout(async () => {
      const mine = ++seq;
      try {
        const p = await api('POST', '/v1/fine_tuning/plan', body());
        if (mine === seq) showPlan(p);
      } catch (e) {
        if (mine === seq) {
          planBox.replaceChildren(el('h2', { id: 'plan-title' }, 'Planner'), el('p.muted', {}, 'No prediction: the server refuses this job as it stands.'));
          showError(e);
        }
      }
    }, 300);
  }

  form.addEventListener('input', (e) => { if (e.target !== trainSel) update(); });
  trainSel.addEventListener('change', showReport);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    start.disabled = true;
    try {
      const job = await api('POST', '/v1/fine_tuning/jobs', body());
      go(`#/jobs/${job.id}`);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      showError(err);
      start.disabled = false;
    }
  });

  (async () => {
    try {
      const [fl, models] = await Promise.all([api('GET', '/v1/files?limit=100'), api('GET', '/v1/models')]);
      for (const f of fl.data) if (f.purpose === 'fine-tune') files.set(f.id, f);
      fillFiles(trainSel.value); // keeps a file uploaded meanwhile
      // the first model is the server's default, which a job names by omitting `model`
      const base = models.data.filter((m) => !m.id.startsWith('ft:'));
      modelSel.replaceChildren(...base.map((m, i) => el('option', { value: i ? m.id : '' }, i ? m.id : `${m.id} (default)`)));
      update();
    } catch (e) {
      say(`Could not load files or models: ${e.message}`);
    }
  })();
  return () => clearTimeout(timer);
}
