// window.camserver: the page's state in one object, read by the automated browser tests.
export const cs = (window.camserver = {
  state: 'connecting',
  frames: 0, // frames shown in the live view
  lastSeq: null,
  camera: null, // the camera of the live view
  selected: null, // ?camera= of the URL: the camera page open, if any
  cameras: [], // every camera the page knows, sorted
  info: {}, // camera -> its status from the socket's "cameras" message
  tiles: {}, // camera -> { frames, playing } of its tile in the grid
  watching: [], // the cameras whose frames the socket was told to send
  received: {}, // camera -> frames the socket brought
  hiddenFrames: 0, // frames the socket brought while the tab was hidden
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
  view: 'live',
  recordings: [],
  recordingsCamera: null, // the camera the recordings list is kept to, if any
  player: null,
});
