"""JPEG frames to the pictures x264 takes, the same way for the recorder and the live encoder.

FFmpeg's mjpeg decoder hands over the JPEG's own Y'CbCr planes (or grey plane) at full range, and
one swscale pass, on one thread, makes them 4:2:0 at limited range: what browsers play and every
player gets right. Nothing goes through BGR, and the matrix stays JPEG's BT.601, which the
encoders then signal.
"""

from __future__ import annotations

import av
from av.video.reformatter import ColorRange, Interpolation, VideoReformatter

# AVCOL_SPC_BT470BG: the BT.601 matrix of JPEG's Y'CbCr, as FFmpeg's decoder tags it; kept, not converted.
BT601 = 5


class JpegPictures:
    """A JPEG decoder and a scaler that keep their FFmpeg contexts from frame to frame."""

    def __init__(self) -> None:
        self._decoder = av.CodecContext.create("mjpeg", "r")
        self._decoder.thread_count = 1
        # A JPEG cut short (a dropped connection) is refused rather than encoded with a grey lower part.
        self._decoder.options = {"err_detect": "explode"}
        self._reformatter = VideoReformatter()

    def decode(self, jpeg: bytes) -> av.VideoFrame:
        """The JPEG's own planes, full range, at its own size; ValueError for bytes that are not a JPEG."""
        if not jpeg:  # an empty packet would put the decoder in draining mode for good
            raise ValueError("frame is empty")
        try:
            pictures = self._decoder.decode(av.Packet(jpeg))
        except av.FFmpegError as exc:
            raise ValueError(f"frame does not decode as a JPEG: {exc}") from exc
        if not pictures:
            raise ValueError("frame does not decode as a JPEG")
        return pictures[0]

    def to_420(self, picture: av.VideoFrame, size: tuple[int, int]) -> av.VideoFrame:
        """4:2:0 at limited range and ``size``, in one pass: only the range changes for a 4:2:0 JPEG of
        that size; 4:2:2 and 4:4:4 lose chroma resolution, grey gains neutral chroma, and a picture of
        another size (rare) is scaled by area averaging."""
        same_size = (picture.width, picture.height) == size
        return self._reformatter.reformat(
            picture, *size, format="yuv420p", src_color_range=ColorRange.JPEG, dst_color_range=ColorRange.MPEG,
            interpolation=Interpolation.FAST_BILINEAR if same_size else Interpolation.AREA, threads=1)
