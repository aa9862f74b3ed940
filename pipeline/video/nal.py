"""H.264's bitstream as far as camserver reads it: NAL units in Annex B, and the sequence parameter set.

A video message's header says the picture's size and profile, but a peer can say anything: the
decoder of the bus (pipeline.protocol) reads them from the SPS itself, as a browser's decoder
will. Only the fields up to the picture size are read (ITU-T H.264 7.3.2.1.1); everything is
bounded, so a hostile SPS costs a ProtocolError, never a loop or an allocation of its choosing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
# Profiles whose SPS carries chroma format, bit depths and scaling lists (7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_START_CODE = re.compile(b"\x00\x00\x01")
MAX_MACROBLOCKS_SIDE = 8192 // 16


class BitstreamError(ValueError):
    """An H.264 structure that cannot be read: truncated, out of range, or not what it claims."""


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B buffer, start codes (3 or 4 bytes) and trailing zero bytes removed."""
    starts = [match.end() for match in _START_CODE.finditer(data)]
    units = []
    for index, start in enumerate(starts):
        end = starts[index + 1] - 3 if index + 1 < len(starts) else len(data)
        unit = data[start:end].rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def starts_with_start_code(data: bytes) -> bool:
    return data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01"))


@dataclass(frozen=True, slots=True)
class Sps:
    """What the SPS says of the stream: its profile, constraint flags, level and picture size."""

    profile_idc: int
    constraints: int
    level_idc: int
    width: int
    height: int

    @property
    def codec(self) -> str:
        """The RFC 6381 codec string a browser's MediaSource asks about: ``avc1.PPCCLL``."""
        return f"avc1.{self.profile_idc:02x}{self.constraints:02x}{self.level_idc:02x}"


class _Bits:
    """Reads an RBSP bit by bit, with Exp-Golomb codes; BitstreamError past its end."""

    def __init__(self, rbsp: bytes) -> None:
        self._value = int.from_bytes(rbsp, "big")
        self._left = len(rbsp) * 8

    def u(self, count: int) -> int:
        if count > self._left:
            raise BitstreamError("SPS ends early")
        self._left -= count
        return (self._value >> self._left) & ((1 << count) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise BitstreamError("SPS has an Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)

    def bounded(self, maximum: int, what: str) -> int:
        value = self.ue()
        if value > maximum:
            raise BitstreamError(f"SPS {what} is {value}, above {maximum}")
        return value


def _rbsp(unit: bytes) -> bytes:
    """The payload of a NAL unit with its emulation prevention bytes (00 00 03) taken out."""
    return unit[1:].replace(b"\x00\x00\x03", b"\x00\x00")


def parse_sps(unit: bytes) -> Sps:
    """The profile, level and cropped picture size of an SPS NAL unit (without start code)."""
    if not unit or nal_type(unit) != NAL_SPS:
        raise BitstreamError("not an SPS NAL unit")
    bits = _Bits(_rbsp(unit))
    profile_idc, constraints, level_idc = bits.u(8), bits.u(8), bits.u(8)
    bits.bounded(31, "seq_parameter_set_id")
    chroma_format_idc, separate_planes = 1, 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.bounded(3, "chroma_format_idc")
        if chroma_format_idc == 3:
            separate_planes = bits.u(1)
        bits.bounded(6, "bit_depth_luma_minus8")
        bits.bounded(6, "bit_depth_chroma_minus8")
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.bounded(12, "log2_max_frame_num_minus4")
    poc_type = bits.bounded(2, "pic_order_cnt_type")
    if poc_type == 0:
        bits.bounded(12, "log2_max_pic_order_cnt_lsb_minus4")
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.bounded(255, "num_ref_frames_in_pic_order_cnt_cycle")):
            bits.se()
    bits.bounded(16, "max_num_ref_frames")
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.bounded(MAX_MACROBLOCKS_SIDE - 1, "pic_width_in_mbs_minus1") + 1
    height_units = bits.bounded(MAX_MACROBLOCKS_SIDE - 1, "pic_height_in_map_units_minus1") + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    width, height = width_mbs * 16, (2 - frame_mbs_only) * height_units * 16
    if bits.u(1):  # frame_cropping_flag
        chroma = 0 if separate_planes else chroma_format_idc
        unit_x = 1 if chroma == 0 else (1 if chroma == 3 else 2)
        unit_y = (2 - frame_mbs_only) * (1 if chroma in (0, 2, 3) else 2)
        left, right, top, bottom = (bits.bounded(MAX_MACROBLOCKS_SIDE * 16, "crop offset") for _ in range(4))
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if width < 1 or height < 1:
        raise BitstreamError(f"SPS crops the picture to {width}x{height}")
    return Sps(profile_idc, constraints, level_idc, width, height)


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            delta = bits.se()
            if not -128 <= delta <= 127:
                raise BitstreamError(f"SPS scaling list delta {delta} out of range")
            following = (last + delta + 256) % 256
        last = following or last
