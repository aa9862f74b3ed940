"""H.264 access units as fragmented MP4 for Media Source Extensions, the bytes go2rtc's protocol sends.

A browser's MediaSource takes one init segment (``ftyp`` + ``moov``: the track and its decoder
configuration, the avcC, but no samples) and then media segments (``moof`` + ``mdat``), here one
per frame so that a frame reaches the viewer as soon as the camera's encoder lets go of it. The
same bytes can go to disk: a file of them is a valid fragmented MP4.

The bus carries each access unit in Annex B form (start codes) with the SPS and PPS in front of
every key frame; MP4 wants each NAL unit prefixed by its length instead, and the parameter sets
once, in the avcC, so they are left out of the samples. Times are in 90 kHz units, RTP's clock
for video, which is what go2rtc's clients and Frigate expect.

Only ``struct`` is used: every box is size + type + payload (``_box``), and the few that vary per
frame are small enough to write by hand without a muxer.
"""

from __future__ import annotations

import struct

from pipeline.video.nal import NAL_AUD, NAL_PPS, NAL_SPS, nal_type, split_annexb

__all__ = ["TIMESCALE", "Track", "codec_string", "init_segment", "media_segment", "split_annexb"]

TIMESCALE = 90_000
TRACK_ID = 1
# Sample flags (ISO/IEC 14496-12 8.8.3.1): a key frame depends on no other sample (sample_depends_on 2);
# any other frame depends on others (1) and is not a sync sample (sample_is_non_sync_sample 1).
KEY_SAMPLE_FLAGS = 0x02000000
DELTA_SAMPLE_FLAGS = 0x01010000
# tfhd: base data offsets are the start of the moof, so a fragment is self-contained (what MSE requires).
DEFAULT_BASE_IS_MOOF = 0x020000
# trun: data-offset, sample-duration, sample-size and sample-flags present.
TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400
# The first frame's duration, before there is an interval to measure: 1/10 s, camserver's usual rate.
NOMINAL_DURATION = TIMESCALE // 10
# Parameter sets live in the avcC, and an access unit delimiter has no place in MP4 (ISO/IEC 14496-15 5.3.2).
_NOT_IN_SAMPLES = frozenset({NAL_SPS, NAL_PPS, NAL_AUD})
_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)  # identity, 16.16 and 2.30


def _box(kind: bytes, *payload: bytes) -> bytes:
    """One ISO BMFF box: 32-bit size (header included), four-character type, then the payload."""
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    """A box whose payload starts with a version byte and 24 bits of flags."""
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def codec_string(sps: bytes) -> str:
    """The RFC 6381 codec a MediaSource is asked about, ``avc1.PPCCLL``: SPS bytes 1-3 in hex."""
    if len(sps) < 4:
        raise ValueError("an SPS has at least 4 bytes")
    return f"avc1.{sps[1:4].hex()}"


def _avcc(sps: bytes, pps: bytes) -> bytes:
    """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1): one SPS, one PPS, 4-byte NAL lengths.

    The high-profile extension (chroma format, bit depths) is left out, as many muxers do: decoders
    read those from the SPS itself.
    """
    if len(sps) < 4 or nal_type(sps) != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    if not pps or nal_type(pps) != NAL_PPS:
        raise ValueError("not a PPS NAL unit")
    return _box(b"avcC", bytes([1, sps[1], sps[2], sps[3], 0xFC | 3, 0xE0 | 1]),
                struct.pack(">H", len(sps)), sps, b"\x01", struct.pack(">H", len(pps)), pps)


def init_segment(sps: bytes, pps: bytes, width: int, height: int) -> bytes:
    """``ftyp`` + ``moov`` for one 90 kHz H.264 track: what a MediaSource needs before any fragment.

    ``sps`` and ``pps`` are single NAL units without start codes. The sample tables are empty and
    ``mvex`` says the samples come in fragments.
    """
    if not (0 < width < 65536 and 0 < height < 65536):
        raise ValueError(f"picture size {width}x{height} out of range")
    ftyp = _box(b"ftyp", b"iso5", struct.pack(">I", 512), b"iso5", b"iso6", b"mp41", b"avc1")
    mvhd = _full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, 0), struct.pack(">IH", 0x00010000, 0x0100),
                     bytes(10), _MATRIX, bytes(24), struct.pack(">I", TRACK_ID + 1))
    tkhd = _full_box(b"tkhd", 0, 0x3, struct.pack(">IIIII", 0, 0, TRACK_ID, 0, 0), bytes(8),
                     struct.pack(">HHHH", 0, 0, 0, 0), _MATRIX, struct.pack(">II", width << 16, height << 16))
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, 0, 0x55C4, 0))  # language "und"
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I4s", 0, b"vide"), bytes(12), b"VideoHandler\x00")
    avc1 = _box(b"avc1", bytes(6), struct.pack(">H", 1), bytes(16), struct.pack(">HH", width, height),
                struct.pack(">IIIH", 0x00480000, 0x00480000, 0, 1), bytes(32), struct.pack(">Hh", 0x0018, -1),
                _avcc(sps, pps))
    stbl = _box(b"stbl", _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
                _full_box(b"stts", 0, 0, struct.pack(">I", 0)), _full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
                _full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)), _full_box(b"stco", 0, 0, struct.pack(">I", 0)))
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
    minf = _box(b"minf", _full_box(b"vmhd", 0, 1, bytes(8)), dinf, stbl)
    trak = _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))
    mvex = _box(b"mvex", _full_box(b"trex", 0, 0, struct.pack(">IIIII", TRACK_ID, 1, 0, 0, 0)))
    return ftyp + _box(b"moov", mvhd, trak, mvex)


