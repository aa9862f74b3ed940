"""The bus's H.264 messages: real access units round-trip, and what a peer could make up is refused at decode.

The streams are encoded here with libx264 through PyAV, so the SPS parser is checked against the
encoder browsers will meet, at sizes that need cropping (1080 is 68 macroblocks minus 8 lines).
"""

from __future__ import annotations

from fractions import Fraction

import av
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.protocol import MAX_ACCESS_UNIT, ProtocolError, Video, decode, video_topic
from pipeline.video.nal import NAL_IDR, NAL_PPS, NAL_SPS, BitstreamError, nal_type, parse_sps, split_annexb

START = b"\x00\x00\x00\x01"


def encode_stream(width: int, height: int, count: int = 4, preset: str = "ultrafast",
                  pix_fmt: str = "yuv420p") -> list[bytes]:
    """``count`` access units (Annex B) of a moving gradient, the first an IDR with its SPS and PPS in-band.

    ultrafast gives the Baseline profile; slower presets High (or High 4:4:4 for a yuv444p picture).
    """
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, pix_fmt
    codec.time_base = Fraction(1, 90000)
    codec.options = {"tune": "zerolatency", "bf": "0", "g": "50", "preset": preset}
    packets = []
    for index in range(count):
        picture = np.zeros((height, width, 3), np.uint8)
        picture[:, :, 1] = (np.arange(width) * 2 + index * 9) % 256
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=pix_fmt)
        frame.pts = index * 9000
        packets += codec.encode(frame)
    packets += codec.encode(None)
    return [bytes(packet) for packet in packets]


def message(units: list[bytes], seq: int, **changes: object) -> Video:
    """The Video message of an encoded access unit, as an encoder would make it."""
    data = units[seq]
    nals = split_annexb(data)
    sps = next(unit for unit in split_annexb(units[0]) if nal_type(unit) == NAL_SPS)
    key = any(nal_type(unit) == NAL_IDR for unit in nals)
    config = b"".join(START + unit for unit in split_annexb(units[0]) if nal_type(unit) in (NAL_SPS, NAL_PPS))
    parsed = parse_sps(sps)
    fields: dict[str, object] = {"camera": "cam0", "seq": seq, "ts": 1_700_000_000.0 + seq / 10, "key": key,
                                 "width": parsed.width, "height": parsed.height, "codec": parsed.codec,
                                 "data": data, "config": config if key else b""}
    return Video(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stream() -> list[bytes]:
    return encode_stream(320, 180)


@pytest.mark.parametrize(("width", "height", "preset", "pix_fmt", "codec_prefix"), [
    (320, 180, "ultrafast", "yuv420p", "avc1.42"), (640, 480, "veryfast", "yuv420p", "avc1.64"),
    (1920, 1080, "veryfast", "yuv420p", "avc1.64"), (176, 136, "veryfast", "yuv444p", "avc1.f4"),
])
def test_the_sps_gives_the_cropped_size_and_the_codec_string(width: int, height: int, preset: str, pix_fmt: str,
                                                           codec_prefix: str) -> None:
    units = encode_stream(width, height, 1, preset, pix_fmt)
    sps = next(unit for unit in split_annexb(units[0]) if nal_type(unit) == NAL_SPS)
    parsed = parse_sps(sps)
    assert (parsed.width, parsed.height) == (width, height)
    assert parsed.codec == f"avc1.{sps[1]:02x}{sps[2]:02x}{sps[3]:02x}" and parsed.codec.startswith(codec_prefix)


def test_a_key_frame_and_the_next_one_round_trip(stream: list[bytes]) -> None:
    for seq in (0, 1):
        sent = message(stream, seq)
        parts = sent.encode()
        assert parts[0] == video_topic("cam0") == b"video.cam0"
        assert Video.decode(parts) == sent == decode(parts)
    assert message(stream, 0).key and not message(stream, 1).key


def test_annexb_splits_on_three_and_four_byte_start_codes() -> None:
    assert split_annexb(b"\x00\x00\x00\x01\x67\x01\x02\x00\x00\x01\x68\x03\x00\x00\x00\x01\x65\x04\x00") == [
        b"\x67\x01\x02", b"\x68\x03", b"\x65\x04"]
    assert split_annexb(b"") == [] and split_annexb(b"\x67\x01") == []


def hostile(stream: list[bytes]) -> dict[str, list[bytes]]:
    """Video messages a peer could make up, each wrong in one way."""
    key, delta = message(stream, 0), message(stream, 1)
    sps = next(unit for unit in split_annexb(key.config) if nal_type(unit) == NAL_SPS)
    pps = next(unit for unit in split_annexb(key.config) if nal_type(unit) == NAL_PPS)

    def with_header(base: Video, **header: object) -> list[bytes]:
        parts = base.encode()
        return [parts[0], msgpack.packb({**msgpack.unpackb(parts[1]), **header}), parts[2]]

    return {
        "a P frame called a key frame": with_header(delta, key=True, config=key.config),
        "an IDR called a delta frame": with_header(key, key=False, config=b""),
        "a key frame without its SPS and PPS": with_header(key, config=b""),
        "a delta frame carrying a config": with_header(delta, config=key.config),
        "a size the SPS does not have": with_header(key, w=1920, h=1080),
        "a profile the SPS does not have": with_header(key, codec="avc1.640028"),
        "a codec that is not avc1": with_header(key, codec="hvc1.1.6.L93"),
        "a huge size": with_header(delta, w=8192, h=8192),
        "a negative seq": with_header(key, seq=-1),
        "a config of two SPS": with_header(key, config=START + sps + START + sps + START + pps),
        "a truncated SPS": with_header(key, config=START + sps[:4] + START + pps),
        "an SPS of endless zero bits": with_header(key, config=START + sps[:4] + b"\x00" * 16 + START + pps),
        "an access unit that is not Annex B": [*with_header(delta)[:2], b"\x41\x9a" * 10],
        "an empty access unit": [*with_header(delta)[:2], b""],
        "an access unit too large": [*with_header(delta)[:2], START + b"\x41" * MAX_ACCESS_UNIT],
        "another camera's topic": [b"video.cam1", *delta.encode()[1:]],
        "two parts": delta.encode()[:2],
    }


@pytest.mark.parametrize("case", list(hostile(encode_stream(320, 180))))
def test_made_up_video_messages_are_refused_at_decode(stream: list[bytes], case: str) -> None:
    with pytest.raises(ProtocolError):
        decode(hostile(stream)[case])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(min_size=1, max_size=64))
def test_any_bytes_as_an_sps_give_a_sane_size_or_a_bitstream_error(raw: bytes) -> None:
    try:
        parsed = parse_sps(bytes([0x67]) + raw)
    except BitstreamError:
        return
    assert 1 <= parsed.width <= 8192 and 1 <= parsed.height <= 2 * 8192
