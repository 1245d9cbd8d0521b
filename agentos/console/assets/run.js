// The run page: a run's events live (or replayed from the store when it ended),
// its text per step and per Parallel branch, its tool calls, a step timeline,
// the "Cancel run" button, and the run's output, metrics and events once it ends.

import { h, fill, link, when, duration, badge, errorBox } from './dom.js';
import { get, post, base, Follower, ends, pauses } from './api.js';
import { approvalForm } from './approvals.js';

// handoff carries the open stream of a run the Start page just started.
const handoffs = new Map();
export function handOff(runID, info) { handoffs.set(runID, info); }

const MAX_EVENT_ROWS = 2000;

export function runPage(main, runID) {
  const page = new RunPage(main, runID);
  page.start();
  return () => page.stop();
}

class RunPage {
  constructor(main, runID) {
    this.main = main;
    this.runID = runID;
    this.events = [];
    this.queue = [];
    this.lanes = new Map(); // step id ("" for the run itself) -> lane
    this.steps = new Map(); // step id -> timeline entry
    this.tools = new Map(); // tool call id -> element
    this.status = 'RUNNING';
    this.startedAt = null; // ms, the run's start as the viewer's clock saw it
    this.endedAt = null;
    this.cancelClick = null;
    this.cancelShown = false;
    this.flushScheduled = false;
    this.build();
  }

  build() {
    this.el = {
      status: h('span', { id: 'run-status', class: 'badge', 'aria-live': 'polite' }, 'RUNNING'),
      elapsed: h('span', { id: 'run-elapsed' }),
      replica: h('span', { id: 'run-replica' }),
      component: h('span', { id: 'run-component' }),
      session: h('span', { id: 'run-session' }),
      conn: h('span', { id: 'run-connection', class: 'muted', 'aria-live': 'polite' }, 'connecting'),
      cancel: h('button', { id: 'cancel-run', type: 'button', class: 'danger', onclick: () => this.cancel() }, 'Cancel run'),
      outcome: h('p', { id: 'cancel-outcome', 'aria-live': 'polite' }),
      approval: h('section', { id: 'run-approval', class: 'card', hidden: true }),
      timeline: h('ol', { id: 'timeline', class: 'timeline' }),
      lanes: h('div', { id: 'lanes' }),
      result: h('section', { id: 'run-result' }),
      count: h('span', { id: 'run-events-count' }, '0'),
      eventRows: h('tbody'),
      filterType: h('select', { id: 'event-type', onchange: () => this.renderEvents() }, h('option', { value: '' }, 'All events')),
      filterText: h('input', { id: 'event-text', type: 'search', oninput: () => this.renderEvents() }),
      eventsBox: null,
    };
    this.types = new Set();
    const e = this.el;
    e.eventsBox = h('details', { id: 'events', ontoggle: () => this.renderEvents() },
      h('summary', null, 'Events (', e.count, ')'),
      h('div', { class: 'filters' },
        h('label', null, 'Type ', e.filterType),
        h('label', null, 'Contains ', e.filterText)),
      h('table', { class: 'events' },
        h('thead', null, h('tr', null, h('th', null, '#'), h('th', null, 'Event'), h('th', null, 'Step'), h('th', null, 'Detail'))),
        e.eventRows));
    this.root = h('article', { id: 'run', dataset: { runId: this.runID } },
      h('h1', null, 'Run ', h('code', null, this.runID)),
      h('dl', { class: 'facts' },
        h('dt', null, 'Status'), h('dd', null, e.status),
        h('dt', null, 'Of'), h('dd', null, e.component),
        h('dt', null, 'Session'), h('dd', null, e.session),
        h('dt', null, 'Elapsed'), h('dd', null, e.elapsed),
        h('dt', null, 'Replica'), h('dd', null, e.replica),
        h('dt', null, 'Stream'), h('dd', null, e.conn)),
      h('div', { class: 'actions' }, e.cancel, link('Trace', 'trace', this.runID)),
      e.outcome,
      e.approval,
      h('h2', null, 'Steps'), e.timeline,
      h('h2', null, 'Output'), e.lanes,
      e.result,
      e.eventsBox);
    fill(this.main, this.root);
  }

