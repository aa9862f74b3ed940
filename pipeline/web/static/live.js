// The live view of one camera: its picture, motion badge and boxes, snapshot, full screen.
// It asks the socket for its camera's frames only while it is on screen and the tab is visible.
import { link, on, show } from './connection.js';
import { Picture } from './picture.js';
import { cs } from './state.js';
import { $, download, fileStamp, setText, toast, withCamera } from './ui.js';

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

let lastFrameAt = 0; // epoch ms when the last JPEG of the camera arrived on this connection
let watched = null; // the camera whose frames the live view asked for; null while it is off screen
let watchedAt = 0; // epoch ms it asked

// Motion state of the shown camera, fed by the detector's events.
let motionCamera = null; // camera the state below belongs to
let motionOpen = false;
let lastDeltaAt = 0; // epoch ms of the last delta event; 0 = none yet
let boxesAt = 0;
let noteUntil = 0;
// Size of the last decoded frame: img.naturalWidth reads 0 while the next one loads.
let pictureW = 0;
let pictureH = 0;

// Frames go to the screen only while the live view is: otherwise the socket is not even sent them.
let visible = true;
const picture = new Picture(img, decoded);

function decoded(frame) {
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
    cs.width = m.w ?? cs.width;
    cs.height = m.h ?? cs.height;
    if (typeof m.demo === 'boolean') cs.demo = m.demo;
  }
  update();
}

function onFrame(frame) {
  if (frame.camera !== cs.camera || watched !== cs.camera) return;
  lastFrameAt = frame.at;
  const meta = frame.meta;
  if (meta && typeof meta.ts === 'number') {
    const sample = frame.at - meta.ts * 1000;
    cs.latencyMs = cs.latencyMs == null ? sample : cs.latencyMs + LATENCY_SMOOTHING * (sample - cs.latencyMs);
  }
  picture.push(frame);
}

// The camera's line in the socket's status of every camera.
function onCameras() {
  const info = cs.camera ? cs.info[cs.camera] : null;
  cs.online = info ? info.online === true : null;
  if (info) {
    cs.width = info.w ?? cs.width;
    cs.height = info.h ?? cs.height;
    cs.fps = typeof info.fps === 'number' ? info.fps : null;
    cs.demo = info.demo === true;
    cs.viewers = info.viewers ?? null;
  }
  update();
}

// Which camera the live view shows (null: none yet); everything of the previous one goes.
export function setLiveCamera(camera) {
  if (camera === cs.camera) return;
  cs.camera = camera;
  picture.clear();
  pictureW = pictureH = 0;
  lastFrameAt = 0;
  cs.lastSeq = null;
  cs.latencyMs = null;
  cs.width = cs.height = cs.fps = cs.viewers = null;
  cs.demo = false;
  $('stream-link').href = withCamera('/stream.mjpg', camera);
  syncWatch();
  onCameras();
  drawBoxes();
}

function syncWatch() {
  const wanted = visible && !document.hidden ? cs.camera : null;
  if (wanted === watched) return;
  if (watched) show('live', watched, false);
  watched = wanted;
  if (wanted) {
    watchedAt = Date.now();
    show('live', wanted, true);
  }
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

// While the live view is off screen no frames come: the camera's own status says whether it is live.
function computeState() {
  if (!link.isOpen) return link.retryAt ? 'reconnecting' : 'connecting';
  const waited = Date.now() - link.openedAt > STALE_MS;
  if (!cs.camera) return Object.values(cs.info).some((c) => c?.online) ? 'live' : waited ? 'offline' : 'connecting';
  if (cs.online === false) return 'offline';
  if (watched !== cs.camera) return cs.online ? 'live' : waited ? 'offline' : 'connecting';
  if (Date.now() - Math.max(lastFrameAt, watchedAt, link.openedAt) > STALE_MS) return 'offline';
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
  setText($('camera-name'), cs.camera ?? '—');
  setText($('resolution'), cs.width && cs.height ? `${cs.width}×${cs.height}` : '—');
  setText($('fps'), cs.fps == null ? '—' : cs.fps.toFixed(1));
  setText($('latency'), cs.latencyMs == null ? '—' : `${Math.round(cs.latencyMs)} ms`);
  setText($('viewers'), cs.viewers == null ? '—' : String(cs.viewers));
  $('demo-badge').hidden = !cs.demo;
  $('placeholder').hidden = !!picture.frame;
  setText($('placeholder'), cs.camera && cs.online === false ? `Camera ${cs.camera} is offline.` : 'Waiting for video…');
  $('snapshot-button').disabled = !picture.frame;
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
  const shown = picture.frame;
  if (!shown) {
    toast('No picture yet.');
    return;
  }
  const ts = typeof shown.meta?.ts === 'number' ? shown.meta.ts * 1000 : Date.now();
  const camera = shown.camera ?? cs.camera ?? 'camera';
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
  syncWatch();
  if (on) requestAnimationFrame(drawBoxes);
}

export function initLive() {
  on('frame', onFrame);
  on('cameras', onCameras);
  on('event', onEvent);
  on('change', update);
  on('open', () => {
    lastFrameAt = 0;
    watchedAt = Date.now();
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
  document.addEventListener('visibilitychange', syncWatch);
  // Staleness, the reconnect countdown and the motion timeouts change without any message arriving.
  setInterval(update, 250);
  // Window resizes, the status line wrapping and zoom (devicePixelRatio) all move the picture.
  new ResizeObserver(drawBoxes).observe(img);
  window.addEventListener('resize', drawBoxes);
  fullscreenChanged();
  update();
}
