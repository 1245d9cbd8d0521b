// The console's shell: a hash router over its pages, and the security key prompt.

import { h, fill, link, when, badge, errorBox } from './dom.js';
import { get, request, base, setKey, key, AuthError, SSEReader } from './api.js';
import { runPage, handOff } from './run.js';
import { tracePage } from './trace.js';
import { approvalsPage } from './approvals.js';
import { runsPage, sessionsPage, sessionPage, replicasPage, every } from './pages.js';

const main = document.getElementById('main');
let leave = null; // the current page's cleanup

const routes = [
  [/^$/, homePage],
  [/^start$/, startPage],
  [/^run\/([^/]+)$/, (m, id) => runPage(m, id)],
  [/^trace\/([^/]+)$/, (m, id) => tracePage(m, id)],
  [/^runs$/, runsPage],
  [/^approvals$/, approvalsPage],
  [/^sessions$/, sessionsPage],
  [/^sessions\/([^/]+)$/, (m, id) => sessionPage(m, id)],
  [/^replicas$/, replicasPage],
];

let generation = 0; // of the route shown: a page that loads after a newer one was asked for is dropped

async function route() {
  if (leave) { leave(); leave = null; }
  const gen = ++generation;
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === '#/' + path.split('/')[0]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const [re, page] of routes) {
    const m = path.match(re);
    if (!m) continue;
    fill(main, h('p', { class: 'muted' }, 'Loading…'));
    delete main.dataset.loaded;
    // The page is built in its own element, shown once it is ready (the run
    // page goes on filling its element as events come).
    const view = h('div', { class: 'view' });
    try {
      const args = m.slice(1).map(decodeURIComponent);
      const cleanup = await page(view, ...args, params);
      if (gen !== generation) { if (typeof cleanup === 'function') cleanup(); return; }
      if (typeof cleanup === 'function') leave = cleanup;
      fill(main, view);
      main.dataset.loaded = path; // the page shows its data
    } catch (err) {
      if (gen !== generation) return;
      if (err instanceof AuthError) keyPrompt();
      else fill(main, errorBox(err));
    }
    return;
  }
  fill(main, h('h1', null, 'Not found'), h('p', null, 'No page here. ', link('Home', '')));
}

// keyPrompt asks for the server's security key once; it is kept in this tab's
// sessionStorage.
function keyPrompt() {
  const input = h('input', { id: 'security-key', type: 'password', autocomplete: 'current-password', required: true });
  const msg = h('p', { role: 'alert' });
  const form = h('form', { id: 'key-form', class: 'card' },
    h('h1', null, 'Security key'),
    h('p', null, 'This server requires its security key. It is kept in this browser tab only (sessionStorage).'),
    key() ? h('p', { class: 'error' }, 'The key given was refused.') : null,
    h('label', { for: 'security-key' }, 'Security key'), input, msg,
    h('button', { type: 'submit' }, 'Use key'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    setKey(input.value);
    try {
      await request('GET', '/config');
      route();
    } catch (err) {
      setKey('');
      fill(msg, err instanceof AuthError ? 'That key was refused.' : String(err.message));
    }
  });
  fill(main, form);
  input.focus();
}

let config = null;
async function serverConfig() {
  if (!config) {
    config = await get('/config');
    fill(document.getElementById('server'), config.os_id + ' · ' + (config.replica_id || ''));
  }
  return config;
}

async function homePage(m) {
  const cfg = await serverConfig();
  const details = await Promise.all(cfg.workflows.map((w) => get(base('workflow', w.id)).catch(() => w)));
  const teams = await Promise.all((cfg.teams || []).map((t) => get(base('team', t.id)).catch(() => t)));
  const lists = ['RUNNING', 'PAUSED', 'ERROR', 'CANCELLED'].map(() => h('div'));
  const empty = ['No run is running.', 'No run waits for a person.', 'No failed run.', 'No cancelled run.'];
  const load = async () => {
    const runs = await Promise.all([
      get('/runs?status=RUNNING&limit=20'), get('/runs?status=PAUSED&limit=10'), get('/runs?status=ERROR&limit=10'),
      get('/runs?status=CANCELLED&limit=10')]);
    runs.forEach((rs, i) => fill(lists[i], runList(rs, empty[i])));
  };
  await load();
  fill(m,
    h('h1', null, 'Home'),
    h('section', null, h('h2', null, 'Workflows'),
      details.length ? h('ul', { class: 'cards' }, details.map((w) => h('li', { class: 'card' },
        h('h3', null, w.name || w.id), w.description ? h('p', null, w.description) : null,
        w.steps ? diagram(w.steps) : null,
        startLink('workflow', w.id)))) : h('p', { class: 'muted' }, 'None.')),
    h('section', null, h('h2', null, 'Agents'),
      cfg.agents.length ? h('ul', { class: 'cards' }, cfg.agents.map((a) => h('li', { class: 'card' },
        h('h3', null, a.name || a.id), a.description ? h('p', null, a.description) : null,
        startLink('agent', a.id)))) : h('p', { class: 'muted' }, 'None.')),
    teams.length ? h('section', { id: 'teams' }, h('h2', null, 'Teams'),
      h('ul', { class: 'cards' }, teams.map((t) => h('li', { class: 'card', dataset: { team: t.id } },
        h('h3', null, t.name || t.id), h('p', { class: 'muted' }, (t.mode || '') + ' team'),
        t.members && t.members.length ? h('ul', { class: 'members', 'aria-label': 'Members' },
          t.members.map((mb) => h('li', null, mb.name || mb.id))) : null,
        startLink('team', t.id))))) : null,
    h('section', { id: 'live-runs' }, h('h2', null, 'Live runs'), lists[0]),
    h('section', { id: 'paused-runs' }, h('h2', null, 'Waiting for a person'), lists[1], link('Approvals', 'approvals')),
    h('section', { id: 'failed-runs' }, h('h2', null, 'Recent failures'), lists[2]),
    h('section', { id: 'cancelled-runs' }, h('h2', null, 'Recent cancellations'), lists[3]));
  return every(() => load().catch(() => {})); // refreshed while shown
}