  async start() {
    const ho = handoffs.get(this.runID);
    handoffs.delete(this.runID);
    let kind = ho && ho.kind;
    let cid = ho && ho.id;
    if (!ho) {
      try {
        const out = await get('/runs/' + encodeURIComponent(this.runID));
        this.describe(out);
        kind = out.workflow_id ? 'workflow' : out.team_id ? 'team' : 'agent';
        cid = out.workflow_id || out.team_id || out.agent_id;
      } catch (err) {
        fill(this.main, errorBox(err));
        return;
      }
    } else {
      this.refreshInfo();
    }
    this.follower = new Follower(base(kind, cid), this.runID, {
      first: ho ? ho.reader : null,
      onEvent: (ev) => this.push(ev),
      onState: (state, f, err) => this.connState(state, f, err),
    });
    if (ho) {
      for (const ev of ho.events) {
        this.follower.last = Math.max(this.follower.last, ev.event_index);
        this.push(ev);
      }
    }
    this.tick = setInterval(() => this.showElapsed(), 250);
    this.follower.run();
  }

  // paused shows what the paused run waits for, with the controls deciding it,
  // until it goes on (decided here, on the Approvals page or through the API):
  // then the stream is followed again.
  async paused() {
    const e = this.el;
    let a = null;
    try { a = await get('/approvals/' + encodeURIComponent(this.runID)); } catch (err) {
      if (err.status !== 404) { fill(e.approval, errorBox(err)); e.approval.hidden = false; }
    }
    if (this.stopped) return;
    const goOn = () => {
      clearInterval(this.pauseTimer);
      this.pauseTimer = null;
      e.approval.hidden = true;
      fill(e.approval);
      this.follower.follow();
    };
    if (!a) { goOn(); return; } // continued already
    fill(e.approval, h('h2', null, 'Waits for a person'), approvalForm(a, () => {
      if (this.status === 'PAUSED') { this.status = 'RUNNING'; this.showStatus('RUNNING', ''); }
      goOn();
    }));
    e.approval.hidden = false;
    // Decided elsewhere (or cancelled): the run is no longer PAUSED.
    this.pauseTimer = setInterval(async () => {
      try {
        const out = await get('/runs/' + encodeURIComponent(this.runID));
        if (out.status !== 'PAUSED' && this.pauseTimer) goOn();
      } catch { /* tried again */ }
    }, 2000);
  }

  stop() {
    if (this.follower) this.follower.stop();
    clearInterval(this.pauseTimer);
    clearInterval(this.tick);
    this.stopped = true;
  }

  describe(out) {
    const e = this.el;
    // Until the stream says more: a queued run is PENDING, an ended one shows its end.
    if (!this.endedAt && out.status && out.status !== this.status) {
      this.status = out.status;
      this.showStatus(out.status, '');
    }
    fill(e.component, out.workflow_name || out.team_name || out.agent_name || out.workflow_id || out.team_id || out.agent_id || '');
    fill(e.session, out.session_id || '');
    fill(e.replica, out.replica || '');
    if (out.created_at && this.startedAt == null) this.startedAt = out.created_at * 1000;
  }

  async refreshInfo() {
    try { this.describe(await get('/runs/' + encodeURIComponent(this.runID))); } catch { /* shown by the stream */ }
  }

  connState(state, f, err) {
    const e = this.el;
    this.root.dataset.connects = String(f.connects);
    this.root.dataset.dupes = String(f.dupes);
    this.root.dataset.gaps = String(f.gaps);
    if (state === 'live') fill(e.conn, f.connects > 1 ? 'live (reconnected ' + (f.connects - 1) + '×)' : 'live');
    else if (state === 'reconnecting') fill(e.conn, 'connection lost, reconnecting…');
    else if (state === 'ended') fill(e.conn, 'ended');
    else if (state === 'paused') { fill(e.conn, 'paused: waits for a person'); this.paused(); }
    else if (state === 'failed') fill(e.conn, h('span', { class: 'error' }, 'stream failed: ' + err.message));
  }

  // push queues an event; the page is updated once per animation frame, whatever
  // the number of events that came in it.
  push(ev) {
    this.queue.push(ev);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const flush = () => this.flush();
    requestAnimationFrame(flush);
    setTimeout(flush, 100); // a hidden tab gets no animation frames
  }

