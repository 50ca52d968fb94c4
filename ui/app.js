// @ts-check
/**
 * Sluice's live view, served as it is by the API (src/control/ui.ts). It reads three routes:
 * GET /sluice/v1/overview (rules, backends, clock, counters, tombstones) and GET
 * /sluice/v1/flows, polled every 1-5 s (an eighth of the shortest idle timeout in real time),
 * and GET /sluice/v1/events, the event stream, for what happens in between. Between two polls
 * every countdown runs on the balancer's clock, extrapolated with its time scale; a manual clock
 * stands still until it is moved.
 *
 * The flow list is virtualised: only the rows in view exist in the page, so 10,000 flows cost
 * what 40 do; past MAX_LISTED flows the list holds the lowest ids and the counts per rule and
 * backend (aggregated by Sluice) still cover all of them.
 */

/** @typedef {import('../src/control/overview.js').Overview} Overview */
/** @typedef {import('../src/control/overview.js').OverviewMember} OverviewMember */
/** @typedef {import('../src/control/events.js').SluiceEvent} SluiceEvent */
/** @typedef {import('../src/control/events.js').FlowSummary} FlowSummary */
/**
 * A flow as GET /sluice/v1/flows lists it (src/control/server.ts, FlowView).
 * @typedef {{ id: number, protocol: string, lb: string, rule: string, state: string,
 *   client: string, backend: string, ageMs: number, idleMs: number, msLeft: number, timeoutMs: number,
 *   bytesToBackend: number, bytesToClient: number }} FlowView
 * @typedef {{ total: number, timeScale: number, flows: FlowView[],
 *   clock?: { mode: string, now: number } }} FlowsAnswer
 */
/**
 * How a flow ended, as far as the page knows: `reset` or `drop` at idle (from its event),
 * `expired` at idle with the action unknown (a tombstone listed before the page saw the event),
 * `closed` by either end or by Sluice.
 * @typedef {{ kind: 'reset' | 'drop' | 'expired' | 'closed', reason?: string, at: number,
 *   wall: number, until?: number, ttlMs?: number, lateReset?: boolean, removeAt?: number }} End
 */
/**
 * @typedef {{ id: number, protocol: string, lb: string, rule: string, state: string,
 *   client: string, backend: string, bytesToBackend: number, bytesToClient: number,
 *   timeoutMs: number, deadline: number, createdAt: number, flashUntil: number, since: number, end?: End,
 *   text?: string }} Row
 */

const MAX_LISTED = 20_000;
const ROW_PX = 30;
const EVENTS_SHOWN = 200;
/** Real milliseconds a closed flow, or an expired one without a tombstone, stays listed. */
const ENDED_ROW_MS = 4000;
const CHART_SPAN_MS = 120_000;
const CHART_BUCKET_MS = 2000;

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * An element with attributes and children; text is always text, never markup.
 * @param {string} tag
 * @param {Record<string, string | undefined>} [attrs]
 * @param {(Node | string | undefined)[]} children
 * @returns {HTMLElement}
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, v);
  for (const c of children) if (c !== undefined) el.append(c);
  return el;
}

/** A duration in the balancer's milliseconds, as a person reads it. */
function duration(/** @type {number} */ ms) {
  if (!Number.isFinite(ms)) return '–';
  const neg = ms < 0;
  ms = Math.abs(ms);
  let text;
  const s = Math.floor(ms / 1000) % 60;
  const m = Math.floor(ms / 60_000) % 60;
  if (ms < 10_000) text = `${(ms / 1000).toFixed(1)}s`;
  else if (ms < 60_000) text = `${Math.floor(ms / 1000)}s`;
  else if (ms < 3_600_000) text = s === 0 ? `${m}m` : `${m}m ${String(s).padStart(2, '0')}s`;
  else text = `${Math.floor(ms / 3_600_000)}h ${String(m).padStart(2, '0')}m`;
  return neg ? `-${text}` : text;
}

/** The balancer's clock as h:mm:ss.s since it started. */
function clockText(/** @type {number} */ ms) {
  const s = Math.max(0, ms) / 1000;
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
  const ss = (s % 60).toFixed(1).padStart(4, '0');
  return `${hh}:${mm}:${ss}`;
}

