// app.js: the dashboard's entry point: asks the server whether this browser
// must sign in (GET /v1/dashboard/session), then routes on the URL's hash:
// #/jobs (the list), #/new (a new job), #/jobs/<id> (one job). Each page
// returns a function that stops its timers and streams when it is left.

import { api, onUnauthorized } from './api.js';
import { el } from './dom.js';
import { jobsPage } from './jobs_page.js';
import { newJobPage } from './new_job.js';
import { jobPage } from './job_page.js';
import { loginPage } from './login.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
const nav = document.getElementById('nav');
let leave = () => {};

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  leave();
  leave = () => {};
  const h = location.hash || '#/jobs';
  const m = /^#\/jobs\/([A-Za-z0-9_-]{1,64})$/.exec(h);
  for (const a of nav.querySelectorAll('a')) {
    a.toggleAttribute('aria-current', a.getAttribute('href') === (m ? '#/jobs' : h));
  }
  if (m) leave = jobPage(main, m[1]);
  else if (h === '#/new') leave = newJobPage(main, go);
  else leave = jobsPage(main);
  main.focus({ preventScroll: true });
}

function signedIn(s) {
  nav.hidden = false;
  const out = s.auth === 'cookie' ? el('button.link', { type: 'button', onclick: signOut }, 'Sign out') : null;
  who.replaceChildren(el('span.muted', {}, s.owner ? `tenant ${s.owner}` : ''), out ? ' ' : '', out || '');
  route();
}

function showLogin() {
  leave();
  leave = () => {};
  nav.hidden = true;
  who.replaceChildren();
  loginPage(main, signedIn);
}

async function signOut() {
  try {
    await api('DELETE', '/v1/dashboard/session');
  } finally {
    showLogin();
  }
}

onUnauthorized(showLogin);
window.addEventListener('hashchange', () => {
  if (!nav.hidden) route();
});

(async () => {
  try {
    const s = await api('GET', '/v1/dashboard/session');
    if (s.login_required) showLogin();
    else signedIn(s);
  } catch (e) {
    main.replaceChildren(el('p.alert', { role: 'alert' }, `The server did not answer: ${e.message}`));
  }
})();
