// dataset.js: picking a training dataset: drag and drop (or choose) a file
// to upload to POST /v1/files, and the server's validation report of a file
// object (its `validation` field): valid or not, format, examples, the line
// errors, and token statistics when the server computed them.

import { api } from './api.js';
import { el, bytes } from './dom.js';

// The report of file object f as a DOM node.
export function reportView(f) {
  const v = f.validation || {};
  const ok = f.status === 'processed';
  const facts = [
    ['File', `${f.filename} (${bytes(f.bytes)})`],
    ['Status', ok ? 'valid' : 'invalid'],
    ['Format', v.format || '—'],
    ['Examples', v.examples ?? '—'],
    ['Lines', v.lines ?? '—'],
    ['sha256', f.sha256],
  ];
  const t = v.tokens;
  if (t) {
    facts.push(['Tokens', `${t.total} in all, ${t.trained} trained, longest ${t.max}`]);
    facts.push(['Sequence length', `${t.seq_len}: ${t.truncated} truncated, ${t.dropped} dropped`]);
  }
  const errors = v.errors || [];
  const hist = t && t.histogram ? t.histogram.filter((b) => b.count > 0) : [];
  const maxCount = Math.max(1, ...hist.map((b) => b.count));
  return el(`section.report.${ok ? 'ok' : 'bad'}`, { 'aria-label': 'Validation report', 'data-file': f.id },
    el('h3', {}, ok ? 'Dataset is valid' : `Dataset has ${v.error_count || errors.length} error${(v.error_count || errors.length) === 1 ? '' : 's'}`),
    el('dl.facts', {}, facts.map(([k, val]) => [el('dt', {}, k), el('dd', {}, String(val))])),
    t ? null : el('p.muted', {}, 'Token statistics: not computed for this file.'),
    hist.length ? el('div.hist', { role: 'img', 'aria-label': 'Example length histogram' },
      el('p.muted', {}, 'Tokens per example'),
      hist.map((b) => el('div.hist-row', {}, el('span.hist-label', {}, `${b.min}–${b.max}`),
        el('meter', { min: 0, max: maxCount, value: b.count, 'aria-label': `${b.count} examples of ${b.min} to ${b.max} tokens` }),
        el('span', {}, String(b.count))))) : null,
    errors.length ? el('table.errors', {},
      el('caption', {}, v.errors_truncated ? 'First errors' : 'Errors'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Line'), el('th', { scope: 'col' }, 'Code'), el('th', { scope: 'col' }, 'Message'))),
      el('tbody', {}, errors.map((e) => el('tr.error-row', {}, el('td', {}, e.line ?? '—'), el('td', {}, el('code', {}, e.code)), el('td', {}, e.message))))) : null);
}

// A drop zone that uploads the dropped or chosen file; onUploaded(file
// object) runs after the server answered; status messages go to `say`.
export function dropZone(onUploaded, say) {
  const input = el('input.visually-hidden', { type: 'file', id: 'dataset-file', accept: '.jsonl,.json,.txt' });
  const zone = el('div.dropzone', { tabindex: 0, role: 'button', 'aria-describedby': 'dropzone-help' },
    el('strong', {}, 'Drop a dataset here'), ' or ',
    el('label.linklike', { for: 'dataset-file' }, 'choose a file'),
    el('p.muted', { id: 'dropzone-help' }, 'JSONL or JSON: chat messages, prompt/completion, alpaca or text. It is checked on upload, before anything trains.'),
    input);
  async function upload(file) {
    if (!file) return;
    const form = new FormData();
    form.append('purpose', 'fine-tune');
    form.append('file', file, file.name);
    say(`Uploading ${file.name} (${bytes(file.size)})…`);
    zone.classList.add('busy');
    try {
      const f = await api('POST', '/v1/files', form);
      say(f.status === 'processed' ? `${file.name} uploaded and valid.` : `${file.name} uploaded: ${f.status_details || 'invalid'}`);
      onUploaded(f);
    } catch (e) {
      say(`Upload failed: ${e.message}`);
    } finally {
      zone.classList.remove('busy');
      input.value = '';
    }
  }
  input.addEventListener('change', () => upload(input.files[0]));
  zone.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      input.click();
    }
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    upload(e.dataTransfer.files[0]);
  });
  return zone;
}