function wallText(/** @type {number} */ ms) {
  const d = new Date(ms);
  const p = (/** @type {number} */ n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function bytes(/** @type {number} */ n) {
  if (n < 1024) return `${n}B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)}K`;
  return `${(n / 1024 / 1024).toFixed(1)}M`;
}

const DECIDED_BY = {
  rule: 'the rule',
  frontendPublicIP: "frontend's public IP (B9)",
  instancePublicIP: "instance's public IP",
  outboundRule: 'outbound rule (B10)',
  publicIPOutboundDefault: "public IP's outbound default (B10)",
  natGateway: 'NAT gateway (B10)',
};

const KIND = {
  loadBalancingRule: 'LB rule',
  inboundNatRule: 'inbound NAT',
  outboundRule: 'outbound',
  natGateway: 'NAT gateway',
  instancePublicIp: 'instance IP',
  instanceOutbound: 'instance outbound',
};

// ---- state ---------------------------------------------------------------------------------

const state = {
  /** @type {Overview | undefined} */
  overview: undefined,
  /** When the balancer's clock stood at `lb`: `real` is performance.now(). */
  sample: { real: 0, lb: 0 },
  /** @type {Map<number, Row>} */
  rows: new Map(),
  /** Row ids in list order (filtered, sorted). @type {number[]} */
  order: [],
  orderDirty: true,
  total: 0,
  listed: 0,
  /** The latest balancer time an event carried (a manual clock moves only with them). */
  eventAt: 0,
  /** @type {{ wall: number, active: number, reset: number, drop: number }[]} */
  samples: [],
  /** @type {{ reset: number, drop: number } | undefined} */
  counters: undefined,
  /** @type {{ wall: number, at: number, type: string, cls: string, text: string }[]} */
  pendingEvents: [],
  /** Members to flash, by `lb/pool/name`, until a real time. @type {Map<string, number>} */
  pulses: new Map(),
};

/** The balancer's time now: the last sample moved on by its time scale (not on a manual clock). */
function balancerNow() {
  const o = state.overview;
  if (o === undefined) return 0;
  if (o.clock.mode === 'manual') return Math.max(state.sample.lb, state.eventAt);
  return state.sample.lb + (performance.now() - state.sample.real) * o.clock.timeScale;
}

/** @returns {import('../src/control/overview.js').OverviewRule | undefined} */
function ruleOf(/** @type {string} */ lb, /** @type {string} */ rule) {
  return state.overview?.loadBalancers.find((l) => l.name === lb)?.rules.find((r) => r.name === rule);
}

function timeoutOf(/** @type {string} */ lb, /** @type {string} */ rule, /** @type {string} */ protocol) {
  if (protocol === 'Udp') return state.overview?.udpFlowTimeoutMs ?? 0;
  return ruleOf(lb, rule)?.timeoutMs ?? 0;
}

// ---- the API -------------------------------------------------------------------------------

class Unauthorized extends Error {}

/** @template T @param {string} path @returns {Promise<T>} */
async function getJson(path) {
  const answer = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  if (answer.status === 401) throw new Unauthorized('the session has ended');
  if (!answer.ok) throw new Error(`${path}: HTTP ${answer.status}`);
  return /** @type {Promise<T>} */ (answer.json());
}

/** The session ended (or the token changed): the page reloads into the sign-in form. */
function signedOut() {
  location.reload();
}

let pollTimer = /** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined);
let lastPollMs = 0;

/** How long to wait before the next poll, in real milliseconds. */
function pollInterval() {
  const o = state.overview;
  if (o === undefined) return 2000;
  if (o.clock.mode === 'manual') return 2000;
  const timeouts = o.loadBalancers.flatMap((l) => l.rules.map((r) => r.timeoutMs)).filter((t) => t > 0);
  const shortest = timeouts.length > 0 ? Math.min(...timeouts) : 240_000;
  const ideal = shortest / o.clock.timeScale / 8;
  // A large listing is not fetched more often than ten times what it takes.
  return Math.max(Math.min(Math.max(ideal, 1000), 5000), 10 * lastPollMs);
}

function schedulePoll(/** @type {number} */ ms) {
  if (pollTimer !== undefined) clearTimeout(pollTimer);
  pollTimer = setTimeout(() => void poll(), ms);
}

async function poll() {
  pollTimer = undefined;
  if (document.hidden) return; // visibilitychange polls again
  const t0 = performance.now();
  try {
    const [overview, flows] = await Promise.all([
      getJson(/** @type {string} */ ('/sluice/v1/overview')),
      getJson(`/sluice/v1/flows?limit=${MAX_LISTED}`),
    ]);
    const t1 = performance.now();
    lastPollMs = t1 - t0;
    applyOverview(/** @type {Overview} */ (overview), (t0 + t1) / 2);
    applyFlows(/** @type {FlowsAnswer} */ (flows), t0);
    schedulePoll(pollInterval());
  } catch (err) {
    if (err instanceof Unauthorized) return signedOut();
    setLink(false, 'Sluice cannot be reached; retrying');
    schedulePoll(3000);
  }
}

/** @param {Overview} o @param {number} real */
function applyOverview(o, real) {
  const before = state.overview;
  state.overview = o;
  state.sample = { real, lb: o.clock.now };
  const counters = { reset: o.flows.expired.reset, drop: o.flows.expired.drop };
  const last = state.counters ?? counters;
  state.samples.push({
    wall: Date.now(),
    active: o.flows.active,
    reset: Math.max(0, counters.reset - last.reset),
    drop: Math.max(0, counters.drop - last.drop),
  });
  state.counters = counters;
  const cut = Date.now() - CHART_SPAN_MS - CHART_BUCKET_MS;
  while (state.samples.length > 0 && state.samples[0].wall < cut) state.samples.shift();
  // Tombstones: an expired flow stays listed while Sluice remembers it (B6).
  const listedAll = o.tombstones.total <= o.tombstones.shown.length;
  const tombs = new Set();
  for (const t of o.tombstones.shown) {
    if (t.msLeft <= 0) continue;
    tombs.add(t.id);
    let row = state.rows.get(t.id);
    if (row === undefined) {
      row = {
        id: t.id,
        protocol: 'Tcp',
        lb: t.lb,
        rule: t.rule,
        state: 'TOMBSTONE',
        client: t.client,
        backend: t.backend,
        bytesToBackend: 0,
        bytesToClient: 0,
        timeoutMs: 0,
        deadline: t.expiredAt,
        createdAt: t.expiredAt,
        flashUntil: 0,
        since: real,
      };
      state.rows.set(t.id, row);
      state.orderDirty = true;
    }
    const end = row.end ?? { kind: 'expired', at: t.expiredAt, wall: Date.now() };
    row.end = { ...end, until: o.clock.now + t.msLeft, ttlMs: t.ttlMs, lateReset: t.lateReset };
  }
  for (const row of state.rows.values()) {
    const end = row.end;
    if (end === undefined || end.kind === 'closed' || tombs.has(row.id) || !listedAll) continue;
    // Its tombstone is gone, or there never was one (UDP): the row goes soon.
    if (end.until !== undefined || row.since < real - 1000) end.removeAt ??= performance.now();
    else end.removeAt ??= performance.now() + ENDED_ROW_MS;
  }
  renderRules(o, before);
  renderBackends(o);
  renderChart();
}

/** @param {FlowsAnswer} answer @param {number} asked when the listing was asked for */
function applyFlows(answer, asked) {
  const now = answer.clock?.now ?? state.sample.lb;
  state.total = answer.total;
  state.listed = answer.flows.length;
  const listed = new Set();
  const wall = performance.now();
  for (const f of answer.flows) {
    listed.add(f.id);
    let row = state.rows.get(f.id);
    if (row === undefined) {
      row = rowOf(f, now, f.timeoutMs);
      state.rows.set(f.id, row);
      state.orderDirty = true;
    }
    // An end the events told is not undone by a listing taken before it.
    if (row.end !== undefined) continue;
    const moved = f.bytesToBackend + f.bytesToClient !== row.bytesToBackend + row.bytesToClient;
    if (moved && row.since < asked) row.flashUntil = wall + 700;
    if (f.state !== row.state) state.orderDirty = true;
    Object.assign(row, {
      state: f.state,
      bytesToBackend: f.bytesToBackend,
      bytesToClient: f.bytesToClient,
      timeoutMs: f.timeoutMs,
      deadline: now + f.msLeft,
    });
    row.text = undefined;
  }
  if (answer.total <= answer.flows.length) {
    // Flows that ended without an event reaching the page (the stream was down).
    for (const [id, row] of state.rows)
      if (row.end === undefined && !listed.has(id) && row.since < asked) {
        state.rows.delete(id);
        state.orderDirty = true;
      }
  }
  state.orderDirty = true;
}

/**
 * @param {FlowView | FlowSummary} f
 * @param {number} now balancer time `f` was taken at
 * @param {number} timeoutMs
 * @returns {Row}
 */
function rowOf(f, now, timeoutMs) {
  const lastSeen = now - f.idleMs;
  const endpoint = (/** @type {string | {address: string, port: number}} */ e) =>
    typeof e === 'string'
      ? e
      : e.address.includes(':')
        ? `[${e.address}]:${e.port}`
        : `${e.address}:${e.port}`;
  return {
    id: f.id,
    protocol: f.protocol,
    lb: f.lb,
    rule: f.rule,
    state: f.state,
    client: endpoint(f.client),
    backend: endpoint(f.backend),
    bytesToBackend: f.bytesToBackend,
    bytesToClient: f.bytesToClient,
    timeoutMs,
    deadline: lastSeen + timeoutMs,
    createdAt: now - f.ageMs,
    flashUntil: 0,
    since: performance.now(),
  };
}

// ---- the event stream ----------------------------------------------------------------------

/** @type {EventSource | undefined} */
let stream;
let retryMs = 1000;

function setLink(/** @type {boolean} */ up, /** @type {string} */ title) {
  const el = $('link');
  el.className = `link ${up ? 'up' : 'down'}`;
  el.textContent = up ? 'live' : 'reconnecting';
  el.title = title;
}

function openStream() {
  stream?.close();
  const es = new EventSource('/sluice/v1/events');
  stream = es;
  es.onopen = () => {
    retryMs = 1000;
    setLink(true, 'the event stream is open');
  };
  es.onerror = () => {
    setLink(false, 'the event stream is down; reconnecting');
    if (es.readyState !== EventSource.CLOSED) return; // the browser retries by itself
    // Refused (a 401, a 503 when every stream is taken): ask again later, longer each time.
    setTimeout(async () => {
      try {
        await getJson('/ui/session');
      } catch (err) {
        if (err instanceof Unauthorized) return signedOut();
      }
      openStream();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 30_000);
  };
  for (const type of [
    'flow.created',
    'flow.expired',
    'flow.closed',
    'flow.refused',
    'probe.up',
    'probe.down',
    'config.applied',
  ])
    es.addEventListener(type, (m) =>
      onEvent(/** @type {SluiceEvent} */ (JSON.parse(/** @type {MessageEvent} */ (m).data))),
    );
}

/** @param {SluiceEvent} e */
function onEvent(e) {
  state.eventAt = Math.max(state.eventAt, e.at);
  const wall = 'time' in e && typeof e.time === 'string' ? Date.parse(e.time) : Date.now();
  let text = '';
  let cls = '';
  switch (e.type) {
    case 'flow.created': {
      const f = e.flow;
      if (!state.rows.has(f.id)) {
        const row = rowOf(f, e.at, timeoutOf(f.lb, f.rule, f.protocol));
        state.rows.set(f.id, row);
        state.orderDirty = true;
      }
      text = `#${f.id} ${f.protocol} ${f.rule}: ${endpointText(f.client)} → ${endpointText(f.backend)}`;
      break;
    }
    case 'flow.expired': {
      const f = e.flow;
      const row = state.rows.get(f.id) ?? rowOf(f, e.at, timeoutOf(f.lb, f.rule, f.protocol));
      state.rows.set(f.id, row);
      row.end = { ...row.end, kind: e.action, at: e.at, wall };
      row.text = undefined;
      state.orderDirty = true;
      cls = e.action;
      text =
        e.action === 'reset'
          ? `#${f.id} ${f.rule}: idle ${duration(f.idleMs)}, TCP reset sent to client and backend`
          : `#${f.id} ${f.rule}: idle ${duration(f.idleMs)}, dropped silently (no RST)`;
      break;
    }
    case 'flow.closed': {
      const f = e.flow;
      const row = state.rows.get(f.id);
      if (row !== undefined && row.end === undefined) {
        row.end = {
          kind: 'closed',
          reason: e.reason,
          at: e.at,
          wall,
          removeAt: performance.now() + ENDED_ROW_MS,
        };
        row.text = undefined;
        state.orderDirty = true;
      }
      text = `#${f.id} ${f.rule}: closed (${e.reason})`;
      break;
    }
    case 'flow.refused':
      text = `${e.protocol} ${endpointText(e.client)} → ${endpointText(e.frontend)}: refused (${e.reason})`;
      break;
    case 'probe.up':
    case 'probe.down':
      markProbe(e.lb, e.backend, e.address, e.probe, e.type === 'probe.up' ? 'up' : 'down', e.reason);
      text = `${e.backend} ${e.address}:${e.port} ${e.type === 'probe.up' ? 'up' : 'down'} (probe ${e.probe}: ${e.reason})`;
      break;
    case 'config.applied':
      text = `generation ${e.generation} applied: ${e.listeners.length} listener${e.listeners.length === 1 ? '' : 's'}`;
      schedulePoll(0);
      break;
  }
  state.pendingEvents.push({ wall, at: e.at, type: e.type, cls, text });
  if (state.pendingEvents.length > EVENTS_SHOWN)
    state.pendingEvents.splice(0, state.pendingEvents.length - EVENTS_SHOWN);
}

function endpointText(/** @type {{ address: string, port: number }} */ e) {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/**
 * A probe's verdict as its event told it, until the next overview says the same.
 * @param {string} lb @param {string} name @param {string} address @param {string} probe
 * @param {'up' | 'down'} verdict @param {string} reason
 */
function markProbe(lb, name, address, probe, verdict, reason) {
  const o = state.overview;
  if (o === undefined) return;
  for (const l of o.loadBalancers) {
    if (l.name !== lb) continue;
    for (const pool of l.pools) {
      const i = pool.members.findIndex((m) => m.name === name && m.address === address);
      if (i < 0) continue;
      const m = pool.members[i];
      const probes = m.probes.map((p) => (p.probe === probe ? { ...p, state: verdict, reason } : p));
      const effective =
        m.adminState === 'Down'
          ? 'down'
          : probes.some((p) => p.state === 'down')
            ? 'down'
            : verdict === 'up' && probes.every((p) => p.state === 'up')
              ? 'up'
              : m.state;
      /** @type {OverviewMember[]} */ (pool.members)[i] = { ...m, probes, state: effective };
      state.pulses.set(`${l.name}/${pool.name}/${m.name}`, performance.now() + 1000);
    }
  }
  renderBackends(o);
}

// ---- rules and backends --------------------------------------------------------------------

/** @param {Overview} o @param {Overview | undefined} before */
function renderRules(o, before) {
  const key = JSON.stringify(o.loadBalancers.map((l) => [l.frontends, l.rules]));
  const root = $('rules');
  if (before !== undefined && root.dataset.key === key) return;
  root.dataset.key = key;
  const parts = [];
  for (const lb of o.loadBalancers) {
    parts.push(
      h('div', { class: 'lb-name' }, `${lb.name}`, h('span', { class: 'small' }, ` ${lb.sku}`)),
      h(
        'div',
        { class: 'frontends' },
        `Frontends: ${lb.frontends.map((f) => `${f.name} ${f.address}`).join(', ') || 'none'}`,
      ),
    );
    const rows = lb.rules.map((r) =>
      h(
        'tr',
        { 'data-rule': r.name },
        h('td', {}, h('strong', {}, r.name), h('div', { class: 'small' }, KIND[r.kind] ?? r.kind)),
        h('td', {}, r.protocol),
        h('td', {}, r.frontend, h('div', { class: 'small' }, `→ ${r.backend}`)),
        h(
          'td',
          { title: r.why },
          r.onIdle === 'none' ? `UDP ${duration(r.timeoutMs)}` : `${r.idleTimeoutMinutes} min`,
          h(
            'div',
            { class: 'small' },
            r.onIdle === 'none'
              ? 'no TCP idle timeout (B8)'
              : `by ${DECIDED_BY[r.decidedBy] ?? r.decidedBy}${r.overridden.length > 0 ? `, over ${r.overridden.map((x) => `${DECIDED_BY[x.by] ?? x.by} ${x.idleTimeoutMinutes} min`).join(', ')}` : ''}`,
          ),
        ),
        h(
          'td',
          { title: r.whatHappens },
          h(
            'span',
            { class: `badge ${r.onIdle}` },
            r.onIdle === 'reset' ? 'RESET' : r.onIdle === 'drop' ? 'DROP' : 'NONE',
          ),
        ),
        h('td', { class: 'num', 'data-flows': r.name }, String(r.flows)),
      ),
    );
    parts.push(
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['rule', 'protocol', 'frontend → backend', 'idle timeout', 'at idle', 'flows'].map((t) =>
              h('th', {}, t),
            ),
          ),
        ),
        h('tbody', {}, ...rows),
      ),
    );
  }
  if (o.loadBalancers.length === 0) parts.push(h('p', { class: 'empty' }, 'No load balancer is configured.'));
  root.replaceChildren(...parts);
}

/** Flow counts change with every poll: only those cells are written. */
function updateRuleCounts(/** @type {Overview} */ o) {
  for (const lb of o.loadBalancers)
    for (const r of lb.rules) {
      const cell = $('rules').querySelector(`td[data-flows="${CSS.escape(r.name)}"]`);
      if (cell !== null && cell.textContent !== String(r.flows)) cell.textContent = String(r.flows);
    }
}

/** @param {Overview} o */
function renderBackends(o) {
  updateRuleCounts(o);
  const now = balancerNow();
  const parts = [];
  for (const lb of o.loadBalancers)
    for (const pool of lb.pools) {
      parts.push(
        h(
          'div',
          { class: 'lb-name' },
          `${lb.name} / ${pool.name}`,
          h('span', { class: 'small' }, ` drain period ${pool.drainPeriodSeconds} s`),
        ),
      );
      const rows = pool.members.map((m) => {
        const pulse = (state.pulses.get(`${lb.name}/${pool.name}/${m.name}`) ?? 0) > performance.now();
        return h(
          'tr',
          { class: `member ${m.state}${pulse ? ' pulse' : ''}`, 'data-member': m.name },
          h('td', {}, h('strong', {}, m.name), h('div', { class: 'small' }, m.address)),
          h('td', {}, h('span', { class: `badge admin-${m.adminState}` }, m.adminState)),
          h(
            'td',
            {},
            ...(m.probes.length === 0
              ? [h('span', { class: 'small' }, 'no probe')]
              : m.probes.map((p) =>
                  h(
                    'div',
                    { title: p.reason },
                    h('span', { class: `badge ${p.state}`, 'data-probe': p.probe }, p.state),
                    h('span', { class: 'small' }, ` ${p.probe}: ${p.reason}`),
                  ),
                )),
          ),
          h(
            'td',
            {},
            m.draining !== undefined
              ? h('span', { class: 'badge draining' }, `draining, ${duration(m.draining.endsAt - now)} left`)
              : h(
                  'span',
                  { class: `badge ${m.state}`, 'data-state': m.state },
                  m.state === 'up' ? 'takes flows' : m.state === 'down' ? 'no new flows' : 'not probed yet',
                ),
          ),
          h('td', { class: 'num' }, String(m.flows)),
        );
      });
      parts.push(
        h(
          'table',
          {},
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...['backend', 'admin state', 'probe', 'new flows', 'flows'].map((t) => h('th', {}, t)),
            ),
          ),
          h('tbody', {}, ...rows),
        ),
      );
    }
  if (parts.length === 0) parts.push(h('p', { class: 'empty' }, 'No backend pool.'));
  $('backends').replaceChildren(...parts);
}