  flush() {
    if (!this.flushScheduled || this.stopped) return;
    this.flushScheduled = false;
    const evs = this.queue;
    this.queue = [];
    const text = new Map(); // lane -> text arrived in this batch
    const now = Date.now();
    for (const ev of evs) {
      this.events.push(ev);
      if (!this.types.has(ev.event)) {
        this.types.add(ev.event);
        this.el.filterType.append(h('option', { value: ev.event }, ev.event));
      }
      // Live events are timed by the viewer's clock; replayed ones by their
      // stored time (whole seconds).
      const t = ev.created_at && Math.abs(now - ev.created_at * 1000) > 2000 ? ev.created_at * 1000 : now;
      if (this.startedAt == null) this.startedAt = t;
      this.apply(ev, t, text);
    }
    for (const [lane, s] of text) lane.text.append(s);
    this.el.count.textContent = String(this.events.length);
    this.root.dataset.events = String(this.events.length);
    this.root.dataset.lastIndex = String(this.events.length ? this.events[this.events.length - 1].event_index : -1);
    if (this.el.eventsBox.open) this.appendEventRows(evs);
    this.showElapsed();
  }

  lane(ev) {
    // A team's member run (not in a step) has a lane of its own, beside the
    // team's other members.
    const member = !ev.step_id && ev.parent_run_id && ev.run_id !== this.runID;
    const key = ev.step_id || (member ? 'run:' + ev.run_id : '');
    let lane = this.lanes.get(key);
    if (lane) return lane;
    const title = ev.step_name || ev.agent_name || ev.team_name || ev.workflow_name || 'Output';
    lane = {
      title: h('span', null, title),
      who: h('span', { class: 'muted' }),
      tools: h('ul', { class: 'tools', 'aria-label': 'Tool calls of ' + title }),
      text: h('div', { class: 'text', role: 'log', 'aria-label': 'Text of ' + title }),
    };
    lane.el = h('section', { class: 'lane', dataset: { step: key, index: String(ev.step_index ?? ''), member: member ? ev.agent_id || '' : null } },
      h('h3', null, lane.title, ' ', lane.who), lane.tools, lane.text);
    let parent = this.el.lanes;
    const groupKey = ev.parent_step_id || (member ? 'run:' + ev.parent_run_id : '');
    if (groupKey) {
      // A branch of a Parallel (or a step of a container), or a team's member:
      // the lanes of one parent side by side, each with its own text.
      let group = this.el.lanes.querySelector(':scope > .group[data-parent="' + CSS.escape(groupKey) + '"]');
      if (!group) {
        group = h('div', { class: 'group', dataset: { parent: groupKey } });
        this.el.lanes.append(group);
      }
      parent = group;
    }
    // Branches in their workflow order, whichever spoke first.
    const later = ev.parent_step_id && ev.step_index != null &&
      [...parent.children].find((c) => c.dataset.index !== '' && Number(c.dataset.index) > ev.step_index);
    parent.insertBefore(lane.el, later || null);
    this.lanes.set(key, lane);
    return lane;
  }

  step(ev, t) {
    let s = this.steps.get(ev.step_id);
    if (s) return s;
    s = { start: t, end: null, status: h('span', { class: 'muted' }, 'running'), dur: h('span', { class: 'dur' }) };
    s.el = h('li', { dataset: { step: ev.step_id }, class: ev.parent_step_id ? 'nested' : '' },
      h('span', { class: 'name' }, ev.step_name || ev.step_id), ' ', s.status, ' ', s.dur);
    this.el.timeline.append(s.el);
    this.steps.set(ev.step_id, s);
    return s;
  }