function startLink(kind, id) {
  return h('a', { href: '#/start?' + new URLSearchParams({ kind, id }) }, 'Start a run');
}

// diagram draws a workflow's steps: in a row, a container's steps under it
// (side by side for a Parallel).
function diagram(steps) {
  return h('ol', { class: 'diagram', 'aria-label': 'Steps' }, steps.map((s) => h('li', { class: 'kind-' + s.kind },
    h('span', { class: 'step' }, s.name, ' ', h('small', { class: 'muted' }, s.kind)),
    s.steps && s.steps.length ? diagram(s.steps) : null)));
}

export function runList(runs, empty) {
  if (!runs.length) return h('p', { class: 'muted' }, empty);
  return h('ul', { class: 'runs' }, runs.map((r) => h('li', null,
    badge(r.status), ' ', link(r.workflow_name || r.team_name || r.agent_name || r.workflow_id || r.team_id || r.agent_id || r.run_id, 'run', r.run_id), ' ',
    h('small', { class: 'muted' }, when(r.created_at), r.reason ? ' · ' + r.reason : ''))));
}

async function startPage(m, params) {
  const cfg = await serverConfig();
  const choice = h('select', { id: 'component', name: 'component', required: true },
    cfg.workflows.length ? h('optgroup', { label: 'Workflows' }, cfg.workflows.map((w) => h('option', { value: 'workflow:' + w.id }, w.name || w.id))) : null,
    cfg.agents.length ? h('optgroup', { label: 'Agents' }, cfg.agents.map((a) => h('option', { value: 'agent:' + a.id }, a.name || a.id))) : null,
    cfg.teams && cfg.teams.length ? h('optgroup', { label: 'Teams' }, cfg.teams.map((t) => h('option', { value: 'team:' + t.id }, t.name || t.id))) : null);
  if (params.get('id')) choice.value = (params.get('kind') || 'workflow') + ':' + params.get('id');
  const message = h('textarea', { id: 'message', name: 'message', rows: 4, required: true });
  const session = h('input', { id: 'session', name: 'session_id', autocomplete: 'off' });
  const user = h('input', { id: 'user', name: 'user_id', autocomplete: 'off' });
  const stream = h('input', { id: 'mode-stream', type: 'radio', name: 'mode', value: 'stream', checked: true });
  const background = h('input', { id: 'mode-background', type: 'radio', name: 'mode', value: 'background' });
  const msg = h('div', { role: 'alert' });
  const run = h('button', { type: 'submit' }, 'Run');
  const form = h('form', { id: 'start-form', class: 'card' },
    h('label', { for: 'component' }, 'Workflow, agent or team'), choice,
    h('label', { for: 'message' }, 'Message'), message,
    h('label', { for: 'session' }, 'Session id (optional)'), session,
    h('label', { for: 'user' }, 'User id (optional)'), user,
    h('fieldset', null, h('legend', null, 'How'),
      h('label', null, stream, ' Stream (leaving the run page cancels it after a grace period)'),
      h('label', null, background, ' Background (queued; goes on without this page)')),
    msg, run);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    run.disabled = true;
    fill(msg);
    const [kind, ...rest] = choice.value.split(':');
    const id = rest.join(':');
    const fields = { message: message.value, stream: String(stream.checked), background: String(background.checked) };
    if (session.value) fields.session_id = session.value;
    if (user.value) fields.user_id = user.value;
    try {
      const resp = await request('POST', base(kind, id) + '/runs', { body: new URLSearchParams(fields) });
      if (background.checked) {
        const a = await resp.json();
        location.hash = '#/run/' + encodeURIComponent(a.run_id);
        return;
      }
      // The first event names the run; the page takes the stream over from there.
      const reader = new SSEReader(resp);
      const f = await reader.next();
      if (!f) throw new Error('the stream ended before the run started');
      const ev = JSON.parse(f.data);
      handOff(ev.run_id, { kind, id, reader, events: [ev] });
      location.hash = '#/run/' + encodeURIComponent(ev.run_id);
    } catch (err) {
      run.disabled = false;
      if (err instanceof AuthError) keyPrompt();
      else fill(msg, errorBox(err));
    }
  });
  fill(m, h('h1', null, 'Start a run'), form);
  message.focus();
}

window.addEventListener('hashchange', route);
route();
