// dom.js: small helpers to build the page's DOM without HTML strings (so no
// server text is ever parsed as markup) and to format numbers, sizes, times.

// el('tag.class', {attr: value, onclick: fn}, child, ...): children are
// nodes, strings (text) or arrays of them; null and false are skipped.
export function el(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const node = document.createElement(tag);
  if (classes.length) node.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

// Replaces node's children like el() adds them (arrays flattened, null and
// false skipped).
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// An SVG element with attributes.
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  for (const c of children) if (c) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

export function bytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? (Math.abs(n) < 10 ? 2 : 1) : 0)} ${u[i]}`;
}

export function duration(s) {
  if (s === null || s === undefined || !isFinite(s) || s < 0) return '—';
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3600);
  return h < 48 ? `${h} h ${Math.floor((s % 3600) / 60)} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function when(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : '—';
}

export function num(v, digits = 4) {
  if (v === null || v === undefined || !isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

// The method type of a job object ("owlore", "lisa", ...).
export function methodOf(job) {
  return job && job.method && job.method.type ? job.method.type : '—';
}

export const TERMINAL = ['succeeded', 'failed', 'cancelled'];