  apply(ev, t, text) {
    if (ev.run_id === this.runID && (ev.event === 'WorkflowStarted' || ev.event === 'RunStarted' || ev.event === 'TeamRunStarted') &&
      this.status !== 'RUNNING' && !this.endedAt) {
      this.status = 'RUNNING'; // a queued run started
      this.showStatus('RUNNING', '');
    }
    if (pauses(ev, this.runID)) { this.status = 'PAUSED'; this.showStatus('PAUSED', ''); } else if (this.status === 'PAUSED' && !this.endedAt) {
      this.status = 'RUNNING'; // any event after the pause: the run was continued
      this.showStatus('RUNNING', '');
    }
    switch (ev.event) {
      case 'StepStarted':
      case 'ParallelExecutionStarted':
      case 'ConditionExecutionStarted':
      case 'LoopExecutionStarted':
      case 'RouterExecutionStarted':
      case 'StepsExecutionStarted':
        this.step(ev, t);
        break;
      case 'StepCompleted':
      case 'StepError':
      case 'ParallelExecutionCompleted':
      case 'ConditionExecutionCompleted':
      case 'LoopExecutionCompleted':
      case 'RouterExecutionCompleted':
      case 'StepsExecutionCompleted': {
        const s = this.step(ev, t);
        s.end = t;
        fill(s.status, ev.event === 'StepError' ? badge('ERROR') : badge('COMPLETED'));
        fill(s.dur, duration(s.end - s.start));
        if (ev.event === 'StepCompleted' && ev.content && typeof ev.content === 'string') {
          const lane = this.lanes.get(ev.step_id);
          if (!lane) this.lane(ev).text.append(ev.content); // a function step: its output at once
        }
        break;
      }
      case 'RunStarted':
        if (ev.agent_name) fill(this.lane(ev).who, '· ' + ev.agent_name + (ev.model ? ' (' + ev.model + ')' : ''));
        break;
      case 'TeamRunStarted':
        fill(this.lane(ev).who, '· team' + (ev.model ? ' (' + ev.model + ')' : ''));
        break;
      case 'TeamRunContent':
      case 'RunContent': {
        if (typeof ev.content !== 'string') break;
        const lane = this.lane(ev);
        text.set(lane, (text.get(lane) || '') + ev.content);
        break;
      }
      case 'TeamToolCallStarted':
      case 'ToolCallStarted': {
        const tool = ev.tool || {};
        const result = h('pre', { class: 'result muted' }, 'running…');
        const li = h('li', { class: 'tool' },
          h('strong', null, tool.tool_name || 'tool'), ' ',
          h('pre', { class: 'args' }, tool.tool_args ? JSON.stringify(tool.tool_args, null, 1) : ''), result);
        this.tools.set(tool.tool_call_id, result);
        this.lane(ev).tools.append(li);
        break;
      }
      case 'TeamToolCallCompleted':
      case 'TeamToolCallError':
      case 'ToolCallCompleted':
      case 'ToolCallError': {
        const tool = ev.tool || {};
        const result = this.tools.get(tool.tool_call_id);
        if (result) {
          result.className = 'result' + (ev.event.endsWith('ToolCallError') || tool.tool_call_error ? ' error' : '');
          result.textContent = tool.result ?? ev.error ?? '';
        }
        break;
      }
    }
    if (ends(ev, this.runID)) this.finish(ev, t);
  }

  finish(ev, t) {
    this.endedAt = t;
    this.status = ev.event.endsWith('Cancelled') ? 'CANCELLED' : ev.event.endsWith('Error') ? 'ERROR' : 'COMPLETED';
    this.showStatus(this.status, ev.reason || ev.error || '');
    this.el.cancel.disabled = true;
    for (const s of this.steps.values()) {
      if (s.end != null) continue;
      s.end = t;
      fill(s.status, badge(this.status));
      fill(s.dur, duration(s.end - s.start));
    }
    this.showResult();
  }

  showStatus(status, reason) {
    const e = this.el;
    e.status.textContent = status;
    e.status.className = 'badge st-' + status.toLowerCase();
    this.root.dataset.status = status;
    if (this.cancelClick != null && !this.cancelShown && status !== 'RUNNING' && status !== 'PENDING' && status !== 'PAUSED') {
      this.cancelShown = true;
      this.cancelMs = performance.now() - this.cancelClick;
      this.root.dataset.cancelMs = this.cancelMs.toFixed(1);
    }
    if (reason) this.reason = reason;
    if (this.cancelAnswer) this.showOutcome();
  }

  showOutcome() {
    const a = this.cancelAnswer;
    fill(this.el.outcome, 'Cancel: status ', badge(a.status),
      this.reason ? ' · reason: ' + this.reason : '',
      ' · the cancel took ', duration(a.ms),
      a.known === false ? ' · no process knew the run yet: the intent is kept' : '');
  }

  async cancel() {
    const e = this.el;
    e.cancel.disabled = true;
    this.cancelClick = performance.now();
    fill(e.outcome, 'Cancelling…');
    try {
      const resp = await post('/runs/' + encodeURIComponent(this.runID) + '/cancel');
      const a = await resp.json();
      this.cancelAnswer = { status: a.status, known: a.known, ms: performance.now() - this.cancelClick };
      if (this.status === 'RUNNING' || this.status === 'PAUSED') this.showStatus(a.status, '');
      this.showOutcome();
    } catch (err) {
      fill(e.outcome, errorBox(err));
      e.cancel.disabled = this.status !== 'RUNNING' && this.status !== 'PAUSED';
    }
  }

  showElapsed() {
    if (this.startedAt == null) return;
    const end = this.endedAt ?? Date.now();
    this.el.elapsed.textContent = duration(Math.max(0, end - this.startedAt));
  }

