// api.js: the dashboard's calls to the owlore REST API. Requests go to this
// origin with the session cookie (never an API key in a URL); every request
// that changes anything carries X-Owlore-CSRF: 1, which the server demands
// of cookie-authenticated writes. A failed call throws an ApiError holding
// the server's OpenAI-style error (message, param, code); a 401 also tells
// the app (onUnauthorized) so it can show the sign-in form.

export class ApiError extends Error {
  constructor(status, body, text) {
    const e = body && body.error ? body.error : null;
    super(e && e.message ? e.message : `HTTP ${status}: ${(text || '').slice(0, 200)}`);
    this.status = status;
    this.param = e ? e.param : null;
    this.code = e ? e.code : null;
  }
}

let unauthorized = () => {};

// Sets what happens when the server answers 401 (the session ended).
export function onUnauthorized(fn) {
  unauthorized = fn;
}

// method, path (with query), body (an object sent as JSON, a FormData, or
// undefined); opts.bearer signs the one request with an API key (sign-in).
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Owlore-CSRF'] = '1';
  if (opts.bearer) headers.Authorization = `Bearer ${opts.bearer}`;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!r.ok) {
    const err = new ApiError(r.status, data, text);
    if (r.status === 401 && !opts.bearer) unauthorized(err);
    throw err;
  }
  return data;
}

// Path segment of an id the server gave us (ids are [A-Za-z0-9_-]).
export function seg(id) {
  return encodeURIComponent(id);
}
