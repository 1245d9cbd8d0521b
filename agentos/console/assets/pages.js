// The listing pages: runs (filtered and paged on the server, refreshed while
// shown, multi-select cancel), sessions, replicas and queue.

import { h, fill, link, when, duration, badge, errorBox } from './dom.js';
import { get, post, AuthError } from './api.js';

const PAGE = 50;
const REFRESH_MS = 2000;

// every calls fn now and every REFRESH_MS while the tab is visible, one call at
// a time; it returns the stop function.
export function every(fn) {
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try { await fn(); } catch { /* shown by the next load, or the page was left */ } finally { busy = false; }
  };
  const timer = setInterval(tick, REFRESH_MS);
  return () => clearInterval(timer);
}

function setHash(path, params) {
  for (const [k, v] of [...params]) if (!v) params.delete(k);
  const q = params.toString();
  location.hash = '#/' + path + (q ? '?' + q : '');
}

const statuses = ['PENDING', 'RUNNING', 'PAUSED', 'COMPLETED', 'CANCELLED', 'ERROR'];

export async function runsPage(m, params) {
  const cfg = await get('/config');
  const page = Math.max(1, Number(params.get('page')) || 1);
  const status = h('select', { id: 'f-status', name: 'status' }, h('option', { value: '' }, 'Any'),
    statuses.map((s) => h('option', { value: s }, s)));
  status.value = params.get('status') || '';
  const comp = h('select', { id: 'f-component', name: 'component' }, h('option', { value: '' }, 'Any'),
    cfg.workflows.map((w) => h('option', { value: 'workflow_id:' + w.id }, 'Workflow: ' + (w.name || w.id))),
    cfg.agents.map((a) => h('option', { value: 'agent_id:' + a.id }, 'Agent: ' + (a.name || a.id))),
    (cfg.teams || []).map((t) => h('option', { value: 'team_id:' + t.id }, 'Team: ' + (t.name || t.id))));
  comp.value = params.get('component') || '';
  const session = h('input', { id: 'f-session', name: 'session_id', value: params.get('session_id') || '', autocomplete: 'off' });
  const user = h('input', { id: 'f-user', name: 'user_id', value: params.get('user_id') || '', autocomplete: 'off' });
  const filters = h('form', { id: 'run-filters', class: 'filters', role: 'search' },
    h('label', null, 'Status', status), h('label', null, 'Workflow, agent or team', comp),
    h('label', null, 'Session id', session), h('label', null, 'User id', user),
    h('button', { type: 'submit' }, 'Filter'));
  const apply = (p) => setHash('runs', new URLSearchParams({ status: status.value, component: comp.value,
    session_id: session.value, user_id: user.value, page: p > 1 ? String(p) : '' }));
  filters.addEventListener('submit', (e) => { e.preventDefault(); apply(1); });
  status.addEventListener('change', () => apply(1));
  comp.addEventListener('change', () => apply(1));

  const selected = new Set();
  const all = h('input', { id: 'select-all', type: 'checkbox' });
  const cancelBtn = h('button', { id: 'cancel-selected', type: 'button', class: 'danger', disabled: true }, 'Cancel selected');
  const results = h('ul', { id: 'cancel-results', 'aria-live': 'polite' });
  const body = h('tbody');
  const info = h('span', { class: 'muted' });
  const prev = h('button', { type: 'button', class: 'plain', disabled: page === 1, onclick: () => apply(page - 1) }, 'Previous page');
  const next = h('button', { type: 'button', class: 'plain', disabled: true, onclick: () => apply(page + 1) }, 'Next page');
  const msg = h('div', { role: 'alert' });
  let shown = [];

  const syncSelection = () => {
    cancelBtn.disabled = selected.size === 0;
    fill(cancelBtn, selected.size ? 'Cancel selected (' + selected.size + ')' : 'Cancel selected');
    all.checked = shown.length > 0 && shown.every((r) => selected.has(r.run_id));
  };
  all.addEventListener('change', () => {
    for (const r of shown) if (all.checked) selected.add(r.run_id); else selected.delete(r.run_id);
    for (const box of body.querySelectorAll('input[type=checkbox]')) box.checked = all.checked;
    syncSelection();
  });
  cancelBtn.addEventListener('click', async () => {
    const ids = [...selected];
    cancelBtn.disabled = true;
    fill(results, h('li', null, 'Cancelling ' + ids.length + ' run(s)…'));
    const t0 = performance.now();
    const outcomes = await Promise.all(ids.map(async (id) => {
      try {
        const a = await (await post('/runs/' + encodeURIComponent(id) + '/cancel')).json();
        return h('li', { dataset: { runId: id } }, link(id, 'run', id), ': ', badge(a.status));
      } catch (err) {
        return h('li', { dataset: { runId: id } }, link(id, 'run', id), ': ', errorBox(err));
      }
    }));
    fill(results, outcomes, h('li', { class: 'muted' }, 'took ' + duration(performance.now() - t0)));
    selected.clear();
    await load();
  });

  const q = new URLSearchParams({ limit: String(PAGE + 1), offset: String((page - 1) * PAGE) });
  if (status.value) q.set('status', status.value);
  if (comp.value) { const [k, ...v] = comp.value.split(':'); q.set(k, v.join(':')); }
  if (session.value) q.set('session_id', session.value);
  if (user.value) q.set('user_id', user.value);

  async function load() {
    let runs;
    try { runs = await get('/runs?' + q); } catch (err) {
      if (err instanceof AuthError) throw err;
      fill(msg, errorBox(err));
      return;
    }
    fill(msg);
    next.disabled = runs.length <= PAGE;
    shown = runs.slice(0, PAGE);
    fill(info, shown.length ? 'Runs ' + ((page - 1) * PAGE + 1) + '–' + ((page - 1) * PAGE + shown.length) : 'No runs');
    fill(body, shown.map((r) => {
      const box = h('input', { type: 'checkbox', 'aria-label': 'Select run ' + r.run_id, checked: selected.has(r.run_id) });
      box.addEventListener('change', () => { if (box.checked) selected.add(r.run_id); else selected.delete(r.run_id); syncSelection(); });
      return h('tr', { dataset: { runId: r.run_id, status: r.status } },
        h('td', null, box),
        h('td', null, badge(r.status)),
        h('td', null, link(r.run_id.slice(0, 13) + '…', 'run', r.run_id)),
        h('td', null, r.workflow_name || r.team_name || r.agent_name || r.workflow_id || r.team_id || r.agent_id || ''),
        h('td', { class: 'opt' }, r.session_id ? link(r.session_id.slice(0, 13), 'sessions', r.session_id) : ''),
        h('td', { class: 'opt' }, r.user_id || ''),
        h('td', null, when(r.created_at)),
        h('td', { class: 'opt detail' }, preview(r)));
    }));
    syncSelection();
    // When the page first showed runs, by the browser's clock from navigation.
    if (!body.dataset.renderedMs) body.dataset.renderedMs = performance.now().toFixed(0);
  }

  fill(m, h('h1', null, 'Runs'), filters,
    h('div', { class: 'actions' }, h('label', null, all, ' Select all on this page'), cancelBtn),
    results, msg,
    h('div', { class: 'table-wrap' }, h('table', { id: 'runs-table' },
      h('thead', null, h('tr', null, h('th', null, h('span', { class: 'muted' }, '✓')), h('th', null, 'Status'), h('th', null, 'Run'),
        h('th', null, 'Of'), h('th', { class: 'opt' }, 'Session'), h('th', { class: 'opt' }, 'User'), h('th', null, 'Started'),
        h('th', { class: 'opt' }, 'Content'))),
      body)),
    h('div', { class: 'pager' }, prev, info, next));
  await load();
  return every(load);
}

