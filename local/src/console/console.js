// The developer console of teleapi-local (served at /console/console.js).
//
// Everything it shows comes from the public Calls API, called with the account's credentials,
// except the worker's call events (status changes, commands applied or rejected), which the API
// does not keep: those come from the live feed (/dev/feed, server-sent events) and are kept here,
// per call, for the timeline. The feed also says *when* to refresh: each message schedules one
// debounced refresh of the list and, if it concerns it, of the selected call. No polling.
'use strict';

const CREDENTIALS_KEY = 'teleapi-console-credentials';
const DEBOUNCE_MS = 150;
const DEBOUNCE_MAX_MS = 1000; // a busy feed still refreshes at least this often
const KEPT_EVENTS_PER_CALL = 500;

const state = {
  credentials: null, // {account_sid, auth_token}
  calls: [], // the last page of Calls.json, newest first
  selected: null, // CallSid or null
  events: new Map(), // CallSid -> feed events kept for the timeline, in arrival order
  seenEvents: new Set(), // the feed replays its backlog on every (re)connect: keep each once
  openDetails: new Set(), // keys of timeline rows whose <details> the user opened
  errors: new Map(), // what failed, by endpoint, for the status line
};

const $ = (selector) => document.querySelector(selector);

// ---------------------------------------------------------------------------------------------
// Small helpers

/** An element with attributes (`class`, `data-*`, `text`, `on*` handlers) and children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

const shortSid = (sid) => (sid ? `${sid.slice(0, 10)}…` : '');

function badge(status) {
  const s = String(status ?? 'unknown');
  return el('span', { class: `badge status-${s.replace(/[^a-z0-9-]/gi, '')}`, text: s });
}

/** Milliseconds since the epoch from a number, or an RFC 2822 / RFC 3339 string; NaN if neither. */
function toMillis(value) {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value) return Date.parse(value);
  return NaN;
}

const clock = (ms) =>
  Number.isFinite(ms) ? new Date(ms).toLocaleTimeString([], { hour12: false }) : '';

