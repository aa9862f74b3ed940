"""pipeline.video.fmp4: real H.264 from libx264, wrapped as fMP4, decoded again by FFmpeg (PyAV).

No mocks: the stream is encoded here, the init segment and one fragment per frame are
concatenated as a MediaSource would receive them, and FFmpeg's MP4 demuxer and H.264 decoder must
get back the same pictures, at the times that were fed in, as decoding the raw Annex B stream.
"""

from __future__ import annotations

import io
import itertools
import struct
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline.video import fmp4
from pipeline.video.nal import parse_sps

WIDTH, HEIGHT, FRAMES = 320, 240, 40
T0 = 1_700_000_000.25  # a capture time of today's size, where a float's precision is coarsest
# Boxes that hold boxes, and how many bytes of their own fields come before the first child.
CONTAINERS = {b"moov": 0, b"trak": 0, b"mdia": 0, b"minf": 0, b"dinf": 0, b"stbl": 0, b"mvex": 0,
              b"moof": 0, b"traf": 0, b"dref": 8, b"stsd": 8, b"avc1": 78}


@dataclass(frozen=True)
class Encoded:
    """A libx264 stream: each packet's Annex B bytes and key flag, its parameter sets and pictures."""

    packets: list[tuple[bool, bytes]]
    sps: bytes
    pps: bytes
    pictures: list[np.ndarray]  # the RGB frames that went in


