// Approvals: the decisions paused runs wait for (GET /approvals, one per paused
// run, its id the run's), listed live, each with the controls its requirements
// ask for: Approve or Reject (with a note the model reads) for a confirmation,
// fields for a user input, a result for a call executed outside. A decision is
// sent with POST /approvals/{id}/resolve, which continues the run.

import { h, fill, link, when, errorBox } from './dom.js';
import { get, request, AuthError } from './api.js';
import { every } from './pages.js';

// needs gathers what an approval's requirements ask for: whether one waits for
// a confirmation, the user input fields (by name), whether one waits for a
// result executed outside, and a line per requirement saying what it is about.
function needs(a) {
  const n = { confirm: false, fields: new Map(), external: false, lines: [] };
  const addFields = (schema) => { for (const f of schema || []) if (!n.fields.has(f.name)) n.fields.set(f.name, f); };
  const tool = (t, why) => {
    if (!t) return;
    if (t.requires_confirmation) n.confirm = true;
    if (t.external_execution_required) n.external = true;
    if (t.requires_user_input) addFields(t.user_input_schema);
    n.lines.push({ what: t.tool_name || 'tool', args: t.tool_args, why });
  };
  for (const r of a.requirements || []) {
    if (r.step_id !== undefined) { // a workflow's step requirement
      if (r.requires_confirmation) n.confirm = true;
      if (r.requires_user_input) addFields(r.user_input_schema);
      const why = r.confirmation_message || r.user_input_message || '';
      if (r.executor_requirements && r.executor_requirements.length) {
        for (const x of r.executor_requirements) { addFields(x.user_input_schema); tool(x.tool_execution, 'step ' + (r.step_name || r.step_id)); }
      } else {
        n.lines.push({ what: 'step ' + (r.step_name || r.step_id), why });
      }
      if (r.requires_route_selection) n.routes = true;
    } else { // an agent's requirement
      addFields(r.user_input_schema);
      tool(r.tool_execution, '');
    }
  }
  return n;
}

// kindOf is what the approval waits for, in words.
function kindOf(n) {
  const parts = [];
  if (n.confirm) parts.push('a confirmation');
  if (n.fields.size) parts.push('input');
  if (n.external) parts.push('a result executed outside');
  return parts.length ? 'Waits for ' + parts.join(', ') : 'Waits for a decision';
}

let seq = 0;