function formatParameters(params) {
  return Object.entries(params ?? {})
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(' ') : v}`)
    .join(' ');
}

/** Shows (or clears, with null) one problem per source in the status line. */
function report(source, problem) {
  if (problem) state.errors.set(source, problem);
  else state.errors.delete(source);
  const line = $('#status-line');
  line.hidden = state.errors.size === 0;
  line.textContent = [...state.errors.values()].join(' · ');
}

// ---------------------------------------------------------------------------------------------
// HTTP: every call answers {ok, status, statusText, json, text} and never throws.

const base = () => `/call/2012-04-24/Accounts/${state.credentials.account_sid}`;

function authHeader() {
  const { account_sid, auth_token } = state.credentials;
  return `Basic ${btoa(`${account_sid}:${auth_token}`)}`;
}

async function request(url, { method = 'GET', form = null, auth = true } = {}) {
  const headers = { Accept: 'application/json' };
  if (auth) headers.Authorization = authHeader();
  if (form) headers['Content-Type'] = 'application/x-www-form-urlencoded';
  try {
    const response = await fetch(url, {
      method,
      headers,
      body: form ? new URLSearchParams(form).toString() : undefined,
      cache: 'no-store',
    });
    const text = await response.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: keep the text */ }
    return { ok: response.ok, status: response.status, statusText: response.statusText, json, text };
  } catch (error) {
    return { ok: false, status: 0, statusText: 'network error', json: null, text: String(error) };
  }
}

/** GETs an API path; on failure, says so in the status line and answers null. */
async function apiGet(path, source) {
  const answer = await request(base() + path);
  if (answer.ok && answer.json) {
    report(source, null);
    return answer.json;
  }
  const why = answer.json?.message ?? (answer.statusText || answer.text.slice(0, 120));
  report(source, `${source}: ${answer.status || ''} ${why}`.trim());
  if (answer.status === 401) askForCredentials();
  return null;
}

// ---------------------------------------------------------------------------------------------
// Credentials: from /dev/console/config if it gives the token, else asked once and stored.

async function loadCredentials() {
  const config = await request('/dev/console/config', { auth: false });
  const sid = config.json?.account_sid ?? null;
  if (sid && config.json?.auth_token) return { account_sid: sid, auth_token: config.json.auth_token };
  if (!config.ok) report('config', `/dev/console/config: ${config.status} ${config.statusText}`);
  try {
    const stored = JSON.parse(localStorage.getItem(CREDENTIALS_KEY) ?? 'null');
    if (stored?.account_sid && stored?.auth_token) return stored;
  } catch { /* a broken entry: ask again */ }
  if (sid) $('#credentials [name=AccountSid]').value = sid;
  return null;
}

function askForCredentials() {
  const form = $('#credentials');
  if (!form.hidden) return;
  if (state.credentials) form.elements.AccountSid.value = state.credentials.account_sid;
  form.hidden = false;
}

$('#credentials').addEventListener('submit', (e) => {
  e.preventDefault();
  const form = e.target;
  state.credentials = {
    account_sid: form.elements.AccountSid.value.trim(),
    auth_token: form.elements.AuthToken.value.trim(),
  };
  localStorage.setItem(CREDENTIALS_KEY, JSON.stringify(state.credentials));
  form.hidden = true;
  started();
});

// ---------------------------------------------------------------------------------------------
// Live feed

function connectFeed() {
  const feedState = $('#feed-state');
  const source = new EventSource('/dev/feed');
  source.onopen = () => {
    feedState.textContent = 'live';
    feedState.className = 'badge live';
  };
  source.onerror = () => {
    feedState.textContent = 'reconnecting';
    feedState.className = 'badge';
    // The browser retries a dropped stream by itself, but not one answered with an error.
    if (source.readyState === EventSource.CLOSED) setTimeout(connectFeed, 3000);
  };
  source.onmessage = (message) => {
    let data;
    try { data = JSON.parse(message.data); } catch { return; }
    onFeedMessage(data);
  };
}

// Worker events the timeline shows; http.request and call.notification come back through the
// Events and Notifications APIs instead.
const KEPT_EVENT = /^(call\.(initiated|status)|command\.|rcml\.failed|recording\.|stream\.)/;

function onFeedMessage(data) {
  if (data.type === 'worker') {
    scheduleRefresh({ workers: true });
    return;
  }
  if (data.type === 'conference') {
    scheduleRefresh({ list: true, conferences: true });
    return;
  }
  const sid = data.call_sid;
  if (data.type === 'event' && sid && data.event && KEPT_EVENT.test(data.event.type ?? '')) {
    const key = `${sid} ${JSON.stringify(data.event)}`;
    if (!state.seenEvents.has(key)) {
      state.seenEvents.add(key);
      const kept = state.events.get(sid) ?? [];
      kept.push(data.event);
      if (kept.length > KEPT_EVENTS_PER_CALL) state.seenEvents.delete(`${sid} ${JSON.stringify(kept.shift())}`);
      state.events.set(sid, kept);
    }
  }
  scheduleRefresh({ list: true, conferences: true, workers: true, detail: concernsSelected(sid) });
}

/** Whether news about this call may change what the selected call's pane shows. */
function concernsSelected(sid) {
  if (!state.selected || !sid) return false;
  if (sid === state.selected) return true;
  const call = findCall(sid);
  if (!call) return true; // unknown yet: maybe a new leg of the selected call
  return call.parent_call_sid === state.selected || findCall(state.selected)?.parent_call_sid === sid;
}

// One timer for all pending refreshes: it fires DEBOUNCE_MS after the last message, or
// DEBOUNCE_MAX_MS after the first one, whichever comes first.
const pending = { list: false, conferences: false, workers: false, detail: false, since: 0, timer: null };

function scheduleRefresh(what) {
  for (const key of ['list', 'conferences', 'workers', 'detail']) pending[key] = pending[key] || Boolean(what[key]);
  const now = Date.now();
  if (!pending.timer) pending.since = now;
  clearTimeout(pending.timer);
  const wait = Math.max(0, Math.min(DEBOUNCE_MS, pending.since + DEBOUNCE_MAX_MS - now));
  pending.timer = setTimeout(runRefresh, wait);
}

function runRefresh() {
  const { list, conferences, workers, detail } = pending;
  Object.assign(pending, { list: false, conferences: false, workers: false, detail: false, timer: null });
  if (workers) refreshWorkers(); // a dev route: no credentials needed
  if (!state.credentials) return;
  if (list) refreshCalls();
  if (conferences) refreshConferences();
  if (detail) refreshSelected();
}

// ---------------------------------------------------------------------------------------------
// Calls list, as a tree of legs

const findCall = (sid) => state.calls.find((c) => c.sid === sid);

let callsGeneration = 0; // answers that arrive after a newer request's are dropped

async function refreshCalls() {
  const generation = ++callsGeneration;
  const page = await apiGet('/Calls.json?PageSize=100', 'Calls');
  if (generation !== callsGeneration || !page) return;
  state.calls = Array.isArray(page.calls) ? page.calls : [];
  renderCalls();
  renderHeader(); // the selected call's status may have changed
}

function renderCalls() {
  const container = $('#calls');
  const known = new Set(state.calls.map((c) => c.sid));
  const children = new Map(); // parent sid -> children, oldest first
  const roots = [];
  for (const call of state.calls) {
    const parent = call.parent_call_sid;
    if (parent && known.has(parent)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).unshift(call); // the page is newest first
    } else {
      roots.push(call);
    }
  }
  const rows = [];
  const add = (call, depth) => {
    rows.push(callRow(call, depth));
    for (const child of children.get(call.sid) ?? []) add(child, depth + 1);
  };
  roots.forEach((call) => add(call, 0));
  container.replaceChildren(...(rows.length ? rows : [el('p', { class: 'muted', text: 'No calls yet.' })]));
  $('#calls-count').textContent = rows.length ? `(${rows.length})` : '';
}

function callRow(call, depth) {
  return el('div', {
    class: `call${call.sid === state.selected ? ' selected' : ''}`,
    'data-sid': call.sid,
    'data-status': call.status ?? '',
    'data-parent': call.parent_call_sid ?? '',
    'data-depth': String(depth),
    style: `--depth: ${depth}`,
    title: call.sid,
    onclick: () => select(call.sid),
  },
  el('span', { class: 'mono sid', text: shortSid(call.sid) }),
  el('span', { class: 'parties', text: `${call.from ?? '?'} → ${call.to ?? '?'}` }),
  el('span', { class: 'muted direction', text: call.direction ?? '' }),
  el('span', { class: 'muted when', text: clock(toMillis(call.date_created)) }),
  badge(call.status));
}

// ---------------------------------------------------------------------------------------------
// Conferences in progress, with their participants

let conferencesGeneration = 0;

async function refreshConferences() {
  const generation = ++conferencesGeneration;
  const page = await apiGet('/Conferences.json?Status=in-progress', 'Conferences');
  if (generation !== conferencesGeneration || !page) return;
  const conferences = Array.isArray(page.conferences) ? page.conferences : [];
  const rooms = await Promise.all(conferences.map(async (conference) => {
    const people = await apiGet(`/Conferences/${conference.sid}/Participants.json`, `Participants of ${shortSid(conference.sid)}`);
    return { conference, participants: people?.participants ?? [] };
  }));
  if (generation !== conferencesGeneration) return;
  const container = $('#conferences');
  if (!rooms.length) {
    container.replaceChildren(el('p', { class: 'muted', text: 'None.' }));
    return;
  }
  container.replaceChildren(...rooms.map(({ conference, participants }) =>
    el('div', { class: 'conference', 'data-sid': conference.sid },
      el('div', {},
        el('strong', { text: conference.friendly_name ?? '' }), ' ',
        el('span', { class: 'mono muted', text: shortSid(conference.sid) }), ' ',
        badge(conference.status)),
      participants.length ? participants.map(participantRow)
        : el('div', { class: 'muted participant', text: 'nobody in the room' }))));
}

function participantRow(p) {
  const flags = ['muted', 'hold', 'coaching'].filter((flag) => p[flag] === true);
  return el('div', {
    class: `participant${p.call_sid === state.selected ? ' selected' : ''}`,
    'data-sid': p.call_sid,
    onclick: () => select(p.call_sid),
  },
  el('span', { class: 'mono sid', text: shortSid(p.call_sid) }),
  p.label ? el('span', { text: p.label }) : null,
  flags.map((flag) => el('span', { class: 'flag', text: flag })),
  badge(p.status));
}

// ---------------------------------------------------------------------------------------------
// The simulated media workers, with the calls each holds

let workersGeneration = 0;

async function refreshWorkers() {
  const generation = ++workersGeneration;
  const answer = await request('/dev/Workers', { auth: false }).catch(() => null);
  if (generation !== workersGeneration || !answer?.ok) return;
  const workers = Array.isArray(answer.json?.workers) ? answer.json.workers : [];
  $('#workers').replaceChildren(...(workers.length ? workers.map(workerRow)
    : [el('p', { class: 'muted', text: 'None: commands stay on the queue (--no-simulator).' })]));
}

function workerRow(worker) {
  const calls = Array.isArray(worker.calls) ? worker.calls : [];
  return el('div', { class: 'worker', 'data-id': worker.id, 'data-state': worker.state },
    el('div', {},
      el('span', { class: 'mono', text: worker.id }), ' ', badge(worker.state), ' ',
      el('span', { class: 'muted', text: calls.length === 1 ? '1 call' : `${calls.length} calls` })),
    calls.map((sid) => el('div', {
      class: `participant${sid === state.selected ? ' selected' : ''}`,
      'data-sid': sid,
      onclick: () => select(sid),
    }, el('span', { class: 'mono sid', text: shortSid(sid) }))));
}

// ---------------------------------------------------------------------------------------------
// The selected call

function select(sid) {
  if (!sid) return;
  state.selected = sid;
  if (location.hash !== `#${sid}`) history.replaceState(null, '', `#${sid}`);
  document.querySelectorAll('.call, .participant').forEach((row) => {
    row.classList.toggle('selected', row.dataset.sid === sid);
  });
  $('#actions').disabled = false;
  $('#timeline').replaceChildren();
  renderHeader();
  refreshSelected();
}

