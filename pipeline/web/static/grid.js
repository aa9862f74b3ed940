// The grid: one tile per camera, with its live picture, name and status; a click opens the camera's page.
// A tile plays only while it is on screen in a visible tab (IntersectionObserver, visibilitychange):
// a paused tile tells the socket, and the server stops sending that camera's frames altogether.
import { on, show } from './connection.js';
import { Picture } from './picture.js';
import { cs } from './state.js';
import { $, pageUrl, setText } from './ui.js';

const grid = $('grid');
const tiles = new Map(); // camera -> tile
let active = false; // the grid is the view on screen

const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const tile = tiles.get(entry.target.dataset.camera);
    if (!tile) continue;
    tile.inView = entry.isIntersecting;
    sync(tile);
  }
});

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
  el.dataset.frames = '0';
  el.dataset.playing = 'false';
  el.title = `Open camera ${camera}`;
  const frame = part('div', 'tile-picture');
  const img = document.createElement('img');
  img.alt = `Live view of camera ${camera}`;
  const demo = part('span', 'tile-demo', 'DEMO');
  demo.title = 'The demo scene, not a camera';
  const note = part('span', 'tile-note', 'Waiting for video…');
  frame.append(img, demo, note);
  const bar = part('div', 'tile-bar');
  const state = part('span', 'tile-state');
  const name = part('b', 'tile-name', camera);
  const fps = part('span', 'tile-fps');
  const motion = part('span', 'tile-motion', 'Motion');
  const recording = part('span', 'tile-recording', '● REC');
  bar.append(name, state, motion, recording, fps);
  el.append(frame, bar);
  const tile = { camera, el, img, frame, demo, note, state, fps, motion, recording, inView: false, playing: false,
    frames: 0 };
  tile.picture = new Picture(img, () => shown(tile));
  cs.tiles[camera] = { frames: 0, playing: false };
  return tile;
}

function shown(tile) {
  tile.frames += 1;
  tile.el.dataset.frames = String(tile.frames);
  cs.tiles[tile.camera].frames = tile.frames;
  tile.note.hidden = true;
}

// Playing: on screen, in the view shown, in a visible tab. Anything else pauses it at the server.
function sync(tile) {
  const playing = active && tile.inView && !document.hidden;
  if (playing === tile.playing) return;
  tile.playing = playing;
  tile.el.dataset.playing = String(playing);
  cs.tiles[tile.camera].playing = playing;
  show(`tile:${tile.camera}`, tile.camera, playing);
}

function status(tile) {
  const info = cs.info[tile.camera];
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

function remove(tile) {
  observer.unobserve(tile.el);
  tile.inView = false;
  sync(tile);
  tile.picture.clear();
  tile.el.remove();
  tiles.delete(tile.camera);
  delete cs.tiles[tile.camera];
}

// Tiles in the order of the camera names; a camera that appears gets its tile, one long gone loses it.
function layout() {
  for (const tile of [...tiles.values()]) if (!cs.cameras.includes(tile.camera)) remove(tile);
  let previous = null;
  for (const camera of cs.cameras) {
    let tile = tiles.get(camera);
    if (!tile) {
      tile = makeTile(camera);
      tiles.set(camera, tile);
      observer.observe(tile.el);
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

function onFrame(frame) {
  const tile = tiles.get(frame.camera);
  if (tile?.playing) tile.picture.push(frame);
}

export function setGridVisible(on) {
  active = on;
  for (const tile of tiles.values()) sync(tile);
}

export function initGrid() {
  on('cameras', (changed) => {
    if (changed) layout();
    for (const tile of tiles.values()) status(tile);
  });
  on('frame', onFrame);
  document.addEventListener('visibilitychange', () => {
    for (const tile of tiles.values()) sync(tile);
  });
}