// ---- the flow list (virtualised) -----------------------------------------------------------

/** @typedef {{ el: HTMLElement, id: HTMLElement, rule: HTMLElement, path: HTMLElement, state: HTMLElement,
 *   bytes: HTMLElement, bar: HTMLElement, fill: HTMLElement, left: HTMLElement, rowId: number }} RowView */
/** @type {RowView[]} */
const views = [];

function rowView() {
  const cell = (/** @type {string} */ cls) => h('span', { class: cls });
  const fill = h('i');
  const bar = h('span', { class: 'bar' }, fill);
  const left = h('span', { class: 'left' });
  const v = {
    id: cell('num'),
    rule: cell(''),
    path: cell(''),
    state: cell(''),
    bytes: cell('num'),
    bar,
    fill,
    left,
    rowId: -1,
    el: h('div', { class: 'flow-row' }),
  };
  v.el.append(v.id, v.rule, v.path, v.state, v.bytes, h('span', { class: 'countdown' }, bar, left));
  return v;
}

function matches(/** @type {Row} */ r, /** @type {string} */ filter) {
  if (filter === '') return true;
  r.text ??= `#${r.id} ${r.lb} ${r.rule} ${r.client} ${r.backend} ${r.state} ${endLabel(r)}`.toLowerCase();
  return r.text.includes(filter);
}

