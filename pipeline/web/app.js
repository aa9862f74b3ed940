// camserver live view: one WebSocket, newest-frame-wins rendering, auto-reconnect.
const $ = (id) => document.getElementById(id);
const img = $('live');
const stage = $('stage');
const canvas = $('boxes');
const ctx = canvas.getContext('2d');

const STALE_MS = 3000;
const MIN_BACKOFF = 0.5;
const MAX_BACKOFF = 8;
const LATENCY_SMOOTHING = 0.1;
const BOXES_TTL_MS = 1000;
const DETECTOR_TTL_MS = 3000;
const NOTE_MS = 3000;
const BOX_COLOR = 'rgb(248 81 73 / 0.8)';
const BOX_LINE_PX = 2;
const MOTION_LABELS = { recording: '● Recording', idle: 'Idle', none: 'No detector' };

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
  motion: 'none',
  boxes: [],
  events: 0,
});

let ws = null;
let backoff = MIN_BACKOFF;
let retryAt = 0; // epoch ms of the scheduled reconnect; 0 = none pending
let openedAt = 0;
let lastFrameAt = 0; // epoch ms when the last JPEG arrived on this connection
let pendingMeta = null; // "frame" header waiting for its binary message

// Motion state of the shown camera, fed by the detector's events.
let motionCamera = null; // camera the state below belongs to
let motionOpen = false;
let lastDeltaAt = 0; // epoch ms of the last delta event; 0 = none yet
let boxesAt = 0;
let noteUntil = 0;
// Size of the last decoded frame: img.naturalWidth reads 0 while the next one loads.
let pictureW = 0;
let pictureH = 0;

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
    // The first frame, or a new resolution, moves the displayed picture; nothing else does.
    if (img.naturalWidth !== pictureW || img.naturalHeight !== pictureH) {
      pictureW = img.naturalWidth;
      pictureH = img.naturalHeight;
      drawBoxes();
    }
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
  } else if (msg.type === 'event') {
    cs.events += 1;
    onEvent(msg.event);
  }
}

function onEvent(body) {
  if (!body || typeof body !== 'object' || body.camera == null || body.camera !== cs.camera) return;
  syncMotionCamera();
  const now = Date.now();
  if (body.type === 'delta') {
    lastDeltaAt = now;
    motionOpen = body.motion === true;
    setBoxes(Array.isArray(body.boxes) ? body.boxes.filter(isBox) : [], now);
  } else if (body.type === 'motion_start') {
    motionOpen = true;
  } else if (body.type === 'motion_end') {
    motionOpen = false;
  } else if (body.type === 'lightswitch') {
    noteUntil = now + NOTE_MS;
  } else {
    return;
  }
  update();
}

function isBox(b) {
  return Array.isArray(b) && b.length === 4 && b.every(Number.isFinite);
}

// Another camera's episode and boxes say nothing about the one now shown.
function syncMotionCamera() {
  if (motionCamera === cs.camera) return;
  motionCamera = cs.camera;
  motionOpen = false;
  lastDeltaAt = 0;
  noteUntil = 0;
  if (cs.boxes.length) setBoxes([], 0);
}

function setBoxes(boxes, now) {
  boxesAt = now;
  if (boxes.length === 0 && cs.boxes.length === 0) return;
  cs.boxes = boxes;
  drawBoxes();
}

// Where the picture really is: object-fit: contain letterboxes it inside the <img> box.
function pictureRect() {
  if (!pictureW || !pictureH) return null;
  const box = img.getBoundingClientRect();
  if (!box.width || !box.height) return null;
  const scale = Math.min(box.width / pictureW, box.height / pictureH);
  const w = pictureW * scale;
  const h = pictureH * scale;
  return { x: box.left + (box.width - w) / 2, y: box.top + (box.height - h) / 2, w, h };
}

// The canvas lands on whole device pixels so its 1:1 backing store is not resampled (blurred).
let placed = '';
function drawBoxes() {
  const rect = pictureRect();
  if (!rect) {
    canvas.hidden = true;
    placed = '';
    return;
  }
  const dpr = window.devicePixelRatio || 1;
  const origin = stage.getBoundingClientRect();
  const left = Math.round(rect.x * dpr);
  const top = Math.round(rect.y * dpr);
  const width = Math.max(1, Math.round((rect.x + rect.w) * dpr) - left);
  const height = Math.max(1, Math.round((rect.y + rect.h) * dpr) - top);
  const key = [left, top, width, height, dpr, origin.left, origin.top].join();
  if (key !== placed) {
    placed = key;
    canvas.style.left = `${left / dpr - origin.left}px`;
    canvas.style.top = `${top / dpr - origin.top}px`;
    canvas.style.width = `${width / dpr}px`;
    canvas.style.height = `${height / dpr}px`;
    canvas.width = width;
    canvas.height = height;
  } else {
    ctx.clearRect(0, 0, width, height);
  }
  canvas.hidden = false;
  if (!cs.boxes.length || !cs.width || !cs.height) return;
  const kx = width / cs.width;
  const ky = height / cs.height;
  const line = Math.max(1, Math.round(BOX_LINE_PX * dpr));
  ctx.lineWidth = line;
  ctx.strokeStyle = BOX_COLOR;
  ctx.beginPath();
  for (const [x, y, w, h] of cs.boxes) {
    const x0 = Math.round(x * kx);
    const y0 = Math.round(y * ky);
    const x1 = Math.round((x + w) * kx);
    const y1 = Math.round((y + h) * ky);
    // Stroked inside the box: whole-pixel edges, and boxes touching the frame edge are not cut in half.
    ctx.rect(x0 + line / 2, y0 + line / 2, Math.max(0, x1 - x0 - line), Math.max(0, y1 - y0 - line));
  }
  ctx.stroke();
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
  updateMotion();
}

function updateMotion() {
  syncMotionCamera();
  const now = Date.now();
  if (cs.boxes.length && now - boxesAt > BOXES_TTL_MS) setBoxes([], now);
  const motion = !lastDeltaAt || now - lastDeltaAt > DETECTOR_TTL_MS ? 'none' : motionOpen ? 'recording' : 'idle';
  cs.motion = motion;
  const badge = $('motion-badge');
  if (badge.dataset.motion !== motion) badge.dataset.motion = motion;
  setText('motion-badge', MOTION_LABELS[motion]);
  const noteHidden = now >= noteUntil;
  if ($('light-note').hidden !== noteHidden) $('light-note').hidden = noteHidden;
}

// Staleness, the reconnect countdown and the motion timeouts change without any message arriving.
setInterval(update, 250);
// Window resizes, the status line wrapping and zoom (devicePixelRatio) all move the picture.
new ResizeObserver(drawBoxes).observe(img);
window.addEventListener('resize', drawBoxes);
connect();