// approvalForm is the form deciding approval a; onResolved(answer) is called once
// it was resolved (the run goes on).
export function approvalForm(a, onResolved) {
  const n = needs(a);
  const p = 'ap' + (++seq) + '-';
  const inputs = [];
  const rows = [];
  for (const f of n.fields.values()) {
    const id = p + 'f-' + f.name;
    const type = String(f.field_type || 'str').toLowerCase();
    const input = type === 'bool'
      ? h('input', { id, type: 'checkbox', name: f.name })
      : h('input', { id, name: f.name, type: type === 'int' || type === 'float' ? 'number' : 'text',
        step: type === 'float' ? 'any' : null, autocomplete: 'off', required: true });
    inputs.push({ f, type, input });
    rows.push(h('label', { for: id }, f.name, f.description ? h('small', { class: 'muted' }, ' · ' + f.description) : null), input);
  }
  const result = n.external ? h('textarea', { id: p + 'result', name: 'result', rows: 3, required: true }) : null;
  if (result) rows.push(h('label', { for: p + 'result' }, 'Result of the call, executed outside'), result);
  const note = n.confirm ? h('input', { id: p + 'note', name: 'note', autocomplete: 'off' }) : null;
  if (note) rows.push(h('label', { for: p + 'note' }, 'Note (optional; the model reads it on a rejection)'), note);
  const approve = h('button', { type: 'submit', class: 'approve', value: 'approved' }, n.confirm ? 'Approve' : 'Send');
  const reject = n.confirm ? h('button', { type: 'button', class: 'danger reject' }, 'Reject') : null;
  const msg = h('div', { class: 'approval-msg', role: 'alert' });
  const form = h('form', { class: 'approval-form', dataset: { approvalId: a.id } },
    h('p', { class: 'muted' }, kindOf(n)),
    h('ul', { class: 'requirements' }, n.lines.map((l) => h('li', null,
      h('strong', null, l.what), l.why ? ' · ' + l.why : '',
      l.args != null ? h('pre', { class: 'args' }, typeof l.args === 'string' ? l.args : JSON.stringify(l.args, null, 1)) : null))),
    n.routes ? h('p', { class: 'muted' }, 'This step asks which route to take: choose it with the continue route of the API.') : null,
    rows, msg, h('div', { class: 'actions' }, approve, reject));

  const send = async (status) => {
    const data = {};
    if (status === 'approved') {
      const values = {};
      for (const { f, type, input } of inputs) {
        if (type === 'bool') values[f.name] = input.checked;
        else if (type === 'int' || type === 'float') values[f.name] = Number(input.value);
        else values[f.name] = input.value;
      }
      if (inputs.length) data.values = values;
      if (result) data.result = result.value;
    }
    if (note && note.value) data.note = note.value;
    approve.disabled = true;
    if (reject) reject.disabled = true;
    fill(msg, status === 'approved' ? 'Approving…' : 'Rejecting…');
    try {
      const resp = await request('POST', '/approvals/' + encodeURIComponent(a.id) + '/resolve', {
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ status, resolved_by: 'console', resolution_data: data }),
      });
      const out = await resp.json();
      form.dataset.resolved = status;
      fill(msg, status === 'approved' ? 'Approved: the run goes on.' : 'Rejected: the run goes on without the call.');
      if (onResolved) onResolved(out);
    } catch (err) {
      if (err instanceof AuthError) throw err;
      approve.disabled = false;
      if (reject) reject.disabled = false;
      fill(msg, errorBox(err));
    }
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); send('approved'); });
  if (reject) reject.addEventListener('click', () => send('rejected'));
  return form;
}

// approvalsPage lists the pending approvals, refreshed while shown; a card stays
// as it is (with what the viewer typed) while its approval is pending.
export async function approvalsPage(m) {
  const list = h('ul', { id: 'approvals', class: 'cards' });
  const empty = h('p', { id: 'approvals-empty', class: 'muted' }, 'No run waits for a decision.');
  const msg = h('div', { role: 'alert' });
  const cards = new Map(); // approval id -> card
  async function load() {
    let res;
    try { res = await get('/approvals?limit=100'); } catch (err) {
      if (err instanceof AuthError) throw err;
      fill(msg, errorBox(err));
      return;
    }
    fill(msg);
    const ids = new Set(res.data.map((a) => a.id));
    for (const [id, card] of cards) {
      if (!ids.has(id) && !card.querySelector('form[data-resolved]')) { card.remove(); cards.delete(id); }
    }
    for (const a of [...res.data].reverse()) { // newest first: each new one goes on top
      if (cards.has(a.id)) continue;
      const card = h('li', { class: 'card approval', dataset: { runId: a.run_id } },
        h('h3', null, a.source_name || a.agent_id || a.workflow_id || a.source_type),
        h('p', { class: 'muted' }, 'Run ', link(a.run_id, 'run', a.run_id), ' · ', a.source_type,
          a.user_id ? ' · user ' + a.user_id : '', ' · paused ', when(a.created_at)),
        approvalForm(a, () => { card.classList.add('resolved'); }));
      cards.set(a.id, card);
      list.prepend(card);
    }
    empty.hidden = cards.size > 0;
  }
  await load();
  fill(m, h('h1', null, 'Approvals'),
    h('p', { class: 'muted' }, 'Runs paused for a person: each waits here until it is approved, rejected or given what it asks for.'),
    msg, empty, list);
  return every(load);
}
