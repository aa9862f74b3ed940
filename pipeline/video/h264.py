"""One camera's JPEG frames to its live H.264 track: the encoder stage's work, free of sockets.

A browser plays H.264 through MSE with a tenth of MJPEG's bandwidth, but it can only start at a
key frame (an IDR) and needs the SPS and PPS first. So every IDR carries them in-band (x264's
repeat-headers) and in the message's ``config``; a key frame comes at least every
KEYFRAME_EVERY_S of capture time whatever the frame rate, and at once when asked (a new viewer
joined), so nobody waits a whole GOP. zerolatency and no B-frames: each frame leaves the encoder
as it goes in, one access unit per frame, so the track is never behind the JPEGs.

The JPEG is decoded as the recorder does it (pipeline/video/yuv.py), never going through BGR;
the matrix stays JPEG's BT.601 and the SPS says so.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
from av.video.frame import PictureType
from av.video.reformatter import ColorRange

from pipeline.protocol import Frame, Video
from pipeline.stage.ratelog import RateLimitedLog
from pipeline.video.nal import NAL_IDR, NAL_PPS, NAL_SPS, nal_type, parse_sps, split_annexb
from pipeline.video.yuv import BT601, JpegPictures

# A viewer joining between two forced key frames waits at most this long for one anyway.
KEYFRAME_EVERY_S = 2.0
TIME_BASE = Fraction(1, 1000)
START_CODE = b"\x00\x00\x00\x01"
NOMINAL_FPS = 30
# ultrafast: 2.7 ms a frame against veryfast's 3.7 at 640x480 on the demo scene, JPEG decoding
# included (tests/unit/test_h264_encoder.py prints it), a third more bytes at crf 23, and
# Constrained Baseline, which every browser and phone decodes.
# repeat-headers: SPS and PPS before every IDR, so any key frame starts a decoder on its own.
# keyint: x264's own key frames are a backstop only; KEYFRAME_EVERY_S of capture time rules.
ENCODER_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0", "crf": "23",
                   "x264-params": "repeat-headers=1:keyint=600:min-keyint=1"}

log = logging.getLogger("camserver.encoder")


class CameraEncoder:
    """Turns one camera's JPEG frames into its H.264 track, one ``Video`` message per frame.

    ``seq`` counts the camera's messages from 0 for as long as this object lives, across size
    changes and ``release()``, so a subscriber sees a gap only where frames were not encoded.
    """

    def __init__(self, camera: str, options: dict[str, str] | None = None) -> None:
        self.camera = camera
        self._options = dict(ENCODER_OPTIONS if options is None else options)
        self._seq = 0
        self._size: tuple[int, int] | None = None
        self._x264: av.VideoCodecContext | None = None
        self._jpeg: JpegPictures | None = None
        self._key_wanted = True
        self._last_key_ts = float("-inf")
        self._first_ts = 0.0
        self._last_pts = -1
        self._codec = ""
        self._notes = RateLimitedLog(log)

    @property
    def active(self) -> bool:
        """Whether an x264 encoder is open (it is, from the first frame to ``release()``)."""
        return self._x264 is not None

    def request_key(self) -> None:
        """Make the next frame an IDR: a new viewer starts decoding there."""
        self._key_wanted = True

    def encode(self, frame: Frame) -> list[Video]:
        """The access units of ``frame`` (one, with zerolatency); none for a JPEG that does not decode (warned)."""
        try:
            if self._jpeg is None:
                self._jpeg = JpegPictures()
            picture = self._jpeg.decode(frame.jpeg)
        except ValueError as exc:
            self._notes.warning("jpeg", "%s: skipping frame %d: %s", self.camera, frame.seq, exc)
            return []
        size = (picture.width - picture.width % 2, picture.height - picture.height % 2)
        if size != self._size:
            self._open(size, frame.ts)
        assert self._x264 is not None
        picture = self._jpeg.to_420(picture, size)
        # Milliseconds of capture time, never repeated: x264 refuses a pts that does not grow.
        picture.pts = max(round((frame.ts - self._first_ts) * 1000), self._last_pts + 1)
        picture.time_base = TIME_BASE
        self._last_pts = picture.pts
        # Every decoded JPEG says it is an I picture, and x264 obeys: only a due key frame may say so.
        picture.pict_type = PictureType.NONE
        if self._key_wanted or frame.ts - self._last_key_ts >= KEYFRAME_EVERY_S:
            picture.pict_type = PictureType.I
        return [self._message(bytes(packet), frame.ts) for packet in self._x264.encode(picture)]

    def release(self) -> None:
        """Free the x264 and JPEG decoders (nobody watches); the next frame opens new ones with a key frame."""
        self._x264 = self._jpeg = None
        self._size = None

    def _open(self, size: tuple[int, int], ts: float) -> None:
        """A new x264 encoder at ``size``, starting with a key frame: the first, or the source changed size."""
        if self._size is not None:
            log.info("%s: the source changed from %dx%d to %dx%d, starting a new track", self.camera,
                     *self._size, *size)
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = size
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = TIME_BASE
        # Without a rate x264 takes 1000 fps from the time base and signals level 5.2, which some
        # decoders refuse; the nominal rate only sets the level (3.0 at 640x480), capture time the pts.
        encoder.framerate = NOMINAL_FPS
        encoder.color_range = ColorRange.MPEG
        encoder.colorspace = BT601
        encoder.thread_count = 1  # one core per stage, and no frame-threading delay
        encoder.options = dict(self._options)
        encoder.open()
        self._x264, self._size = encoder, size
        self._first_ts, self._last_pts = ts, -1
        self._key_wanted = True

    def _message(self, unit: bytes, ts: float) -> Video:
        nals = split_annexb(unit)
        key = any(nal_type(nal) == NAL_IDR for nal in nals)
        config = b""
        if key:
            headers = [nal for nal in nals if nal_type(nal) in (NAL_SPS, NAL_PPS)]
            sps = next(nal for nal in headers if nal_type(nal) == NAL_SPS)  # repeat-headers puts it there
            self._codec = parse_sps(sps).codec
            config = b"".join(START_CODE + nal for nal in headers)
            self._key_wanted = False
            self._last_key_ts = ts
        assert self._size is not None
        video = Video(self.camera, self._seq, ts, key, *self._size, self._codec, unit, config)
        self._seq += 1
        return video