function endLabel(/** @type {Row} */ r) {
  const e = r.end;
  if (e === undefined) return '';
  if (e.kind === 'reset') return 'RESET';
  if (e.kind === 'drop') return 'DROPPED';
  if (e.kind === 'expired') return 'EXPIRED';
  return `CLOSED ${e.reason ?? ''}`;
}

function rebuildOrder() {
  const filter = /** @type {HTMLInputElement} */ ($('filter')).value.trim().toLowerCase();
  const sort = /** @type {HTMLSelectElement} */ ($('sort')).value;
  const rows = [...state.rows.values()].filter((r) => matches(r, filter));
  // Ids are not in the order flows came (Sluice reuses their slots): creation time is.
  if (sort === 'oldest') rows.sort((a, b) => a.createdAt - b.createdAt || a.id - b.id);
  else if (sort === 'left')
    rows.sort((a, b) => (a.end ? 1 : 0) - (b.end ? 1 : 0) || a.deadline - b.deadline || a.id - b.id);
  else rows.sort((a, b) => b.createdAt - a.createdAt || b.id - a.id);
  state.order = rows.map((r) => r.id);
  state.orderDirty = false;
  const live = [...state.rows.values()].filter((r) => r.end === undefined).length;
  const tombs = state.overview?.tombstones.total ?? 0;
  const more = state.total > state.listed ? `, listing the first ${state.listed.toLocaleString()}` : '';
  $('flow-count').textContent =
    `${Math.max(live, state.total).toLocaleString()} live${more}; ${tombs.toLocaleString()} tombstone${tombs === 1 ? '' : 's'}` +
    (filter === '' ? '' : `; ${state.order.length.toLocaleString()} match`);
  $('flows-empty').hidden = state.order.length > 0;
}

