// The player dialog: one recording, with newer/older navigation, download and delete.
// Its URL is #recordings/<name>, so a recording can be linked to and the Back button closes it.
import {
  $, api, fileStamp, formatDuration, formatSize, releaseToasts, setText, startOf, toast, when, withCamera,
} from './ui.js';

const dialog = $('player');
const video = $('player-video');
const title = $('player-title');
const meta = $('player-meta');
const cut = $('player-cut');
const prev = $('player-prev');
const next = $('player-next');
const downloadLink = $('player-download');
const del = $('player-delete');

// The recordings list: its items in order, paging, removal, and the camera it is kept to (null: all).
let source = {
  items: () => [], hasMore: () => false, loadMore: () => Promise.resolve(), remove: () => {}, camera: () => null,
};
let current = null;
let pushed = false; // the history entry of the open player is ours: closing goes back over it
let busy = false;

export const PLAYER_HASH = /^#recordings\/(.+)$/;

export function playerSource(s) {
  source = s;
}

// A recording's API URL; on a camera's page the server checks that the recording is that camera's.
function recordingUrl(name) {
  return withCamera(`/api/recordings/${encodeURIComponent(name)}`, source.camera());
}

function show(rec) {
  current = rec;
  dialog.dataset.recording = rec.name;
  setText(title, when(rec));
  setText(meta, [formatDuration(rec.duration), rec.size ? formatSize(rec.size) : null, rec.camera]
    .filter(Boolean).join(' · '));
  cut.hidden = !rec.cut_short;
  video.poster = rec.thumbnail_url ?? '';
  video.src = rec.video_url;
  video.play().catch(() => {
    // autoplay refused (a browser setting): the controls are there
  });
  downloadLink.href = rec.video_url;
  downloadLink.download = `${rec.camera ?? 'camera'}_${fileStamp(new Date(startOf(rec) * 1000))}.mp4`;
  listChanged();
}

export function openPlayer(rec, { fromRoute = false } = {}) {
  show(rec);
  if (!dialog.open) dialog.showModal();
  const hash = `#recordings/${encodeURIComponent(rec.name)}`;
  if (fromRoute || location.hash === hash) return;
  if (PLAYER_HASH.test(location.hash)) {
    history.replaceState(null, '', hash);
  } else {
    history.pushState(null, '', hash);
    pushed = true;
  }
}

// For a link or a history step to #recordings/<name>.
export async function openPlayerByName(name) {
  if (current?.name === name && dialog.open) return;
  const listed = source.items().find((r) => r.name === name);
  if (listed) {
    openPlayer(listed, { fromRoute: true });
    return;
  }
  try {
    const rec = await api(recordingUrl(name));
    // The user may have moved on while it loaded.
    const wanted = PLAYER_HASH.exec(location.hash);
    if (wanted && decodeURIComponent(wanted[1]) === name) openPlayer(rec, { fromRoute: true });
  } catch (err) {
    toast(err.message);
    if (PLAYER_HASH.test(location.hash)) history.replaceState(null, '', '#recordings');
  }
}

export function closePlayer() {
  if (dialog.open) dialog.close();
}

function onClose() {
  releaseToasts(dialog);
  video.pause();
  // Without a source the browser stops downloading the video.
  video.removeAttribute('src');
  video.removeAttribute('poster');
  video.load();
  current = null;
  delete dialog.dataset.recording;
  if (PLAYER_HASH.test(location.hash)) {
    if (pushed) history.back();
    else history.replaceState(null, '', '#recordings');
  }
  pushed = false;
}

function position() {
  return current ? source.items().findIndex((r) => r.name === current.name) : -1;
}

// Called by the list whenever it changes: a new recording on top enables "newer".
export function listChanged() {
  if (!current) return;
  const at = position();
  prev.disabled = busy || at <= 0;
  next.disabled = busy || at === -1 || (at >= source.items().length - 1 && !source.hasMore());
}

async function step(direction) {
  if (busy || !current) return;
  let at = position();
  if (at === -1) return;
  if (direction > 0 && at >= source.items().length - 1 && source.hasMore()) {
    busy = true;
    listChanged();
    try {
      await source.loadMore();
    } finally {
      busy = false;
    }
    at = position();
  }
  const target = source.items()[at + direction];
  if (target && dialog.open) openPlayer(target);
  else listChanged();
}

async function remove() {
  if (!current) return;
  const rec = current;
  if (!confirm(`Delete the recording of ${when(rec)}? This cannot be undone.`)) return;
  del.disabled = true;
  try {
    await api(recordingUrl(rec.name), { method: 'DELETE' });
  } catch (err) {
    toast(err.message);
    if (err.status !== 404) return;
  } finally {
    del.disabled = false;
  }
  source.remove(rec.name);
  if (current?.name === rec.name) closePlayer();
}

// A video that fails is most often one deleted meanwhile (retention, another viewer): say which.
async function onVideoError() {
  if (!current || !video.getAttribute('src')) return;
  const name = current.name;
  try {
    await api(recordingUrl(name));
    toast('This video cannot be played in this browser.');
  } catch (err) {
    toast(err.message);
    if (err.status === 404) source.remove(name);
  }
}

export function initPlayer() {
  dialog.addEventListener('close', onClose);
  // A click on the backdrop lands on the <dialog> itself: its content fills it edge to edge.
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) closePlayer();
  });
  dialog.addEventListener('keydown', (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === 'ArrowLeft') step(-1);
    else if (e.key === 'ArrowRight') step(1);
    else return;
    e.preventDefault(); // not also a seek in the video
  });
  $('player-close').addEventListener('click', closePlayer);
  prev.addEventListener('click', () => step(-1));
  next.addEventListener('click', () => step(1));
  del.addEventListener('click', remove);
  video.addEventListener('error', onVideoError);
}
