// The camera page's live view: around its <camera-picture>, the status line, the motion badge and
// boxes, snapshot and full screen. The picture itself plays only while on screen in a visible tab.
import { CameraPicture } from './camera-picture.js';
import { cameras, cameraStatus, link, on } from './connection.js';
import { $, download, fileStamp, setText, toast, withCamera } from './ui.js';

const picture = $('live');
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

let camera = null; // the camera shown; null: none yet
let visible = true; // the live view is the view on screen: its keys work
let lastFrameAt = 0; // epoch ms when the last frame shown arrived on this connection
let playingSince = 0; // epoch ms the picture last started asking for frames
let aspect = ''; // of the frames shown since the camera was set

// The camera, from its frames and its line in the socket's status of every camera.
let online = null;
let cameraW = null;
let cameraH = null;
let fps = null;
let demo = false;
let viewers = null;
let latencyMs = null;

// Motion state of the shown camera, fed by the detector's events.
let motionCamera = null; // camera the state below belongs to
let motionOpen = false;
let lastDeltaAt = 0; // epoch ms of the last delta event; 0 = none yet
let boxes = [];
let boxesAt = 0;
let noteUntil = 0;

function onShown(e) {
  const frame = e.detail;
  // The first frame, or a new resolution, moves the displayed picture; nothing else does.
  const size = `${picture.naturalWidth} / ${picture.naturalHeight}`;
  if (size !== aspect) {
    aspect = size;
    stage.style.setProperty('--aspect', size);
    drawBoxes();
  }
  lastFrameAt = frame.at;
  const m = frame.meta;
  if (m) {
    cameraW = m.w ?? cameraW;
    cameraH = m.h ?? cameraH;
    if (typeof m.demo === 'boolean') demo = m.demo;
    if (typeof m.ts === 'number') {
      const sample = frame.at - m.ts * 1000;
      latencyMs = latencyMs == null ? sample : latencyMs + LATENCY_SMOOTHING * (sample - latencyMs);
    }
  }
  update();
}

function onCameras() {
  const info = camera ? cameraStatus(camera) : null;
  online = info ? info.online === true : null;
  if (info) {
    cameraW = info.w ?? cameraW;
    cameraH = info.h ?? cameraH;
    fps = typeof info.fps === 'number' ? info.fps : null;
    demo = info.demo === true;
    viewers = info.viewers ?? null;
  }
  update();
}

// Which camera the live view shows (null: none yet); everything of the previous one goes.
export function setLiveCamera(name) {
  if (name === camera) return;
  camera = name;
  picture.camera = name;
  aspect = '';
  lastFrameAt = 0;
  latencyMs = null;
  cameraW = cameraH = fps = viewers = null;
  demo = false;
  $('stream-link').href = withCamera('/stream.mjpg', name);
  onCameras();
  drawBoxes();
}

function onEvent(body) {
  if (body.camera == null || body.camera !== camera) return;
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
  if (motionCamera === camera) return;
  motionCamera = camera;
  motionOpen = false;
  lastDeltaAt = 0;
  noteUntil = 0;
  if (boxes.length) setBoxes([], 0);
}

function setBoxes(seen, now) {
  boxesAt = now;
  if (seen.length === 0 && boxes.length === 0) return;
  boxes = seen;
  drawBoxes();
}