function preview(r) {
  const c = typeof r.content === 'string' ? r.content : r.content ? JSON.stringify(r.content) : '';
  const s = r.reason || r.error || c;
  return s.length > 80 ? s.slice(0, 80) + '…' : s;
}

export async function sessionsPage(m, params) {
  const page = Math.max(1, Number(params.get('page')) || 1);
  const res = await get('/sessions?limit=20&sort_by=updated_at&page=' + page);
  const meta = res.meta || {};
  fill(m, h('h1', null, 'Sessions'),
    res.data.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'sessions-table' },
      h('thead', null, h('tr', null, h('th', null, 'Session'), h('th', null, 'Name'), h('th', { class: 'opt' }, 'Of'),
        h('th', { class: 'opt' }, 'User'), h('th', null, 'Updated'))),
      h('tbody', null, res.data.map((s) => h('tr', null,
        h('td', null, link(s.session_id, 'sessions', s.session_id)), h('td', null, s.session_name || ''),
        h('td', { class: 'opt' }, (s.session_type || '') + ' ' + (s.component_id || '')),
        h('td', { class: 'opt' }, s.user_id || ''), h('td', null, when(s.updated_at))))))) : h('p', { class: 'muted' }, 'No sessions.'),
    h('div', { class: 'pager' },
      h('button', { type: 'button', class: 'plain', disabled: page <= 1, onclick: () => setHash('sessions', new URLSearchParams({ page: String(page - 1) })) }, 'Previous page'),
      h('span', { class: 'muted' }, 'Page ' + page + ' of ' + Math.max(1, meta.total_pages || 1) + ' · ' + (meta.total_count || 0) + ' sessions'),
      h('button', { type: 'button', class: 'plain', disabled: page >= (meta.total_pages || 1), onclick: () => setHash('sessions', new URLSearchParams({ page: String(page + 1) })) }, 'Next page')));
}

