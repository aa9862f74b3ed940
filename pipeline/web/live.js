// The live view: newest-frame-wins rendering, motion badge and boxes, snapshot, full screen.
import { cameraQuery, link, on, requestedCamera } from './connection.js';
import { cs } from './state.js';
import { $, download, fileStamp, setText, toast } from './ui.js';

const img = $('live');
const stage = $('stage');
const canvas = $('boxes');
const ctx = canvas.getContext('2d');

const STALE_MS = 3000;
const LATENCY_SMOOTHING = 0.1;
const BOXES_TTL_MS = 1000;
const DETECTOR_TTL_MS = 3000;
const NOTE_MS = 3000;
const BOX_COLOR = 'rgb(248 81 73 / 0.8)';
const BOX_LINE_PX = 2;
const MOTION_LABELS = { recording: '● Recording', idle: 'Idle', none: 'No detector' };

// The MJPEG link follows the same camera as the live view.
$('stream-link').search = cameraQuery;

let lastFrameAt = 0; // epoch ms when the last JPEG arrived on this connection

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
let shown = null; // the frame on screen: what Snapshot saves
let decoding = false;
let waiting = null;
// While the live view is not on screen frames are only parked: decoding them would waste a phone's battery.
let visible = true;
let parked = null;

function show(frame) {
  if (!visible || document.hidden) {
    parked = frame;
    return;
  }
  if (decoding) {
    waiting = frame;
    return;
  }
  decoding = true;
  frame.blob = new Blob([frame.data], { type: 'image/jpeg' });
  const url = URL.createObjectURL(frame.blob);
  img.onload = () => decoded(url, frame, true);
  img.onerror = () => decoded(url, frame, false);
  img.src = url;
}