function setText(/** @type {HTMLElement} */ el, /** @type {string} */ text) {
  if (el.textContent !== text) el.textContent = text;
}

/** A bar's fill, as a share of its width (0-1). */
function setWidth(/** @type {HTMLElement} */ el, /** @type {number} */ share) {
  const width = `${(Math.max(0, Math.min(1, share)) * 100).toFixed(2)}%`;
  if (el.style.width !== width) el.style.width = width;
}

function setClass(/** @type {HTMLElement} */ el, /** @type {string} */ cls) {
  if (el.className !== cls) el.className = cls;
}

/** @param {RowView} v @param {Row} r @param {number} now @param {number} real */
function fillRow(v, r, now, real) {
  if (v.rowId !== r.id) {
    v.rowId = r.id;
    v.el.dataset.id = String(r.id);
    setText(v.id, `#${r.id}`);
    setText(v.rule, r.rule);
    v.rule.title = `${r.lb} / ${r.rule}`;
    setText(v.path, `${r.client} → ${r.backend}`);
  }
  setText(v.bytes, `${bytes(r.bytesToBackend)} / ${bytes(r.bytesToClient)}`);
  const e = r.end;
  let cls = 'flow-row';
  if (e === undefined) {
    setText(v.state, r.state);
    const left = r.deadline - now;
    const f = r.timeoutMs > 0 ? Math.max(0, Math.min(1, left / r.timeoutMs)) : 0;
    setWidth(v.fill, f);
    setClass(v.bar, left <= 0 ? 'bar due' : f < 0.25 ? 'bar low' : 'bar');
    setText(
      v.left,
      r.timeoutMs <= 0
        ? 'idle timeout unknown'
        : left <= 0
          ? `idle timeout due (${duration(r.timeoutMs)})`
          : `${duration(left)} left of ${duration(r.timeoutMs)}`,
    );
    if (r.flashUntil > real) cls += ' pulse';
  } else {
    cls += ' ended';
    const badge = e.kind === 'closed' ? 'closed' : e.kind;
    if (v.state.dataset.end !== `${badge}${e.reason ?? ''}`) {
      v.state.dataset.end = `${badge}${e.reason ?? ''}`;
      v.state.replaceChildren(h('span', { class: `badge ${badge}` }, endLabel(r).trim()));
    }
    const how =
      e.kind === 'reset'
        ? 'reset at idle: RST to client and backend'
        : e.kind === 'drop'
          ? 'dropped at idle, silently: no RST'
          : e.kind === 'expired'
            ? 'expired at idle'
            : `closed (${e.reason ?? ''})`;
    v.left.title = `${how}, ${wallText(e.wall)}`;
    if (e.kind !== 'closed' && e.until !== undefined && e.ttlMs !== undefined && e.ttlMs > 0) {
      const left = e.until - now;
      setWidth(v.fill, left / e.ttlMs);
      setClass(v.bar, 'bar tomb');
      setText(
        v.left,
        `tombstone ${duration(left)} · late packets: ${e.lateReset ? 'RST (B6)' : 'dropped (B3)'}`,
      );
    } else {
      setWidth(v.fill, 0);
      setClass(v.bar, 'bar gone');
      setText(v.left, `${how} ${wallText(e.wall).slice(0, 8)}`);
    }
  }
  if (e === undefined) delete v.state.dataset.end;
  setClass(v.el, cls);
}

