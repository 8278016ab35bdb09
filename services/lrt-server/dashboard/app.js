// The page's entry: who is signed in, then the view the path names (/dashboard: the overview;
// /dashboard/evaluations/{id}: one evaluation; /dashboard/validation: silent-mode validation).

import { post, session } from './api.js';
import { h } from './dom.js';
import * as evaluation from './evaluation.js';
import * as overview from './overview.js';
import * as validation from './validation.js';

function signedOut(main, who) {
  const here = window.location.pathname + window.location.search;
  main.append(h('h1', {}, 'Sign in to see the LRT quality figures'));
  if (who.login) {
    main.append(h('p', {}, h('a', { class: 'button', href: `${who.login}?return_to=${encodeURIComponent(here)}` }, 'Sign in')));
  } else if (who.mode === 'proxy') {
    main.append(h('p', {}, 'Your request did not come through the hospital\'s sign-in proxy, or its assertion was refused. Open the dashboard through its usual address.'));
  } else {
    main.append(h('p', {}, 'No sign-in is configured for the dashboard on this service ([dashboard] in lrt.toml). The API still answers callers with a JWT.'));
  }
}

function header(who) {
  const box = document.getElementById('who');
  box.replaceChildren(h('span', { class: 'name' }, who.name), h('span', { class: 'scope' }, ` · ${who.scope}`));
  if (who.logout) {
    const button = h('button', { type: 'button', class: 'link' }, 'Sign out');
    button.addEventListener('click', async () => {
      const answer = await post('/dashboard/logout');
      window.location.assign(answer.end_session_endpoint || '/dashboard');
    });
    box.append(' ', button);
  }
}

async function main() {
  const main = document.getElementById('main');
  const loading = document.getElementById('loading');
  try {
    const who = await session();
    loading.remove();
    if (!who.signed_in) {
      signedOut(main, who);
      main.setAttribute('data-ready', 'signed-out');
      return;
    }
    header(who);
    const match = window.location.pathname.match(/^\/dashboard\/evaluations\/([0-9a-fA-F-]{36})\/?$/);
    if (match) await evaluation.render(main, match[1]);
    else if (/^\/dashboard\/validation\/?$/.test(window.location.pathname)) await validation.render(main);
    else await overview.render(main);
  } catch (e) {
    loading.remove();
    main.append(h('div', { class: 'notice error', role: 'alert' }, `The figures could not be loaded: ${e.message}`));
    main.setAttribute('data-ready', 'error');
  }
}

main();