let extraCall = null; // the selected call when it is not on the list's page

function renderHeader() {
  const sid = state.selected;
  if (!sid) return;
  const call = findCall(sid) ?? (extraCall?.sid === sid ? extraCall : null);
  $('#selected-sid').textContent = sid;
  $('#selected-badge').replaceChildren(call ? badge(call.status) : '');
  const info = $('#selected-info');
  if (!call) {
    info.textContent = 'Loading…';
    return;
  }
  const parent = call.parent_call_sid
    ? ['parent ', el('a', { href: `#${call.parent_call_sid}`, class: 'mono',
        text: shortSid(call.parent_call_sid),
        onclick: (e) => { e.preventDefault(); select(call.parent_call_sid); } })]
    : [];
  let duration = '';
  if (call.duration !== null && call.duration !== undefined) duration = `${call.duration} s`;
  else if (call.start_time) duration = `answered at ${clock(toMillis(call.start_time))}`;
  info.replaceChildren(
    el('span', { class: 'parties', text: `${call.from ?? '?'} → ${call.to ?? '?'}` }), ' · ',
    call.direction ?? '', ' · ', ...parent, parent.length ? ' · ' : '',
    duration || 'not answered', call.muted ? ' · muted' : '');
}

let detailGeneration = 0;

/** Fetches what the selected call's timeline needs, all at once, and draws it. */
async function refreshSelected() {
  const sid = state.selected;
  if (!sid || !state.credentials) return;
  const generation = ++detailGeneration;
  const path = `/Calls/${sid}`;
  const [modifications, events, notifications, call] = await Promise.all([
    apiGet(`${path}/Modifications.json`, 'Modifications'),
    apiGet(`${path}/Events.json?PageSize=200`, 'Events'),
    apiGet(`${path}/Notifications.json`, 'Notifications'),
    findCall(sid) ? null : apiGet(`${path}.json`, 'Call'),
  ]);
  if (generation !== detailGeneration) return;
  if (call) { extraCall = call; renderHeader(); }
  renderTimeline([
    ...feedRows(state.events.get(sid) ?? []),
    ...intentRows(modifications?.modifications ?? []),
    ...requestRows(events?.events ?? []),
    ...notificationRows(notifications?.notifications ?? []),
  ]);
}

