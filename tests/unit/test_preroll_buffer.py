"""The pre-roll buffer: the last few seconds of capture time, whatever the frame rate or the drops."""

from __future__ import annotations

from pipeline.protocol import Frame
from pipeline.record.preroll import PreRoll

# Times that binary floats hold exactly, so that "exactly `seconds` old" is a meaningful boundary.
BASE = 1_700_000_000.0


def frame(seq: int, ts: float) -> Frame:
    """A frame whose payload does not matter: the buffer never looks inside it."""
    return Frame("cam0", seq, BASE + ts, 320, 240, False, b"\xff\xd8" + seq.to_bytes(4, "big"))


def filled(seconds: float, times: list[float]) -> PreRoll:
    buffer = PreRoll(seconds)
    for seq, ts in enumerate(times):
        buffer.add(frame(seq, ts))
    return buffer


def offsets(buffer: PreRoll, since: float = 0.0) -> list[float]:
    return [f.ts - BASE for f in buffer.since(BASE + since)]


def test_keeps_the_last_seconds_of_capture_time_not_a_number_of_frames() -> None:
    """Uneven spacing: a count-based buffer would keep too many frames here, or too few there."""
    buffer = filled(2.0, [0.0, 0.5, 0.75, 1.0, 1.25, 2.0, 2.25, 4.0])
    # Newest is 4.0: everything captured at or after 2.0 stays, the rest goes.
    assert offsets(buffer) == [2.0, 2.25, 4.0]
    assert len(buffer) == 3


def test_a_burst_of_frames_is_kept_whole_and_a_long_gap_empties_the_buffer() -> None:
    """Thirty frames within one second all fit in a 2 s buffer; after a 5 s drop only the newest is left."""
    burst = [i / 32 for i in range(30)]
    buffer = filled(2.0, burst)
    assert len(buffer) == 30
    buffer.add(frame(30, 6.0))
    assert offsets(buffer) == [6.0]


def test_dropped_frames_do_not_shorten_the_pre_roll() -> None:
    """At 8 fps with most frames dropped, the oldest frame kept is still about `seconds` old."""
    times = [seq / 8 for seq in range(80) if seq % 7 in (0, 3)]  # ~70 % of the frames lost on the way
    buffer = filled(1.5, times)
    kept = offsets(buffer)
    newest = times[-1]
    assert kept[-1] == newest
    assert all(newest - ts <= 1.5 for ts in kept)
    # The next older frame, now gone, was more than 1.5 s older than the newest one.
    first_dropped = times[times.index(kept[0]) - 1]
    assert newest - first_dropped > 1.5
    assert newest - kept[0] > 1.0  # the buffer spans nearly all of it despite the drops
    assert len(kept) < 1.5 * 8  # ...with fewer frames than a full 1.5 s at 8 fps would have


def test_since_returns_frames_at_or_after_a_time_oldest_first() -> None:
    buffer = filled(10.0, [0.0, 0.5, 1.0, 1.5, 2.0])
    assert offsets(buffer, since=1.0) == [1.0, 1.5, 2.0]
    assert offsets(buffer, since=1.25) == [1.5, 2.0]
    assert offsets(buffer, since=2.5) == []
    assert offsets(buffer, since=-100.0) == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_find_returns_a_kept_frame_by_seq_and_none_for_one_already_dropped() -> None:
    buffer = filled(1.0, [0.0, 0.5, 1.0, 1.5, 2.0])  # seq 0 and 1 have aged out
    found = buffer.find(3)
    assert found is not None and found.seq == 3 and found.ts == BASE + 1.5
    assert buffer.find(1) is None
    assert buffer.find(0) is None
    assert buffer.find(99) is None


def test_find_prefers_the_newest_frame_when_seq_numbers_repeat() -> None:
    """Capture restarted (seq back to 0) with a later clock: the buffer is not cleared, find must not mix them."""
    buffer = PreRoll(10.0)
    buffer.add(frame(0, 0.0))
    buffer.add(frame(1, 0.1))
    buffer.add(frame(0, 0.5))  # restarted capture, later ts
    found = buffer.find(0)
    assert found is not None and found.ts == BASE + 0.5


def test_an_earlier_ts_than_the_newest_means_capture_restarted_and_clears_the_buffer() -> None:
    """Frames from before a restart are another scene: they must not end up in a recording's pre-roll."""
    buffer = filled(10.0, [5.0, 5.5, 6.0])
    buffer.add(frame(0, 2.0))
    assert len(buffer) == 1
    assert offsets(buffer, since=-100.0) == [2.0]
    assert buffer.find(1) is None
    # And it goes on working from there.
    buffer.add(frame(1, 2.5))
    assert offsets(buffer, since=-100.0) == [2.0, 2.5]


def test_an_empty_buffer_finds_nothing() -> None:
    buffer = PreRoll(1.0)
    assert len(buffer) == 0
    assert buffer.since(0.0) == []
    assert buffer.find(0) is None