  // showResult shows the run as stored: content (a cancelled run's partial
  // text), step results, metrics.
  async showResult() {
    let out;
    try { out = await get('/runs/' + encodeURIComponent(this.runID)); } catch (err) { fill(this.el.result, errorBox(err)); return; }
    if (this.stopped) return;
    this.describe(out);
    if (out.reason) this.reason = out.reason;
    this.showStatus(out.status, out.reason || out.error || '');
    const m = out.metrics || {};
    const content = typeof out.content === 'string' ? out.content : JSON.stringify(out.content, null, 2);
    fill(this.el.result,
      h('h2', null, 'Result'),
      h('dl', { class: 'facts' },
        h('dt', null, 'Status'), h('dd', null, badge(out.status)),
        out.reason ? [h('dt', null, 'Reason'), h('dd', null, out.reason)] : null,
        out.error ? [h('dt', null, 'Error'), h('dd', { class: 'error' }, out.error)] : null,
        h('dt', null, 'Tokens'), h('dd', null, (m.input_tokens || 0) + ' in · ' + (m.output_tokens || 0) + ' out · ' + (m.total_tokens || 0) + ' total'),
        m.time_to_first_token ? [h('dt', null, 'Time to first token'), h('dd', null, duration(m.time_to_first_token * 1000))] : null,
        m.duration ? [h('dt', null, 'Duration'), h('dd', null, duration(m.duration * 1000))] : null,
        h('dt', null, 'Started'), h('dd', null, when(out.created_at)),
        out.user_id ? [h('dt', null, 'User'), h('dd', null, out.user_id)] : null,
        h('dt', null, 'Input'), h('dd', { id: 'run-input', class: 'text' }, out.input || '')),
      h('h3', null, 'Content'),
      h('div', { id: 'run-content', class: 'text' }, content || ''),
      out.step_results && out.step_results.length ? [h('h3', null, 'Step results'), stepResults(out.step_results)] : null,
      out.member_responses && out.member_responses.length ? [h('h3', null, 'Member runs'), memberRuns(out.member_responses)] : null);
  }

  renderEvents() {
    fill(this.el.eventRows);
    if (this.el.eventsBox.open) this.appendEventRows(this.events);
  }

  appendEventRows(evs) {
    const type = this.el.filterType.value;
    const needle = this.el.filterText.value.toLowerCase();
    const rows = [];
    for (const ev of evs) {
      if (type && ev.event !== type) continue;
      const detail = ev.content ?? ev.reason ?? ev.error ?? (ev.tool ? ev.tool.tool_name : '');
      const d = typeof detail === 'string' ? detail : JSON.stringify(detail);
      if (needle && !(ev.event.toLowerCase().includes(needle) || d.toLowerCase().includes(needle))) continue;
      rows.push(h('tr', null, h('td', null, String(ev.event_index)), h('td', null, ev.event),
        h('td', null, ev.step_name || ''), h('td', { class: 'detail' }, d.length > 300 ? d.slice(0, 300) + '…' : d)));
    }
    this.el.eventRows.append(...rows);
    while (this.el.eventRows.childElementCount > MAX_EVENT_ROWS) this.el.eventRows.firstElementChild.remove();
  }
}

// memberRuns lists a team run's member runs as stored: who, status, content.
function memberRuns(outs) {
  return h('ul', { class: 'steps member-runs' }, outs.map((o) => h('li', { dataset: { runId: o.run_id || '' } },
    h('strong', null, o.agent_name || o.team_name || o.agent_id || o.team_id || ''), ' ', badge(o.status || ''),
    h('small', { class: 'muted' }, ' ', o.run_id || ''),
    o.metrics && o.metrics.duration ? ' ' + duration(o.metrics.duration * 1000) : '',
    o.error ? h('p', { class: 'error' }, o.error) : null,
    o.content ? h('div', { class: 'text' }, typeof o.content === 'string' ? o.content : JSON.stringify(o.content, null, 2)) : null,
    o.member_responses && o.member_responses.length ? memberRuns(o.member_responses) : null)));
}

function stepResults(results) {
  return h('ul', { class: 'steps' }, results.map((r) => h('li', null,
    h('strong', null, r.step_name || r.step_id), ' ', badge(r.status || ''),
    r.metrics && r.metrics.duration ? ' ' + duration(r.metrics.duration * 1000) : '',
    r.error ? h('p', { class: 'error' }, r.error) : null,
    r.content ? h('div', { class: 'text' }, r.content) : null,
    r.steps && r.steps.length ? stepResults(r.steps) : null)));
}
