// camserver live view: one WebSocket, newest-frame-wins rendering, auto-reconnect.
const $ = (id) => document.getElementById(id);
const img = $('live');

const STALE_MS = 3000;
const MIN_BACKOFF = 0.5;
const MAX_BACKOFF = 8;
const LATENCY_SMOOTHING = 0.1;

const requestedCamera = new URLSearchParams(location.search).get('camera');
const query = requestedCamera ? `?camera=${encodeURIComponent(requestedCamera)}` : '';
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/webcam${query}`;

// The snapshot and MJPEG links follow the same camera as the live view.
$('snapshot-link').search = query;
$('stream-link').search = query;

// Public state for automated browser tests.
const cs = (window.camserver = {
  state: 'connecting',
  frames: 0,
  lastSeq: null,
  camera: null,
  width: null,
  height: null,
  demo: false,
  online: null,
  fps: null,
  viewers: null,
  latencyMs: null,
});

let ws = null;
let backoff = MIN_BACKOFF;
let retryAt = 0; // epoch ms of the scheduled reconnect; 0 = none pending
let openedAt = 0;
let lastFrameAt = 0; // epoch ms when the last JPEG arrived on this connection
let pendingMeta = null; // "frame" header waiting for its binary message

// Rendering: at most one JPEG decoding at a time plus one waiting slot, so
// a slow decoder drops stale frames instead of building up a backlog.
let shownUrl = null;
let decoding = false;
let waiting = null;

function show(frame) {
  if (decoding) {
    waiting = frame;
    return;
  }
  decoding = true;
  const url = URL.createObjectURL(new Blob([frame.data], { type: 'image/jpeg' }));
  img.onload = () => decoded(url, frame, true);
  img.onerror = () => decoded(url, frame, false);
  img.src = url;
}

function decoded(url, frame, ok) {
  decoding = false;
  if (ok) {
    if (shownUrl) URL.revokeObjectURL(shownUrl);
    shownUrl = url;
    cs.frames += 1;
    const m = frame.meta;
    if (m) {
      cs.lastSeq = m.seq ?? cs.lastSeq;
      cs.camera = m.camera ?? cs.camera;
      cs.width = m.w ?? cs.width;
      cs.height = m.h ?? cs.height;
      if (typeof m.demo === 'boolean') cs.demo = m.demo;
    }
  } else {
    URL.revokeObjectURL(url);
    img.onload = img.onerror = null;
    if (shownUrl) img.src = shownUrl; // keep the last good frame, not a broken-image icon
  }
  if (waiting) {
    const next = waiting;
    waiting = null;
    show(next);
  }
  update();
}

function onMessage(ev) {
  if (typeof ev.data !== 'string') {
    const now = Date.now();
    lastFrameAt = now;
    const meta = pendingMeta;
    pendingMeta = null;
    if (meta && typeof meta.ts === 'number') {
      const sample = now - meta.ts * 1000;
      cs.latencyMs = cs.latencyMs == null ? sample : cs.latencyMs + LATENCY_SMOOTHING * (sample - cs.latencyMs);
    }
    show({ data: ev.data, meta });
    return;
  }
  let msg;
  try {
    msg = JSON.parse(ev.data);
  } catch {
    return;
  }
  if (!msg || typeof msg !== 'object') return;
  if (msg.type === 'frame') {
    pendingMeta = msg;
  } else if (msg.type === 'status') {
    cs.camera = msg.camera ?? cs.camera;
    cs.width = msg.w ?? cs.width;
    cs.height = msg.h ?? cs.height;
    cs.fps = typeof msg.fps === 'number' ? msg.fps : null;
    cs.demo = msg.demo === true;
    cs.viewers = msg.viewers ?? null;
    cs.online = msg.online !== false;
    update();
  }
  // Other types ("event", ...) are not shown yet.
}

function connect() {
  retryAt = 0;
  pendingMeta = null;
  const sock = (ws = new WebSocket(wsUrl));
  sock.binaryType = 'arraybuffer';
  sock.onopen = () => {
    backoff = MIN_BACKOFF;
    openedAt = Date.now();
    lastFrameAt = 0;
    cs.online = null;
    update();
  };
  sock.onmessage = onMessage;
  sock.onerror = () => sock.close();
  sock.onclose = () => {
    if (ws === sock) scheduleReconnect();
  };
  update();
}

function scheduleReconnect() {
  if (retryAt) return;
  const delay = Math.min(backoff * (0.9 + Math.random() * 0.2), MAX_BACKOFF);
  backoff = Math.min(backoff * 2, MAX_BACKOFF);
  retryAt = Date.now() + delay * 1000;
  setTimeout(connect, delay * 1000);
  update();
}

function computeState() {
  if (!ws || ws.readyState !== WebSocket.OPEN) return retryAt ? 'reconnecting' : 'connecting';
  const quietMs = Date.now() - (lastFrameAt || openedAt);
  if (cs.online === false || quietMs > STALE_MS) return 'offline';
  return lastFrameAt ? 'live' : 'connecting';
}

function setText(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

function update() {
  const state = computeState();
  cs.state = state;
  if (document.body.dataset.state !== state) document.body.dataset.state = state;
  const secs = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
  const labels = {
    connecting: 'connecting',
    live: 'live',
    offline: 'camera offline',
    reconnecting: `reconnecting in ${secs}s`,
  };
  setText('state', labels[state]);
  setText('camera-name', cs.camera ?? requestedCamera ?? '—');
  setText('resolution', cs.width && cs.height ? `${cs.width}×${cs.height}` : '—');
  setText('fps', cs.fps == null ? '—' : cs.fps.toFixed(1));
  setText('latency', cs.latencyMs == null ? '—' : `${Math.round(cs.latencyMs)} ms`);
  setText('viewers', cs.viewers == null ? '—' : String(cs.viewers));
  $('demo-badge').hidden = !cs.demo;
  $('placeholder').hidden = cs.frames > 0;
}

// Staleness and the reconnect countdown change without any message arriving.
setInterval(update, 250);
connect();