// Each row: {at (ms), kind (data-kind), label, text, attrs (more data-*), cls, details}.

function feedRows(events) {
  return events.map((ev) => {
    const row = { at: ev.timestamp, kind: 'event', label: ev.type, text: ev.type };
    switch (ev.type) {
      case 'call.initiated':
        row.text = `initiated: ${ev.direction ?? ''} ${ev.from ?? '?'} → ${ev.to ?? '?'}`
          + (ev.parent_call_sid ? ` (leg of ${shortSid(ev.parent_call_sid)})` : '');
        break;
      case 'call.status':
        Object.assign(row, { kind: 'status', label: 'status', text: `status → ${ev.status}`,
          attrs: { 'data-status': ev.status }, cls: `status-row-${ev.status}` });
        break;
      case 'command.applied':
        row.text = `command #${ev.seq} applied (${ev.intent_sid ?? '?'})`;
        break;
      case 'command.rejected':
        Object.assign(row, { text: `command #${ev.seq} rejected: ${ev.reason ?? '?'}`, cls: 'bad' });
        break;
      case 'rcml.failed':
        Object.assign(row, { text: `RCML failed: ${ev.error_code ?? ''} ${ev.detail ?? ''} (${ev.url ?? ''})`, cls: 'bad' });
        break;
      case 'recording.started':
        row.text = `recording started (${ev.recording?.recording_sid ?? ev.recording_sid ?? '?'})`;
        break;
      case 'recording.status':
        row.text = `recording ${ev.recording_sid ?? '?'} → ${ev.status}`
          + (ev.duration !== undefined ? ` (${ev.duration} s)` : '');
        break;
      case 'stream.started':
        row.text = `stream started (${ev.stream?.stream_sid ?? '?'} → ${ev.stream?.url ?? '?'})`;
        break;
      case 'stream.stopped':
        row.text = `stream stopped (${ev.stream_sid ?? '?'})`;
        break;
      case 'stream.failed':
        Object.assign(row, { text: `stream failed (${ev.stream_sid ?? '?'}): ${ev.error ?? ''}`, cls: 'bad' });
        break;
      default:
        row.details = JSON.stringify(ev, null, 2);
    }
    return row;
  });
}

