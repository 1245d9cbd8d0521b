// The listing pages: runs, sessions, replicas and queue.

import { h, fill } from './dom.js';

export function runsPage(m) { fill(m, h('h1', null, 'Runs'), h('p', { class: 'muted' }, 'Coming next.')); }
export function sessionsPage(m) { fill(m, h('h1', null, 'Sessions'), h('p', { class: 'muted' }, 'Coming next.')); }
export function sessionPage(m) { sessionsPage(m); }
export function replicasPage(m) { fill(m, h('h1', null, 'Replicas and queue'), h('p', { class: 'muted' }, 'Coming next.')); }
