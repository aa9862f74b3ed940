// One <img> showing a camera's newest frame. At most one JPEG decodes at a time, plus one waiting,
// so a slow decoder skips stale frames instead of building up a backlog; a frame that fails to
// decode leaves the last good one on screen rather than a broken-image icon.
export class Picture {
  constructor(img, onShown) {
    this.img = img;
    this.onShown = onShown; // called with each frame once it is on screen
    this.frame = null; // the frame on screen: what a snapshot saves
    this.url = null;
    this.decoding = false;
    this.waiting = null;
    this.generation = 0; // bumped by clear(): a decode begun before it is dropped
  }

  push(frame) {
    if (this.decoding) {
      this.waiting = frame;
      return;
    }
    this.decoding = true;
    const generation = this.generation;
    frame.blob ??= new Blob([frame.data], { type: 'image/jpeg' });
    const url = URL.createObjectURL(frame.blob);
    this.img.onload = () => this.decoded(generation, url, frame, true);
    this.img.onerror = () => this.decoded(generation, url, frame, false);
    this.img.src = url;
  }

  decoded(generation, url, frame, ok) {
    if (generation !== this.generation) {
      URL.revokeObjectURL(url);
      return;
    }
    this.decoding = false;
    if (ok) {
      if (this.url) URL.revokeObjectURL(this.url);
      this.url = url;
      this.frame = frame;
    } else {
      URL.revokeObjectURL(url);
      this.img.onload = this.img.onerror = null;
      if (this.url) this.img.src = this.url;
    }
    const next = this.waiting;
    this.waiting = null;
    if (ok) this.onShown(frame);
    if (next) this.push(next);
  }

  // Another camera, or none: nothing of the old one stays on screen or in memory.
  clear() {
    this.generation += 1;
    this.decoding = false;
    this.waiting = null;
    this.frame = null;
    this.img.onload = this.img.onerror = null;
    this.img.removeAttribute('src');
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
  }
}
