// The console's only way to the server: kern's HTTP API, with the security key
// (if the server has one) in the Authorization header. The key lives in this
// tab's sessionStorage, never in a URL.

const KEY = 'kern.securityKey';

export class AuthError extends Error {}

export function key() { return sessionStorage.getItem(KEY) || ''; }
export function setKey(k) { if (k) sessionStorage.setItem(KEY, k); else sessionStorage.removeItem(KEY); }

function headers(extra) {
  const hs = new Headers(extra || {});
  const k = key();
  if (k) hs.set('Authorization', 'Bearer ' + k);
  return hs;
}

// request sends a request and returns the Response, throwing AuthError on 401
// and an Error with the server's detail on any other failure.
export async function request(method, path, { body, headers: extra, signal } = {}) {
  const resp = await fetch(path, { method, body, headers: headers(extra), signal, cache: 'no-store' });
  if (resp.status === 401) throw new AuthError('the server wants a security key');
  if (!resp.ok) {
    let detail = resp.status + ' ' + resp.statusText;
    try { const j = await resp.json(); if (j && j.detail) detail = resp.status + ': ' + j.detail; } catch { /* not JSON */ }
    const err = new Error(detail);
    err.status = resp.status;
    throw err;
  }
  return resp;
}

export async function get(path, opts) {
  return (await request('GET', path, opts)).json();
}

export async function post(path, fields, opts = {}) {
  const body = fields ? new URLSearchParams(fields) : undefined;
  return request('POST', path, { ...opts, body });
}

// base is the API path of a component: "/workflows/<id>", "/agents/<id>" or
// "/teams/<id>".
export function base(kind, id) {
  return (kind === 'agent' ? '/agents/' : kind === 'team' ? '/teams/' : '/workflows/') + encodeURIComponent(id);
}

// SSEReader reads server-sent events off a fetch Response body, one frame at a
// time: {event, id, data}. Comments (the server's pings) are skipped.
export class SSEReader {
  constructor(resp) {
    this.reader = resp.body.getReader();
    this.decoder = new TextDecoder();
    this.buf = '';
  }
  // next returns the next frame, or null at the end of the stream.
  async next() {
    for (;;) {
      const end = this.buf.indexOf('\n\n');
      if (end >= 0) {
        const block = this.buf.slice(0, end);
        this.buf = this.buf.slice(end + 2);
        const f = parseFrame(block);
        if (f) return f;
        continue;
      }
      const { value, done } = await this.reader.read();
      if (done) return null;
      this.buf += this.decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    }
  }
  cancel() { this.reader.cancel().catch(() => {}); }
}

function parseFrame(block) {
  const f = { event: 'message', id: null, data: '' };
  let any = false;
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const name = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'event') f.event = value;
    else if (name === 'id') f.id = value;
    else if (name === 'data') f.data += (f.data ? '\n' : '') + value;
    else continue;
    any = true;
  }
  return any ? f : null;
}

const terminal = new Set(['WorkflowCompleted', 'WorkflowCancelled', 'WorkflowError', 'RunCompleted', 'RunCancelled', 'RunError',
  'TeamRunCompleted', 'TeamRunCancelled', 'TeamRunError']);

// ends reports whether ev is the terminal event of the top-level run runID.
export function ends(ev, runID) {
  return terminal.has(ev.event) && ev.run_id === runID;
}

// pauses reports whether ev pauses the top-level run runID: its stream ends
// there until a person decides.
export function pauses(ev, runID) {
  return (ev.event === 'RunPaused' || ev.event === 'WorkflowPaused') && ev.run_id === runID;
}

// Follower follows a run's events to its end, as EventSource would, over fetch
// (EventSource cannot send the Authorization header, and the key must never be in
// a URL): after a dropped connection it reconnects to the run's resume route with
// Last-Event-ID, so that no event is lost or repeated. Events are given to onEvent
// in index order, once each. At a pause of the run it stops ('paused');
// follow() goes on after the run was continued.
export class Follower {
  // path: the component's base path; runID; first: an SSEReader already open on
  // the run's stream (the answer to the POST that started it), or null.
  constructor(path, runID, { onEvent, onState, first = null }) {
    this.path = path;
    this.runID = runID;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.first = first;
    this.last = -1; // index of the last event given
    this.connects = 0;
    this.dupes = 0;
    this.gaps = 0;
    this.done = false;
    this.ctl = new AbortController();
  }

  async run() {
    let backoff = 250;
    while (!this.done && !this.ctl.signal.aborted) {
      let reader = this.first;
      this.first = null;
      try {
        if (!reader) {
          const hs = this.last >= 0 ? { 'Last-Event-ID': String(this.last) } : {};
          const resp = await request('GET', this.path + '/runs/' + encodeURIComponent(this.runID) + '/resume',
            { headers: hs, signal: this.ctl.signal });
          reader = new SSEReader(resp);
        }
        this.reader = reader;
        if (this.ctl.signal.aborted) { reader.cancel(); return; }
        this.connects++;
        this.onState('live', this);
        for (;;) {
          const f = await reader.next();
          if (!f) break;
          backoff = 250;
          const ev = JSON.parse(f.data);
          const idx = Number(f.id ?? ev.event_index);
          if (idx <= this.last) { this.dupes++; continue; }
          if (idx !== this.last + 1) this.gaps++;
          this.last = idx;
          this.onEvent(ev);
          if (ends(ev, this.runID)) { this.done = true; reader.cancel(); break; }
          if (pauses(ev, this.runID)) { this.paused = true; reader.cancel(); break; }
        }
      } catch (err) {
        if (this.ctl.signal.aborted) return;
        if (err instanceof AuthError || (err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429)) {
          this.onState('failed', this, err);
          return;
        }
      }
      if (this.done || this.ctl.signal.aborted) break;
      if (this.paused) { this.onState('paused', this); return; }
      this.onState('reconnecting', this);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, 5000);
    }
    if (this.done) this.onState('ended', this);
  }

  // follow goes on after a pause, from the event after the last one given.
  follow() {
    if (!this.paused || this.ctl.signal.aborted) return;
    this.paused = false;
    this.run();
  }

  // stop stops following: the open stream is closed (the server then counts one
  // client less for the run).
  stop() {
    this.ctl.abort();
    if (this.first) this.first.cancel();
    if (this.reader) this.reader.cancel();
  }
}