function intentRows(modifications) {
  return modifications.map((m) => {
    const why = [m.outcome, m.reason].filter(Boolean).join('; ');
    return {
      at: Number.isFinite(m.timestamp) ? m.timestamp : toMillis(m.date_created),
      kind: 'intent',
      label: 'intent',
      text: `intent #${m.seq} ${m.action} ${formatParameters(m.parameters)} → ${m.status}${why ? ` (${why})` : ''}`,
      attrs: { 'data-status': m.status, 'data-sid': m.sid },
      cls: ['rejected', 'failed'].includes(m.status) ? 'bad' : '',
    };
  });
}

function requestRows(events) {
  return events.map(({ request: rq = {}, response: rs = {} }) => {
    const fetchKinds = ['rcml', 'action', 'fallback'];
    const isFetch = fetchKinds.includes(rq.kind);
    const code = rs?.response_code ?? null;
    const result = code !== null
      ? `${code}${rs.content_type ? ` ${rs.content_type}` : ''}`
      : `error${rs?.error ? `: ${rs.error}` : ''}`;
    const took = rs?.request_duration !== undefined && rs?.request_duration !== null ? ` (${rs.request_duration} ms)` : '';
    const what = isFetch
      ? `RCML ${rq.kind === 'rcml' ? 'fetch' : `${rq.kind} fetch`}${rq.attempt > 1 ? ` attempt ${rq.attempt}` : ''}`
      : `callback ${rq.kind ?? '?'} attempt ${rq.attempt ?? 1}`;
    const details = [
      `${rq.method ?? ''} ${rq.url ?? ''}${rq.signed ? '  (signed)' : ''}`,
      `parameters:\n${Object.entries(rq.parameters ?? {}).map(([k, v]) => `  ${k}=${v}`).join('\n')}`,
      rs?.error ? `error: ${rs.error}` : null,
      rs?.response_body ? `response body:\n${rs.response_body}` : null,
    ].filter(Boolean).join('\n\n');
    return {
      at: Number.isFinite(rq.timestamp) ? rq.timestamp : toMillis(rq.date_created),
      kind: isFetch ? 'fetch' : 'callback',
      label: isFetch ? 'fetch' : 'callback',
      text: `${what} ${rq.method ?? ''} ${rq.url ?? ''} → ${result}${took}`,
      attrs: { 'data-code': code !== null ? String(code) : 'error' },
      cls: code !== null && code < 400 ? '' : 'bad',
      details,
    };
  });
}

function notificationRows(notifications) {
  return notifications.map((n) => {
    const error = String(n.log) === '0';
    return {
      at: Number.isFinite(n.message_timestamp) ? n.message_timestamp : toMillis(n.message_date),
      kind: 'notification',
      label: error ? 'error' : 'warning',
      text: `${error ? 'error' : 'warning'} ${n.error_code ?? ''}: ${n.message_text ?? ''}`,
      attrs: { 'data-level': error ? 'error' : 'warning', 'data-sid': n.sid },
      cls: error ? 'bad' : 'warn',
      details: n.request_url ? `${n.request_method ?? ''} ${n.request_url}` : null,
    };
  });
}