def media_segment(sequence: int, decode_time: int, duration: int, key: bool, nal_units: list[bytes]) -> bytes:
    """``moof`` + ``mdat`` holding one sample: the NAL units, each after its 4-byte length.

    ``decode_time`` and ``duration`` are in 90 kHz units. A ``duration`` below 1 is refused
    (ValueError), not clamped: Safari's MediaSource stalls on a zero-length sample, and a caller
    that computes one has a bug worth seeing (Track never does). Parameter sets and access unit
    delimiters are dropped, since the avcC carries the former; a sample left with nothing is refused too.
    """
    if duration < 1:
        raise ValueError(f"sample duration {duration} is below 1: Safari cannot play a zero-length sample")
    if not 0 <= decode_time < 1 << 64 or not 0 <= sequence < 1 << 32:
        raise ValueError("decode time or sequence number out of range")
    data = b"".join(struct.pack(">I", len(unit)) + unit
                    for unit in nal_units if unit and nal_type(unit) not in _NOT_IN_SAMPLES)
    if not data:
        raise ValueError("an access unit with no picture data")
    flags = KEY_SAMPLE_FLAGS if key else DELTA_SAMPLE_FLAGS

    def moof(data_offset: int) -> bytes:
        trun = _full_box(b"trun", 0, TRUN_FLAGS, struct.pack(">IiIII", 1, data_offset, duration, len(data), flags))
        traf = _box(b"traf", _full_box(b"tfhd", 0, DEFAULT_BASE_IS_MOOF, struct.pack(">I", TRACK_ID)),
                    _full_box(b"tfdt", 1, 0, struct.pack(">Q", decode_time)), trun)
        return _box(b"moof", _full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), traf)

    # The data offset counts from the moof's first byte to the sample: past the moof and mdat's header.
    size = len(moof(0))
    return moof(size + 8) + _box(b"mdat", data)


class Track:
    """One camera's live track: the init segment, made once, and a fragment per access unit.

    One Track serves every viewer of a camera, so each fragment is made once and shared. Decode
    times come from the capture ``ts`` (Unix seconds) relative to the first frame, so the track
    keeps the scene's pace whatever frames were dropped; they always increase, as MSE requires.
    """

    def __init__(self, sps: bytes, pps: bytes, width: int, height: int) -> None:
        self.codec = codec_string(sps)
        self.init = init_segment(sps, pps, width, height)
        self.sequence = 0
        self._origin: float | None = None  # the ts that decode time 0 stands for
        self._last_time = -1
        self._last_duration = NOMINAL_DURATION

    def fragment(self, ts: float, key: bool, access_unit: bytes) -> bytes:
        """The moof + mdat of one Annex B access unit captured at ``ts``; ValueError if it holds no picture.

        A ts that repeats or goes backwards (a clock stepped back, a duplicated frame) moves the
        origin on, so the frame gets one interval after the one before and the frames after it keep
        their spacing, rather than all being squeezed together until the clock catches up.

        Each sample's duration is the interval since the frame before, as the estimate of when the
        next one comes (a frame's successor is not known yet, and waiting for it would cost a frame
        of latency); the first gets 1/10 s, and a frame whose ts did not advance reuses the
        previous interval, never 0 or a single tick.
        """
        units = split_annexb(access_unit)
        if self._origin is None:
            self._origin = ts
        time = round((ts - self._origin) * TIMESCALE)
        if self._last_time < 0:
            duration = NOMINAL_DURATION
        elif time > self._last_time:
            duration = time - self._last_time
        else:
            duration = self._last_duration
            time = self._last_time + duration
            self._origin = ts - time / TIMESCALE
        segment = media_segment(self.sequence + 1, time, duration, key, units)
        self.sequence += 1
        self._last_time, self._last_duration = time, duration
        return segment
