// login.js: the sign-in form, shown when the server has API keys and this
// browser has no live session. The key is sent once, in an Authorization
// header, to POST /v1/dashboard/session, which answers with an HttpOnly
// session cookie; the key itself is never stored by the page.

import { api } from './api.js';
import { el } from './dom.js';

export function loginPage(main, onSignedIn) {
  const key = el('input', { id: 'api-key', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false', 'aria-describedby': 'api-key-help' });
  const error = el('p.alert', { role: 'alert', hidden: true });
  const submit = el('button.primary', { type: 'submit' }, 'Sign in');
  const form = el('form.card.login', {},
    el('h1', {}, 'Sign in'),
    el('div.field', {}, el('label', { for: 'api-key' }, 'API key'), key,
      el('p.help', { id: 'api-key-help' }, 'An owlore API key (sk-owl-…), from `owlore keys create`. The dashboard keeps a session cookie for 12 hours, not the key.')),
    error, el('div.actions', {}, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      const s = await api('POST', '/v1/dashboard/session', undefined, { bearer: key.value.trim() });
      key.value = '';
      onSignedIn(s);
    } catch (err) {
      error.hidden = false;
      error.textContent = err.message;
      key.focus();
    } finally {
      submit.disabled = false;
    }
  });
  main.replaceChildren(form);
  key.focus();
}
