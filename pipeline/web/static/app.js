// camserver's page: the cameras' grid, one camera's live view and the recordings, over one WebSocket.
// The URL says what is shown: /?camera=ID is that camera's page (its live view, and its recordings
// at #recordings), / the grid of every camera, or the live view itself while there is only one.
import { cameras, connect, on } from './connection.js';
import { initGrid } from './grid.js';
import { initLatest, setLatestCamera, setLatestVisible } from './latest.js';
import { initLive, setLiveCamera, setLiveVisible } from './live.js';
import { closePlayer, initPlayer, openPlayerByName, PLAYER_HASH } from './player.js';
import { initRecordings, setRecordingsCamera, setRecordingsVisible } from './recordings.js';
import { $, api, navigate, pageUrl, toast, toLogin } from './ui.js';

const VIEWS = ['grid', 'live', 'recordings'];
const scrollTops = { grid: 0, live: 0, recordings: 0 };
let view = null; // the view on screen, also body[data-view] for the style sheet
let selected = null; // ?camera= of the URL: the camera page open, if any

// A view that is not shown is hidden: the pictures in it stop playing by themselves.
function setView(name) {
  if (view === name) return;
  if (view) scrollTops[view] = window.scrollY;
  view = name;
  document.body.dataset.view = name;
  for (const other of VIEWS) $(`view-${other}`).hidden = other !== name;
  for (const [tab, on] of [['tab-live', name !== 'recordings'], ['tab-recordings', name === 'recordings']]) {
    if (on) $(tab).setAttribute('aria-current', 'page');
    else $(tab).removeAttribute('aria-current');
  }
  setLiveVisible(name === 'live');
  setLatestVisible(name === 'live');
  setRecordingsVisible(name === 'recordings');
  window.scrollTo(0, scrollTops[name]);
}

// The views follow the URL and the cameras known: the grid only has a point with two cameras or more.
function show() {
  const list = cameras();
  const camera = selected ?? (list.length === 1 ? list[0] : null);
  setLiveCamera(camera);
  setLatestCamera(camera);
  const recordings = PLAYER_HASH.test(location.hash) || location.hash === '#recordings';
  setView(recordings ? 'recordings' : selected || list.length <= 1 ? 'live' : 'grid');
  $('tab-live').href = pageUrl(selected);
  $('tab-recordings').href = pageUrl(selected, '#recordings');
  $('all-cameras').hidden = list.length < 2;
  document.title = view === 'grid' ? 'camserver — cameras'
    : view === 'live' ? `camserver — ${camera ?? 'live'}`
    : `camserver — recordings${selected ? ` of ${selected}` : ''}`;
}

function route() {
  selected = new URLSearchParams(location.search).get('camera') || null;
  setRecordingsCamera(selected);
  show();
  const player = PLAYER_HASH.exec(location.hash);
  if (player) openPlayerByName(decodeURIComponent(player[1]));
  else closePlayer();
}

// Links within the page (tabs, tiles, "All cameras") change the view without loading the page again;
// with a modifier key or another button they do what links do (a new tab, say).
function onClick(e) {
  const a = e.target.closest?.('a[data-nav]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
}

// With a login in use, the header offers to log out (a shared tablet on the wall, a borrowed phone).
async function initSession() {
  const session = await api('/api/session').catch(() => null);
  if (!session?.login) return;
  const button = $('logout-button');
  button.querySelector('.label').textContent = `Log out ${session.user ?? ''}`.trim();
  button.hidden = false;
  button.addEventListener('click', async () => {
    try {
      await api('/logout', { method: 'POST' });
      toLogin();
    } catch (err) {
      toast(err.message);
    }
  });
}

initLive();
initGrid();
initLatest();
initPlayer();
initRecordings();
on('cameras', (changed) => {
  if (changed) show();
});
document.addEventListener('click', onClick);
window.addEventListener('hashchange', route);
window.addEventListener('popstate', route);
window.addEventListener('camserver-navigate', route);
route();
connect();
initSession();