function decoded(url, frame, ok) {
  decoding = false;
  if (ok) {
    if (shownUrl) URL.revokeObjectURL(shownUrl);
    shownUrl = url;
    shown = frame;
    // The first frame, or a new resolution, moves the displayed picture; nothing else does.
    if (img.naturalWidth !== pictureW || img.naturalHeight !== pictureH) {
      pictureW = img.naturalWidth;
      pictureH = img.naturalHeight;
      stage.style.setProperty('--aspect', `${pictureW} / ${pictureH}`);
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

function onFrame(frame) {
  lastFrameAt = frame.at;
  const meta = frame.meta;
  if (meta && typeof meta.ts === 'number') {
    const sample = frame.at - meta.ts * 1000;
    cs.latencyMs = cs.latencyMs == null ? sample : cs.latencyMs + LATENCY_SMOOTHING * (sample - cs.latencyMs);
  }
  show(frame);
}

function onStatus(msg) {
  cs.camera = msg.camera ?? cs.camera;
  cs.width = msg.w ?? cs.width;
  cs.height = msg.h ?? cs.height;
  cs.fps = typeof msg.fps === 'number' ? msg.fps : null;
  cs.demo = msg.demo === true;
  cs.viewers = msg.viewers ?? null;
  cs.online = msg.online !== false;
  update();
}

function onEvent(body) {
  cs.events += 1;
  if (body.camera == null || body.camera !== cs.camera) return;
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

function computeState() {
  if (!link.isOpen) return link.retryAt ? 'reconnecting' : 'connecting';
  const quietMs = Date.now() - (lastFrameAt || link.openedAt);
  if (cs.online === false || quietMs > STALE_MS) return 'offline';
  return lastFrameAt ? 'live' : 'connecting';
}

function update() {
  const state = computeState();
  cs.state = state;
  if (document.body.dataset.state !== state) document.body.dataset.state = state;
  const secs = Math.max(1, Math.ceil((link.retryAt - Date.now()) / 1000));
  const labels = {
    connecting: 'connecting',
    live: 'live',
    offline: 'camera offline',
    reconnecting: `reconnecting in ${secs}s`,
  };
  setText($('state'), labels[state]);
  setText($('camera-name'), cs.camera ?? requestedCamera ?? '—');
  setText($('resolution'), cs.width && cs.height ? `${cs.width}×${cs.height}` : '—');
  setText($('fps'), cs.fps == null ? '—' : cs.fps.toFixed(1));
  setText($('latency'), cs.latencyMs == null ? '—' : `${Math.round(cs.latencyMs)} ms`);
  setText($('viewers'), cs.viewers == null ? '—' : String(cs.viewers));
  $('demo-badge').hidden = !cs.demo;
  $('placeholder').hidden = cs.frames > 0;
  $('snapshot-button').disabled = !shown;
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
  setText(badge, MOTION_LABELS[motion]);
  const noteHidden = now >= noteUntil;
  if ($('light-note').hidden !== noteHidden) $('light-note').hidden = noteHidden;
}

// Saves the very picture on screen, named by its capture time, not a newer one fetched from the server.
function snapshot() {
  if (!shown) {
    toast('No picture yet.');
    return;
  }
  const ts = typeof shown.meta?.ts === 'number' ? shown.meta.ts * 1000 : Date.now();
  const camera = shown.meta?.camera ?? cs.camera ?? requestedCamera ?? 'camera';
  const url = URL.createObjectURL(shown.blob);
  download(url, `${camera}_${fileStamp(new Date(ts))}.jpg`);
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  flash();
}

function flash() {
  stage.classList.remove('flash');
  void stage.offsetWidth; // restarts the animation on repeated clicks
  stage.classList.add('flash');
}

// Full screen: the Fullscreen API where there is one (iPhone Safari has none for elements),
// otherwise the stage simply covers the window.
const fsButton = $('fullscreen-button');
const nativeFullscreen = !!(stage.requestFullscreen || stage.webkitRequestFullscreen);

function fullscreenElement() {
  return document.fullscreenElement ?? document.webkitFullscreenElement ?? null;
}

async function toggleFullscreen() {
  if (fullscreenElement()) {
    await (document.exitFullscreen ?? document.webkitExitFullscreen).call(document);
    return;
  }
  if (document.body.classList.contains('covering')) {
    setCovering(false);
    return;
  }
  if (nativeFullscreen && (document.fullscreenEnabled ?? document.webkitFullscreenEnabled)) {
    try {
      await (stage.requestFullscreen ?? stage.webkitRequestFullscreen).call(stage);
      return;
    } catch {
      // refused (an iframe without allowfullscreen, say): cover the window instead
    }
  }
  setCovering(true);
}

function setCovering(on) {
  document.body.classList.toggle('covering', on);
  fullscreenChanged();
}

function fullscreenChanged() {
  const on = !!fullscreenElement() || document.body.classList.contains('covering');
  fsButton.setAttribute('aria-pressed', String(on));
  fsButton.title = on ? 'Leave full screen (Esc)' : 'Full screen (F)';
  setText(fsButton.querySelector('.label'), on ? 'Exit' : 'Full screen');
  drawBoxes();
}

export function setLiveVisible(on) {
  visible = on;
  if (!on && document.body.classList.contains('covering')) setCovering(false);
  if (on && parked) {
    const frame = parked;
    parked = null;
    show(frame);
  }
  if (on) requestAnimationFrame(drawBoxes);
}

export function initLive() {
  on('frame', onFrame);
  on('status', onStatus);
  on('event', onEvent);
  on('change', update);
  on('open', () => {
    lastFrameAt = 0;
    cs.online = null;
  });
  $('snapshot-button').addEventListener('click', snapshot);
  fsButton.addEventListener('click', () => toggleFullscreen().catch(() => setCovering(true)));
  document.addEventListener('fullscreenchange', fullscreenChanged);
  document.addEventListener('webkitfullscreenchange', fullscreenChanged);
  document.addEventListener('keydown', (e) => {
    if (!visible || e.ctrlKey || e.metaKey || e.altKey || e.target.closest?.('input, textarea, select, dialog')) return;
    if (e.key === 'Escape' && document.body.classList.contains('covering')) setCovering(false);
    else if (e.key === 'f' || e.key === 'F') toggleFullscreen().catch(() => setCovering(true));
    else if (e.key === 's' || e.key === 'S') snapshot();
  });
  document.addEventListener('visibilitychange', () => setLiveVisible(visible));
  // Staleness, the reconnect countdown and the motion timeouts change without any message arriving.
  setInterval(update, 250);
  // Window resizes, the status line wrapping and zoom (devicePixelRatio) all move the picture.
  new ResizeObserver(drawBoxes).observe(img);
  window.addEventListener('resize', drawBoxes);
  fullscreenChanged();
  update();
}