function renderFlows() {
  const viewport = $('flows');
  const spacer = $('flows-spacer');
  const height = `${state.order.length * ROW_PX}px`;
  if (spacer.style.height !== height) spacer.style.height = height;
  const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_PX) - 4);
  const count = Math.ceil(viewport.clientHeight / ROW_PX) + 8;
  const now = balancerNow();
  const real = performance.now();
  for (let i = 0; i < count; i++) {
    let v = views[i];
    if (v === undefined) {
      v = rowView();
      views.push(v);
      spacer.append(v.el);
    }
    const id = state.order[first + i];
    const r = id === undefined ? undefined : state.rows.get(id);
    if (r === undefined) {
      v.el.hidden = true;
      continue;
    }
    v.el.hidden = false;
    v.el.style.transform = `translateY(${(first + i) * ROW_PX}px)`;
    fillRow(v, r, now, real);
  }
  for (let i = count; i < views.length; i++) views[i].el.hidden = true;
}

/** Ended rows whose time is up leave the list. */
function removeEnded() {
  const real = performance.now();
  const now = balancerNow();
  for (const [id, r] of state.rows) {
    const e = r.end;
    if (e === undefined) continue;
    const tombGone = e.until !== undefined && now >= e.until;
    if (tombGone || (e.removeAt !== undefined && real >= e.removeAt)) {
      state.rows.delete(id);
      state.orderDirty = true;
    }
  }
}