export async function sessionPage(m, id) {
  const path = '/sessions/' + encodeURIComponent(id);
  const [s, runs] = await Promise.all([get(path), get(path + '/runs?limit=100')]);
  fill(m, h('h1', null, 'Session ', h('code', null, s.session_id)),
    h('dl', { class: 'facts' },
      h('dt', null, 'Name'), h('dd', null, s.session_name || ''),
      h('dt', null, 'Of'), h('dd', null, (s.session_type || '') + ' ' + (s.component_id || '')),
      h('dt', null, 'User'), h('dd', null, s.user_id || ''),
      h('dt', null, 'Created'), h('dd', null, when(s.created_at)),
      h('dt', null, 'Updated'), h('dd', null, when(s.updated_at))),
    h('h2', null, 'State'),
    h('pre', { id: 'session-state', class: 'text card' }, JSON.stringify(s.session_state || {}, null, 2)),
    h('h2', null, 'Runs'),
    runs.length ? h('ul', { class: 'runs' }, runs.map((r) => h('li', null, badge(r.status), ' ',
      link(r.run_id, 'run', r.run_id), ' ', h('small', { class: 'muted' }, when(r.created_at), ' · ', preview(r))))) :
      h('p', { class: 'muted' }, 'No runs.'));
}

export async function replicasPage(m) {
  const reps = h('tbody');
  const queue = h('dl', { id: 'queue', class: 'facts' });
  const note = h('p', { class: 'muted' });
  const msg = h('div', { role: 'alert' });
  async function load() {
    let r, q;
    try { [r, q] = await Promise.all([get('/replicas'), get('/queue')]); } catch (err) {
      if (err instanceof AuthError) throw err;
      fill(msg, errorBox(err));
      return;
    }
    fill(msg);
    const now = Date.now() / 1000;
    fill(reps, r.replicas.map((x) => h('tr', { dataset: { replica: x.replica } },
      h('td', null, x.replica, x.this ? h('small', { class: 'muted' }, ' (this one)') : null),
      h('td', null, String(x.live_runs)),
      h('td', null, x.last_heartbeat ? [when(x.last_heartbeat), h('small', { class: 'muted' }, ' (' + duration(Math.max(0, now - x.last_heartbeat) * 1000) + ' ago)')] : ''),
      h('td', { class: 'opt' }, x.lease_until ? when(x.lease_until) : ''))));
    fill(note, 'Replicas are those with running runs, and this one. Heartbeats of other replicas are inferred from their leases (' +
      duration(r.lease_seconds * 1000) + ')' + (r.complete ? '.' : '; over 1000 running runs, some replicas may be missing.'));
    fill(queue,
      h('dt', null, 'Waiting'), h('dd', { id: 'queue-depth' }, String(q.depth) + (q.capped ? '+' : '')),
      h('dt', null, 'Oldest waiting since'), h('dd', null, q.oldest_created_at ? [when(q.oldest_created_at), ' (' + duration(Math.max(0, now - q.oldest_created_at) * 1000) + ')'] : '—'),
      h('dt', null, 'Queue'), h('dd', null, q.shared ? 'in the store, shared by every replica on the database' : 'in this process'),
      h('dt', null, 'Workers (this replica)'), h('dd', null, String(q.workers)),
      h('dt', null, 'Queue size'), h('dd', null, String(q.size)));
  }
  fill(m, h('h1', null, 'Replicas and queue'), msg,
    h('h2', null, 'Replicas'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'replicas-table' },
      h('thead', null, h('tr', null, h('th', null, 'Replica'), h('th', null, 'Live runs'), h('th', null, 'Last heartbeat'), h('th', { class: 'opt' }, 'Lease until'))),
      reps)), note,
    h('h2', null, 'Background queue'), queue);
  await load();
  return every(load);
}