// Where the picture really is: object-fit: contain letterboxes it inside the <camera-picture> box.
function pictureRect() {
  const pictureW = picture.naturalWidth;
  const pictureH = picture.naturalHeight;
  if (!pictureW || !pictureH) return null;
  const box = picture.getBoundingClientRect();
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
  if (!boxes.length || !cameraW || !cameraH) return;
  const kx = width / cameraW;
  const ky = height / cameraH;
  const line = Math.max(1, Math.round(BOX_LINE_PX * dpr));
  ctx.lineWidth = line;
  ctx.strokeStyle = BOX_COLOR;
  ctx.beginPath();
  for (const [x, y, w, h] of boxes) {
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
  if (!camera) return cameras().some((c) => cameraStatus(c)?.online) ? 'live' : waited ? 'offline' : 'connecting';
  if (online === false) return 'offline';
  if (!picture.playing) return online ? 'live' : waited ? 'offline' : 'connecting';
  if (Date.now() - Math.max(lastFrameAt, playingSince, link.openedAt) > STALE_MS) return 'offline';
  return lastFrameAt ? 'live' : 'connecting';
}

function update() {
  const state = computeState();
  if (document.body.dataset.state !== state) document.body.dataset.state = state;
  const secs = Math.max(1, Math.ceil((link.retryAt - Date.now()) / 1000));
  const labels = {
    connecting: 'connecting',
    live: 'live',
    offline: 'camera offline',
    reconnecting: `reconnecting in ${secs}s`,
  };
  setText($('state'), labels[state]);
  setText($('camera-name'), camera ?? '—');
  setText($('resolution'), cameraW && cameraH ? `${cameraW}×${cameraH}` : '—');
  setText($('fps'), fps == null ? '—' : fps.toFixed(1));
  setText($('latency'), latencyMs == null ? '—' : `${Math.round(latencyMs)} ms`);
  setText($('viewers'), viewers == null ? '—' : String(viewers));
  updateMode();
  $('demo-badge').hidden = !demo;
  $('placeholder').hidden = !!picture.frame;
  setText($('placeholder'), camera && online === false ? `Camera ${camera} is offline.` : 'Waiting for video…');
  $('snapshot-button').disabled = !picture.frame;
  updateMotion();
}

// Which way the picture comes, H.264 or JPEG, what it costs, and the switch to the other way.
function updateMode() {
  const mode = picture.playing ? picture.mode : null;
  setText($('live-mode'), mode === 'h264' ? 'H.264' : mode === 'jpeg' ? 'JPEG' : '—');
  $('live-mode').dataset.mode = mode ?? '';
  setText($('bitrate'), mode ? formatBitrate(picture.bitrate) : '—');
  const toggle = $('mode-toggle');
  toggle.hidden = !CameraPicture.h264Supported;
  const jpeg = CameraPicture.preference === 'jpeg';
  setText(toggle, jpeg ? 'Use H.264' : 'Use JPEG');
  toggle.setAttribute('aria-pressed', String(jpeg));
}

export function formatBitrate(bitsPerSecond) {
  return `${Math.round(bitsPerSecond / 1000)} kbit/s`;
}

function updateMotion() {
  syncMotionCamera();
  const now = Date.now();
  if (boxes.length && now - boxesAt > BOXES_TTL_MS) setBoxes([], now);
  const motion = !lastDeltaAt || now - lastDeltaAt > DETECTOR_TTL_MS ? 'none' : motionOpen ? 'recording' : 'idle';
  const badge = $('motion-badge');
  if (badge.dataset.motion !== motion) badge.dataset.motion = motion;
  setText(badge, MOTION_LABELS[motion]);
  const noteHidden = now >= noteUntil;
  if ($('light-note').hidden !== noteHidden) $('light-note').hidden = noteHidden;
}

// Saves the very picture on screen, named by its capture time, not a newer one fetched from the server.
// In H.264 mode the video's frame on screen is drawn to a canvas and saved as a JPEG.
async function snapshot() {
  const shown = picture.frame;
  const blob = shown ? await picture.snapshot().catch(() => null) : null;
  if (!shown || !blob) {
    toast('No picture yet.');
    return;
  }
  const ts = typeof shown.meta?.ts === 'number' ? shown.meta.ts * 1000 : Date.now();
  const url = URL.createObjectURL(blob);
  download(url, `${shown.camera ?? camera ?? 'camera'}_${fileStamp(new Date(ts))}.jpg`);
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
  if (on) requestAnimationFrame(drawBoxes);
}

export function initLive() {
  picture.addEventListener('frame', onShown);
  picture.addEventListener('play', () => {
    playingSince = Date.now();
    update();
  });
  picture.addEventListener('pause', update);
  on('cameras', onCameras);
  on('event', onEvent);
  on('change', update);
  on('open', () => {
    lastFrameAt = 0;
    playingSince = Date.now();
  });
  picture.addEventListener('mode', update);
  $('mode-toggle').addEventListener('click', () => {
    CameraPicture.preference = CameraPicture.preference === 'jpeg' ? 'h264' : 'jpeg';
    update();
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
  // Staleness, the reconnect countdown and the motion timeouts change without any message arriving.
  setInterval(update, 250);
  // Window resizes, the status line wrapping and zoom (devicePixelRatio) all move the picture.
  new ResizeObserver(drawBoxes).observe(picture);
  window.addEventListener('resize', drawBoxes);
  fullscreenChanged();
  update();
}
