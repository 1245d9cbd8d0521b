// The trace page: a run's spans as a waterfall, from GET /runs/{run_id}/trace
// (the telemetry's route: {trace_id, run_id, spans: [{name, kind, start_time,
// end_time, duration_ms, status, status_message, attributes, events,
// children}]}). A server without telemetry, or a run whose trace is no longer
// kept, says so.

import { h, fill, link, duration, errorBox } from './dom.js';
import { get } from './api.js';

export async function tracePage(m, runID) {
  let tr;
  try {
    tr = await get('/runs/' + encodeURIComponent(runID) + '/trace');
  } catch (err) {
    if (err.status !== 404) throw err;
    fill(m, h('h1', null, 'Trace'), h('p', { id: 'trace-none', class: 'muted' },
      'No trace for this run: the server keeps traces of recent runs only, and only with telemetry on. ', err.message),
    h('p', null, link('Back to the run', 'run', runID)));
    return;
  }
  const rows = [];
  const walk = (spans, depth) => {
    for (const s of spans || []) {
      rows.push({ s, depth, start: Date.parse(s.start_time), end: Date.parse(s.end_time) });
      walk(s.children, depth + 1);
    }
  };
  walk(tr.spans, 0);
  const t0 = Math.min(...rows.map((r) => r.start));
  const total = Math.max(1, Math.max(...rows.map((r) => r.end)) - t0);
  fill(m,
    h('h1', null, 'Trace of run ', link(runID, 'run', runID)),
    h('p', { class: 'muted' }, 'Trace ', h('code', null, tr.trace_id || ''), ' · ', rows.length + ' spans · ' + duration(total)),
    h('ol', { id: 'waterfall', class: 'waterfall' }, rows.map((r) => {
      const bar = h('span', { class: 'bar' + (r.s.status === 'ERROR' ? ' error' : '') });
      // CSSOM, not a style attribute: allowed by the page's CSP.
      bar.style.marginLeft = ((r.start - t0) / total * 100).toFixed(2) + '%';
      bar.style.width = Math.max(0.3, (r.end - r.start) / total * 100).toFixed(2) + '%';
      const name = h('span', { class: 'span-name' }, r.s.name);
      name.style.paddingLeft = r.depth + 'rem';
      return h('li', { dataset: { span: r.s.span_id || '' } }, h('details', null,
        h('summary', null, name, ' ', h('small', { class: 'muted' }, (r.s.kind || '') + ' · ' + duration(r.s.duration_ms ?? (r.end - r.start))),
          h('span', { class: 'track' }, bar)),
        r.s.status_message ? h('p', { class: 'error' }, r.s.status_message) : null,
        h('pre', { class: 'text' }, JSON.stringify({ attributes: r.s.attributes || {}, events: r.s.events || [] }, null, 1))));
    })));
}