// ---- the chart -----------------------------------------------------------------------------

function renderChart() {
  const canvas = /** @type {HTMLCanvasElement} */ ($('chart'));
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (width === 0) return;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const g = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const css = getComputedStyle(document.documentElement);
  const color = (/** @type {string} */ name) => css.getPropertyValue(name).trim();
  const padL = 34;
  const padR = 30;
  const padB = 16;
  const plotW = width - padL - padR;
  const plotH = height - padB - 6;
  const end = Date.now();
  const start = end - CHART_SPAN_MS;
  const x = (/** @type {number} */ t) => padL + ((t - start) / CHART_SPAN_MS) * plotW;
  // Expiries per bucket, stacked: reset below, drop above.
  const buckets = new Map();
  for (const s of state.samples) {
    const b = Math.floor(s.wall / CHART_BUCKET_MS);
    const v = buckets.get(b) ?? { reset: 0, drop: 0 };
    v.reset += s.reset;
    v.drop += s.drop;
    buckets.set(b, v);
  }
  const maxExp = Math.max(1, ...[...buckets.values()].map((v) => v.reset + v.drop));
  const maxFlows = Math.max(1, ...state.samples.map((s) => s.active));
  g.font = '10px system-ui, sans-serif';
  g.fillStyle = color('--muted');
  g.strokeStyle = '#e3e8ed';
  g.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const y = 6 + plotH * (1 - f);
    g.beginPath();
    g.moveTo(padL, y + 0.5);
    g.lineTo(padL + plotW, y + 0.5);
    g.stroke();
    // Whole numbers only: a half tick of a scale of 1 says nothing.
    g.textAlign = 'right';
    if (f !== 0.5 || maxFlows >= 2) g.fillText(String(Math.round(maxFlows * f)), padL - 4, y + 3);
    g.textAlign = 'left';
    if (f !== 0.5 || maxExp >= 2) g.fillText(String(Math.round(maxExp * f)), padL + plotW + 4, y + 3);
  }
  g.textAlign = 'center';
  for (const [label, t] of [
    ['−2 min', start],
    ['−1 min', start + 60_000],
    ['now', end],
  ])
    g.fillText(
      /** @type {string} */ (label),
      Math.min(Math.max(x(/** @type {number} */ (t)), padL + 12), padL + plotW - 8),
      height - 3,
    );
  const bw = Math.max(2, (CHART_BUCKET_MS / CHART_SPAN_MS) * plotW - 1);
  for (const [b, v] of buckets) {
    const bx = x(b * CHART_BUCKET_MS);
    if (bx < padL) continue;
    const hr = (v.reset / maxExp) * plotH;
    const hd = (v.drop / maxExp) * plotH;
    g.fillStyle = color('--reset');
    g.fillRect(bx, 6 + plotH - hr, bw, hr);
    g.fillStyle = color('--drop');
    g.fillRect(bx, 6 + plotH - hr - hd, bw, hd);
  }
  const points = state.samples.filter((s) => s.wall >= start);
  if (points.length > 0) {
    g.strokeStyle = color('--flows');
    g.lineWidth = 2;
    g.beginPath();
    points.forEach((s, i) => {
      const px = x(s.wall);
      const py = 6 + plotH * (1 - s.active / maxFlows);
      if (i === 0) g.moveTo(px, py);
      else g.lineTo(px, py);
    });
    g.stroke();
  }
}