function renderTimeline(rows) {
  // Oldest first; rows without a usable time go last. sort() is stable, so rows of the same
  // millisecond keep their source order.
  rows.sort((a, b) => (Number.isFinite(a.at) ? a.at : Infinity) - (Number.isFinite(b.at) ? b.at : Infinity));
  // Times are relative to the first row (the call's creation is known only to the second).
  const times = rows.map((r) => r.at).filter(Number.isFinite);
  const start = times.length ? Math.min(...times) : 0;

  const body = $('#timeline');
  if (!rows.length) {
    body.replaceChildren(el('tr', {}, el('td', { colspan: 3, class: 'muted', text: 'Nothing yet.' })));
    return;
  }
  body.replaceChildren(...rows.map((row) => {
    const key = `${row.kind} ${row.at} ${row.text}`;
    const relative = Number.isFinite(row.at) ? `+${((row.at - start) / 1000).toFixed(2)} s` : '?';
    let description = row.text;
    if (row.details) {
      // Keep a details element open across refreshes.
      const details = el('details', { ontoggle: (e) => {
        if (e.target.open) state.openDetails.add(key); else state.openDetails.delete(key);
      } }, el('summary', { text: row.text }), el('pre', { text: row.details }));
      details.open = state.openDetails.has(key);
      description = details;
    }
    return el('tr', { class: `row ${row.cls ?? ''}`.trim(), 'data-kind': row.kind, ...row.attrs },
      el('td', { class: 'mono time', title: Number.isFinite(row.at) ? new Date(row.at).toISOString() : '', text: relative }),
      el('td', { class: `kind kind-${row.kind}`, text: row.label }),
      el('td', {}, description));
  }));
}

// ---------------------------------------------------------------------------------------------
// Actions on the selected call, and placing a simulated call

function showAnswer(answer) {
  const pre = $('#answer');
  const body = answer.json ? JSON.stringify(answer.json, null, 2) : answer.text;
  pre.textContent = `${answer.status} ${answer.statusText}\n${body}`;
  pre.className = `answer ${answer.ok ? 'ok' : 'bad'}`;
}

async function modifySelected(form) {
  if (!state.selected || !state.credentials) return;
  const answer = await request(`${base()}/Calls/${state.selected}.json`, { method: 'POST', form });
  showAnswer(answer);
  scheduleRefresh({ list: true, detail: true });
}

$('#redirect-url').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = e.target.elements;
  modifySelected({ Url: f.Url.value.trim(), Method: f.Method.value });
});
$('#redirect-twiml').addEventListener('submit', (e) => {
  e.preventDefault();
  modifySelected({ Twiml: e.target.elements.Twiml.value });
});
$('#mute').addEventListener('click', () => modifySelected({ Mute: 'true' }));
$('#unmute').addEventListener('click', () => modifySelected({ Mute: 'false' }));
$('#hangup').addEventListener('click', () => modifySelected({ Status: 'completed' }));

$('#place-call').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const form = { From: f.From.value.trim(), To: f.To.value.trim(), Url: f.Url.value.trim() };
  if (f.StatusCallback.value.trim()) {
    form.StatusCallback = f.StatusCallback.value.trim();
    form.StatusCallbackEvent = 'initiated ringing answered completed';
  }
  $('#place-call-submit').disabled = true;
  const answer = await request('/dev/IncomingCalls', { method: 'POST', form, auth: false });
  $('#place-call-submit').disabled = false;
  showAnswer(answer);
  if (answer.ok && answer.json?.sid) select(answer.json.sid);
  scheduleRefresh({ list: true });
});

// ---------------------------------------------------------------------------------------------
// Start

/** Runs once credentials are known. */
function started() {
  $('#account').textContent = state.credentials.account_sid;
  scheduleRefresh({ list: true, conferences: true, workers: true });
  if (state.selected) refreshSelected();
}

async function main() {
  const origin = location.origin;
  $('#place-call [name=Url]').value = `${origin}/dev/rcml/call-bob`;
  $('#place-call [name=StatusCallback]').value = `${origin}/dev/sink`;
  $('#redirect-url [name=Url]').value = `${origin}/dev/rcml/call-alice`;
  if (/^#CA[0-9a-f]{32}$/.test(location.hash)) select(location.hash.slice(1));

  connectFeed(); // feed events are kept even before the credentials are known
  state.credentials = await loadCredentials();
  if (state.credentials) started();
  else askForCredentials();
}

main();
