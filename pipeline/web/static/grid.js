// The grid: one tile per camera, its live picture with its name and status; a click opens the camera's page.
// Each tile's <camera-picture> plays only while on screen in a visible tab, so the server sends the
// frames of the tiles in view and no others.
import { CameraPicture } from './camera-picture.js';
import { cameras, cameraStatus, on } from './connection.js';
import { $, pageUrl, setText } from './ui.js';

const grid = $('grid');
const tiles = new Map(); // camera -> tile

function part(tag, className, text) {
  const el = document.createElement(tag);
  el.className = className;
  if (text) el.textContent = text;
  return el;
}

function makeTile(camera) {
  const el = document.createElement('a');
  el.className = 'tile';
  el.href = pageUrl(camera);
  el.dataset.nav = '';
  el.dataset.camera = camera;
  el.title = `Open camera ${camera}`;
  const frame = part('div', 'tile-picture');
  const picture = document.createElement('camera-picture');
  picture.camera = camera;
  const demo = part('span', 'tile-demo', 'DEMO');
  demo.title = 'The demo scene, not a camera';
  const note = part('span', 'tile-note', 'Waiting for video…');
  picture.addEventListener('frame', () => {
    note.hidden = true;
  });
  frame.append(picture, demo, note);
  const bar = part('div', 'tile-bar');
  const state = part('span', 'tile-state');
  const name = part('b', 'tile-name', camera);
  const fps = part('span', 'tile-fps');
  const motion = part('span', 'tile-motion', 'Motion');
  const recording = part('span', 'tile-recording', '● REC');
  // The tile is a link: a click on its mode switches every picture between H.264 and JPEG instead.
  const mode = part('span', 'tile-mode');
  mode.setAttribute('role', 'button');
  mode.tabIndex = 0;
  const toggle = (e) => {
    e.preventDefault();
    e.stopPropagation();
    CameraPicture.preference = CameraPicture.preference === 'jpeg' ? 'h264' : 'jpeg';
  };
  mode.addEventListener('click', toggle);
  mode.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') toggle(e);
  });
  bar.append(name, state, motion, recording, mode, fps);
  el.append(frame, bar);
  const tile = { camera, el, picture, frame, demo, note, state, fps, motion, recording, mode };
  picture.addEventListener('mode', () => showMode(tile));
  picture.addEventListener('pause', () => showMode(tile));
  return tile;
}

// "H.264 412 kbit/s" or "JPEG 1650 kbit/s" while the tile plays; the switch is on the camera's page.
function showMode(tile) {
  const { picture } = tile;
  const mode = picture.playing ? picture.mode : null;
  tile.mode.dataset.mode = mode ?? '';
  tile.mode.hidden = !mode;
  tile.mode.title = `${mode === 'h264' ? 'H.264 video' : 'JPEG frames'} and the bitrate received. `
    + `Click to use ${CameraPicture.preference === 'jpeg' ? 'H.264' : 'JPEG'} instead.`;
  setText(tile.mode, mode ? `${mode === 'h264' ? 'H.264' : 'JPEG'} ${Math.round(picture.bitrate / 1000)} kbit/s` : '');
}

function status(tile) {
  showMode(tile);
  const info = cameraStatus(tile.camera);
  const online = info?.online === true;
  tile.el.dataset.state = online ? 'live' : 'offline';
  setText(tile.state, online ? 'live' : 'offline');
  setText(tile.fps, online && typeof info.fps === 'number' ? `${info.fps.toFixed(1)} fps` : '');
  tile.motion.hidden = !(online && info.motion);
  tile.recording.hidden = !info?.recording;
  tile.demo.hidden = !info?.demo;
  if (info?.w && info?.h) tile.frame.style.setProperty('--aspect', `${info.w} / ${info.h}`);
  setText(tile.note, online ? 'Waiting for video…' : 'Camera offline');
  tile.note.hidden = online && !!tile.picture.frame;
}

// Tiles in the order of the camera names; a camera that appears gets its tile, one long gone loses it.
function layout() {
  const list = cameras();
  for (const tile of [...tiles.values()]) {
    if (list.includes(tile.camera)) continue;
    tile.el.remove(); // its picture stops and lets its frames go
    tiles.delete(tile.camera);
  }
  let previous = null;
  for (const camera of list) {
    let tile = tiles.get(camera);
    if (!tile) {
      tile = makeTile(camera);
      tiles.set(camera, tile);
    }
    const at = previous ? previous.el.nextSibling : grid.firstChild;
    if (at !== tile.el) grid.insertBefore(tile.el, at);
    previous = tile;
  }
  const n = tiles.size;
  const columns = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
  grid.style.setProperty('--columns', String(columns));
  grid.style.setProperty('--rows', String(Math.min(4, Math.ceil(n / columns))));
}

export function initGrid() {
  on('cameras', (changed) => {
    if (changed) layout();
    for (const tile of tiles.values()) status(tile);
  });
}