def _picture(index: int) -> np.ndarray:
    """Gradients that move a little every frame, so that P-frames carry something."""
    x, y = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    return np.stack([(x + 4 * index) % 256, (y + 2 * index) % 256, ((x + y) // 2 + 3 * index) % 256],
                    axis=-1).astype(np.uint8)


def _parameter_sets(first_packet: bytes, extradata: bytes | None) -> tuple[bytes, bytes]:
    """The SPS and PPS: in band before the first IDR, or else in the encoder's extradata (Annex B or avcC)."""
    units = fmp4.split_annexb(first_packet)
    if not any(unit[0] & 0x1F == 7 for unit in units):
        assert extradata, "libx264 gave the parameter sets neither in band nor as extradata"
        if extradata[0] == 1:  # avcC: 5 header bytes, SPS count, SPS length + SPS, PPS count, PPS length + PPS
            sps_length = int.from_bytes(extradata[6:8], "big")
            sps = extradata[8:8 + sps_length]
            at = 8 + sps_length + 1
            return sps, extradata[at + 2:at + 2 + int.from_bytes(extradata[at:at + 2], "big")]
        units = fmp4.split_annexb(extradata)
    sps = next(unit for unit in units if unit[0] & 0x1F == 7)
    pps = next(unit for unit in units if unit[0] & 0x1F == 8)
    return sps, pps


@pytest.fixture(scope="module")
def encoded() -> Encoded:
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = Fraction(1, 90000)
    codec.options = {"tune": "zerolatency", "bf": "0", "g": "20", "preset": "ultrafast"}
    pictures, packets = [], []
    for index in range(FRAMES):
        pictures.append(_picture(index))
        frame = av.VideoFrame.from_ndarray(pictures[-1], format="rgb24").reformat(format="yuv420p")
        frame.pts = index * 9000
        packets += codec.encode(frame)
    packets += codec.encode(None)
    assert len(packets) == FRAMES and packets[0].is_keyframe
    sps, pps = _parameter_sets(bytes(packets[0]), codec.extradata)
    return Encoded([(packet.is_keyframe, bytes(packet)) for packet in packets], sps, pps, pictures)


def _fmp4(encoded: Encoded, times: list[float] | None = None, count: int = FRAMES) -> tuple[fmp4.Track, bytes]:
    track = fmp4.Track(encoded.sps, encoded.pps, WIDTH, HEIGHT)
    times = times or [T0 + index / 10 for index in range(count)]
    fragments = [track.fragment(ts, key, data) for ts, (key, data) in zip(times, encoded.packets, strict=False)]
    return track, track.init + b"".join(fragments)


def _decode_mp4(data: bytes) -> tuple[list[np.ndarray], list[bool], list[tuple[int, int]]]:
    """FFmpeg's reading of an MP4: each picture (RGB), whether it was a key frame, and its packet's (dts, duration)."""
    pictures, keys, times = [], [], []
    with av.open(io.BytesIO(data), format="mp4") as container:
        stream = container.streams.video[0]
        assert stream.time_base == Fraction(1, 90000)
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            times.append((packet.dts, packet.duration))
            for frame in packet.decode():
                assert (frame.width, frame.height) == (WIDTH, HEIGHT)
                pictures.append(frame.to_ndarray(format="rgb24"))
                keys.append(frame.key_frame)
    return pictures, keys, times


def _decode_annexb(encoded: Encoded) -> list[np.ndarray]:
    decoder = av.CodecContext.create("h264", "r")
    pictures = []
    for _, data in encoded.packets:
        for packet in decoder.parse(data):
            pictures += [frame.to_ndarray(format="rgb24") for frame in decoder.decode(packet)]
    for packet in decoder.parse(None):
        pictures += [frame.to_ndarray(format="rgb24") for frame in decoder.decode(packet)]
    pictures += [frame.to_ndarray(format="rgb24") for frame in decoder.decode(None)]
    return pictures


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --- a tiny box walker ------------------------------------------------------------------------------------

def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]; asserts that the sizes tile it exactly."""
    end = len(data) if end is None else end
    found = []
    while start < end:
        size, kind = struct.unpack_from(">I4s", data, start)
        assert size >= 8 and start + size <= end, f"box {kind!r} at {start} has size {size}"
        found.append((kind, start + 8, start + size))
        start += size
    assert start == end
    return found


def _tree(data: bytes, start: int = 0, end: int | None = None, prefix: str = "") -> dict[str, tuple[int, int]]:
    """Every box by path ("moov/trak/tkhd"), with its payload's (start, end); the first of a repeated path wins."""
    paths: dict[str, tuple[int, int]] = {}
    for kind, payload, box_end in _boxes(data, start, end):
        path = prefix + kind.decode("latin-1")
        paths.setdefault(path, (payload, box_end))
        if kind in CONTAINERS:
            for child, span in _tree(data, payload + CONTAINERS[kind], box_end, path + "/").items():
                paths.setdefault(child, span)
    return paths


def _payload(data: bytes, tree: dict[str, tuple[int, int]], path: str) -> bytes:
    start, end = tree[path]
    return data[start:end]


def _fragment_fields(fragment: bytes) -> dict[str, int]:
    """What one moof + mdat says: sequence, tfhd flags, decode time, and the one trun sample."""
    tree = _tree(fragment)
    sequence, = struct.unpack(">4xI", _payload(fragment, tree, "moof/mfhd"))
    tfhd_flags, track_id = struct.unpack(">II", _payload(fragment, tree, "moof/traf/tfhd"))
    version_flags, decode_time = struct.unpack(">IQ", _payload(fragment, tree, "moof/traf/tfdt"))
    trun_flags, count, offset, duration, size, flags = struct.unpack(">IIiIII", _payload(fragment, tree,
                                                                                        "moof/traf/trun"))
    return {"sequence": sequence, "tfhd_flags": tfhd_flags & 0xFFFFFF, "track_id": track_id,
            "tfdt_version": version_flags >> 24, "decode_time": decode_time, "trun_flags": trun_flags & 0xFFFFFF,
            "count": count, "data_offset": offset, "duration": duration, "size": size, "flags": flags,
            "mdat_start": tree["mdat"][0], "mdat_end": tree["mdat"][1]}


# --- the tests --------------------------------------------------------------------------------------------

def test_ffmpeg_decodes_the_fmp4_to_the_same_pictures_as_the_raw_stream(encoded: Encoded) -> None:
    _, data = _fmp4(encoded)
    pictures, keys, _ = _decode_mp4(data)
    reference = _decode_annexb(encoded)
    assert len(reference) == FRAMES
    assert len(pictures) == FRAMES
    assert keys[0] and keys[20] and not any(keys[1:20])
    assert max(_mad(got, want) for got, want in zip(pictures, reference, strict=True)) < 0.5
    # And they are the pictures that went in, give or take the lossy coding and the colour conversion.
    assert max(_mad(got, sent) for got, sent in zip(pictures, encoded.pictures, strict=True)) < 12


def test_decode_times_follow_the_capture_times_and_always_increase(encoded: Encoded) -> None:
    times = [T0 + index / 10 for index in range(10)]  # 10 fps
    times += [times[-1] + 1.1 + index / 10 for index in range(5)]  # a one-second gap, then 10 fps again
    times += [times[-1]]  # the same ts twice
    times += [times[-1] - 0.5 + index / 10 for index in range(5)]  # a clock stepped half a second back
    times += [times[-1] + (index + 1) / 10 for index in range(FRAMES - len(times))]
    track, data = _fmp4(encoded, times)
    pictures, _, demuxed = _decode_mp4(data)
    assert len(pictures) == len(demuxed) == FRAMES

    decode_times = [dts for dts, _ in demuxed]
    durations = [duration for _, duration in demuxed]
    assert all(later > earlier for earlier, later in itertools.pairwise(decode_times))
    assert min(durations) >= 1
    # Until the clock misbehaves, decode time is the capture time since the first frame, at 90 kHz.
    assert decode_times[:15] == [round((ts - T0) * 90000) for ts in times[:15]]
    assert decode_times[10] - decode_times[9] == 90000 + 9000
    assert durations[:11] == [9000] * 10 + [99000]  # the first is nominal, then the interval since the last
    # The repeated ts and the step back each cost one interval, not a squeeze: the spacing goes on.
    assert durations[15] == durations[16] == 9000
    assert all(later - earlier == 9000 for earlier, later in itertools.pairwise(decode_times[14:]))
    # What the boxes say is what FFmpeg read.
    fragments = [_fragment_fields(data[start:end]) for kind, start, end in _fragments(data)]
    assert [(fields["decode_time"], fields["duration"]) for fields in fragments] == demuxed
    assert [fields["sequence"] for fields in fragments] == list(range(1, FRAMES + 1)) and track.sequence == FRAMES


def _fragments(data: bytes) -> list[tuple[bytes, int, int]]:
    """(b"moof", start, end) of each moof + mdat pair after the init segment."""
    boxes = _boxes(data)
    assert [kind for kind, _, _ in boxes[:2]] == [b"ftyp", b"moov"]
    pairs = boxes[2:]
    assert [kind for kind, _, _ in pairs] == [b"moof", b"mdat"] * (len(pairs) // 2)
    return [(b"moof", moof[1] - 8, mdat[2]) for moof, mdat in zip(pairs[::2], pairs[1::2], strict=True)]


def test_init_segment_boxes_and_avcc(encoded: Encoded) -> None:
    init = fmp4.init_segment(encoded.sps, encoded.pps, WIDTH, HEIGHT)
    tree = _tree(init)
    for path in ["ftyp", "moov/mvhd", "moov/trak/tkhd", "moov/trak/mdia/mdhd", "moov/trak/mdia/hdlr",
                 "moov/trak/mdia/minf/vmhd", "moov/trak/mdia/minf/dinf/dref/url ",
                 "moov/trak/mdia/minf/stbl/stsd/avc1/avcC", "moov/trak/mdia/minf/stbl/stts",
                 "moov/trak/mdia/minf/stbl/stsc", "moov/trak/mdia/minf/stbl/stsz", "moov/trak/mdia/minf/stbl/stco",
                 "moov/mvex/trex"]:
        assert path in tree, path
    ftyp = _payload(init, tree, "ftyp")
    assert ftyp[:4] in (b"isom", b"iso5") and {b"iso5", b"iso6", b"mp41", b"avc1"} <= {
        ftyp[at:at + 4] for at in range(8, len(ftyp), 4)}
    tkhd = _payload(init, tree, "moov/trak/tkhd")
    assert struct.unpack(">II", tkhd[-8:]) == (WIDTH << 16, HEIGHT << 16)
    assert struct.unpack(">I", tkhd[12:16])[0] == 1  # track id
    assert struct.unpack(">I", _payload(init, tree, "moov/trak/mdia/mdhd")[12:16])[0] == 90000
    assert _payload(init, tree, "moov/trak/mdia/hdlr")[8:12] == b"vide"
    avc1 = _payload(init, tree, "moov/trak/mdia/minf/stbl/stsd/avc1")
    assert struct.unpack(">HH", avc1[24:28]) == (WIDTH, HEIGHT)
    for table in ["stts", "stsc", "stco"]:
        assert _payload(init, tree, f"moov/trak/mdia/minf/stbl/{table}") == bytes(8), table  # no entries
    assert _payload(init, tree, "moov/trak/mdia/minf/stbl/stsz") == bytes(12)
    assert struct.unpack(">4xII", _payload(init, tree, "moov/mvex/trex")[:12]) == (1, 1)  # track 1, description 1

    avcc = _payload(init, tree, "moov/trak/mdia/minf/stbl/stsd/avc1/avcC")
    assert avcc[0] == 1 and avcc[1:4] == encoded.sps[1:4]
    assert avcc[4] & 0x03 == 3 and avcc[5] & 0x1F == 1  # 4-byte lengths, one SPS
    sps_length = int.from_bytes(avcc[6:8], "big")
    assert avcc[8:8 + sps_length] == encoded.sps
    at = 8 + sps_length
    assert avcc[at] == 1 and avcc[at + 3:] == encoded.pps and int.from_bytes(avcc[at + 1:at + 3], "big") == len(
        encoded.pps)


def test_fragment_boxes_flags_and_data_offset(encoded: Encoded) -> None:
    _, data = _fmp4(encoded, count=21)
    for index, (_, start, end) in enumerate(_fragments(data)):
        fragment = data[start:end]
        tree = _tree(fragment)
        assert list(tree) == ["moof", "moof/mfhd", "moof/traf", "moof/traf/tfhd", "moof/traf/tfdt",
                              "moof/traf/trun", "mdat"]
        fields = _fragment_fields(fragment)
        key, annexb = encoded.packets[index]
        assert fields["tfhd_flags"] == 0x020000 and fields["track_id"] == 1 and fields["tfdt_version"] == 1
        assert fields["trun_flags"] & 0x701 == 0x701 and fields["count"] == 1
        assert fields["flags"] == (0x02000000 if key else 0x01010000)
        assert key == (index in (0, 20))
        # The data offset (from the moof's first byte) lands on the mdat's first payload byte.
        assert fields["data_offset"] == fields["mdat_start"]
        assert fields["size"] == fields["mdat_end"] - fields["mdat_start"]
        # The mdat is the access unit's picture NAL units, each after its length; parameter sets are in the avcC.
        units = [unit for unit in fmp4.split_annexb(annexb) if unit[0] & 0x1F not in (7, 8, 9)]
        assert fragment[fields["mdat_start"]:] == b"".join(len(unit).to_bytes(4, "big") + unit for unit in units)


def test_a_wrong_data_offset_does_not_decode_to_the_same_pictures(encoded: Encoded) -> None:
    """The decoding test can fail: with every trun pointing 4 bytes late, FFmpeg must not get the pictures back."""
    _, data = _fmp4(encoded)
    broken = bytearray(data)
    for _, start, end in _fragments(data):
        trun_start, _ = _tree(data, start, end)["moof/traf/trun"]
        offset_at = trun_start + 8
        broken[offset_at:offset_at + 4] = (int.from_bytes(data[offset_at:offset_at + 4], "big") + 4).to_bytes(4, "big")
    reference = _decode_annexb(encoded)
    try:
        pictures, _, _ = _decode_mp4(bytes(broken))
    except av.error.FFmpegError:
        return
    assert len(pictures) != FRAMES or max(_mad(got, want) for got, want in zip(pictures, reference, strict=True)) > 5


def test_split_annexb_takes_both_start_codes_and_keeps_what_samples_need() -> None:
    aud, sps, pps, idr, slice_ = b"\x09\xf0", b"\x67\x42\xc0\x0d\xab", b"\x68\xce\x3c\x80", b"\x65\x88\x84", b"\x41\x9a"
    assert fmp4.split_annexb(b"\x00\x00\x00\x01" + idr + b"\x00\x00\x01" + slice_) == [idr, slice_]
    assert fmp4.split_annexb(b"\x00\x00\x01" + idr) == [idr]
    # Trailing zero bytes before a 4-byte start code belong to the start code, not the NAL unit before.
    buffer = b"".join(b"\x00\x00\x00\x01" + unit for unit in (aud, sps, pps)) + b"\x00\x00\x01" + idr
    assert fmp4.split_annexb(buffer) == [aud, sps, pps, idr]
    assert fmp4.split_annexb(b"\x00\x00\x01" + slice_ + b"\x00\x00\x00\x00\x01" + idr) == [slice_, idr]
    # The AUD and parameter sets stay out of the sample.
    segment = fmp4.media_segment(7, 0, 3000, True, fmp4.split_annexb(buffer))
    fields = _fragment_fields(segment)
    assert segment[fields["mdat_start"]:] == len(idr).to_bytes(4, "big") + idr
    assert fields["sequence"] == 7 and fields["duration"] == 3000


def test_zero_duration_and_empty_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="duration"):
        fmp4.media_segment(1, 0, 0, True, [b"\x65\x88"])
    with pytest.raises(ValueError, match="no picture"):
        fmp4.media_segment(1, 0, 9000, True, [b"\x67\x42\xc0\x0d", b"\x68\xce"])


def test_codec_string_is_sps_bytes_one_to_three(encoded: Encoded) -> None:
    track = fmp4.Track(encoded.sps, encoded.pps, WIDTH, HEIGHT)
    profile, constraints, level = encoded.sps[1], encoded.sps[2], encoded.sps[3]
    assert track.codec == f"avc1.{profile:02x}{constraints:02x}{level:02x}" == parse_sps(encoded.sps).codec
    assert track.init == fmp4.init_segment(encoded.sps, encoded.pps, WIDTH, HEIGHT)