// ---- events --------------------------------------------------------------------------------

function renderEvents() {
  if (state.pendingEvents.length === 0) return;
  const list = $('events');
  const items = state.pendingEvents
    .splice(0)
    .reverse()
    .map((e) =>
      h(
        'li',
        { class: `t-${e.type.replace('.', '-')} ${e.cls}` },
        h('time', { title: `balancer time ${clockText(e.at)}` }, wallText(e.wall)),
        h('span', { class: 'type' }, e.type),
        h('span', {}, e.text),
      ),
    );
  list.prepend(...items);
  while (list.childElementCount > EVENTS_SHOWN) list.lastElementChild?.remove();
}

// ---- the frame -----------------------------------------------------------------------------

let lastSlow = 0;

function frame() {
  const real = performance.now();
  if (real - lastSlow > 250) {
    lastSlow = real;
    removeEnded();
    for (const [k, t] of state.pulses) if (t < real) state.pulses.delete(k);
  }
  if (state.orderDirty) rebuildOrder();
  // The clock with the countdowns, in the same frame: they are read against each other.
  renderClock();
  renderFlows();
  renderEvents();
  requestAnimationFrame(frame);
}

function renderClock() {
  const o = state.overview;
  if (o === undefined) return;
  const el = $('clock');
  const now = clockText(balancerNow());
  const scale = o.clock.timeScale;
  const text =
    o.clock.mode === 'manual'
      ? `manual clock at ${now}: it moves only when advanced`
      : `balancer time ${now} · time scale ×${scale}${scale === 1 ? '' : ` (1 min lasts ${duration(60_000 / scale)})`}`;
  if (el.dataset.text === text) return;
  el.dataset.text = text;
  el.replaceChildren(o.clock.mode === 'manual' ? h('span', { class: 'manual' }, text) : text);
  el.title = `generation ${o.generation}`;
}

async function start() {
  $('filter').addEventListener('input', () => {
    for (const r of state.rows.values()) r.text = undefined;
    state.orderDirty = true;
  });
  $('sort').addEventListener('change', () => (state.orderDirty = true));
  $('flows').addEventListener('scroll', () => renderFlows(), { passive: true });
  window.addEventListener('resize', () => renderChart());
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) schedulePoll(0);
  });
  try {
    /** What GET /ui/session answers (src/control/ui.ts, SessionView). */
    /** @type {{ tokenRequired: boolean, signedIn: boolean }} */
    const session = await getJson('/ui/session');
    const out = /** @type {HTMLButtonElement} */ ($('sign-out'));
    out.hidden = !session.signedIn;
    out.addEventListener('click', async () => {
      await fetch('/ui/session', { method: 'DELETE', credentials: 'same-origin' });
      location.reload();
    });
  } catch (err) {
    if (err instanceof Unauthorized) return signedOut();
  }
  openStream();
  await poll();
  requestAnimationFrame(frame);
}

void start();
