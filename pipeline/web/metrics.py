"""/metrics: the gateway's view of the pipeline in the Prometheus text format, read at scrape time.

Nothing is counted twice: ``GatewayCollector`` reads the hub (frames, fps, viewers, motion and
recording flags, episodes and recordings, latency, stage heartbeats and the counters the other
stages send with them), the gateway's bus decoder and the recordings' disk when Prometheus asks.
Each gateway has its own ``CollectorRegistry``, never prometheus_client's global one, so several
gateways in one process (tests) do not clash.

Metrics, all named ``camserver_*``, per ``camera`` where it applies:

- ``frames_received_total``, ``frames_offered_total`` (frames handed to viewers; a slow viewer's
  waiting frame is replaced by the next, never queued), ``frames_dropped_total`` (those replaced),
  ``camera_fps``, ``camera_online``, ``viewers``, ``motion`` and ``recording`` (0/1, believed only
  while the detector or recorder is up), ``episodes_total`` (motion_start events),
  ``recordings_saved_total`` (including the ones a restarted recorder recovers and announces again)
  and ``recordings_discarded_total``;
- ``frame_latency_seconds``: a histogram of a frame's capture ``ts`` (the capture host's wall clock)
  to the gateway taking it in (this host's). Across hosts the clocks' skew adds to every figure:
  keep them NTP-synchronised; a frame stamped in this host's future counts as 0 s and in
  ``frame_clock_ahead_total``;
- ``recordings_bytes``, ``disk_free_bytes``, ``disk_total_bytes`` of the recordings' filesystem;
- per ``stage``: ``stage_up`` (a heartbeat within the last three intervals) and
  ``stage_heartbeat_age_seconds`` (stages heard since the gateway started), ``stage_counter_total``
  (``name``: what the stage counts, from its heartbeat: capture's frames published, passed through
  and encoded, the detector's frames analysed, the recorder's frames received) and
  ``malformed_messages_total`` (the gateway's own decoder, and the detector's and recorder's).

Counters restart from 0 when the gateway (or, for stage counters, the stage) restarts, and a
camera's when the gateway forgets it; Prometheus's ``rate()`` takes resets in its stride.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.bus.sockets import Decoder
from pipeline.record.library import Library
from pipeline.web.base import Guarded, TooManyAttempts, Unauthorized, log
from pipeline.web.camera_state import LATENCY_BUCKETS, CameraState
from pipeline.web.hub import Hub

# Every name here is a classic metric name, so the text is the 0.0.4 format every Prometheus reads
# (prometheus_client's own CONTENT_TYPE_LATEST changed to 1.0.0 across its versions).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A stage counter of this name is reported as the stage's malformed messages, next to the gateway's own.
MALFORMED = "malformed"


class GatewayCollector(Collector):
    """Every camserver metric, built from the hub, the decoder and the disk at each collect()."""

    def __init__(self, hub: Hub, library: Library, decoder: Decoder) -> None:
        self.hub, self.library, self.decoder = hub, library, decoder

    def collect(self) -> Iterator[Metric]:
        overview = self.hub.overview()
        cameras: dict[str, dict[str, object]] = overview["cameras"]  # type: ignore[assignment]
        stages: dict[str, dict[str, object]] = overview["stages"]  # type: ignore[assignment]
        yield from self._cameras(cameras)
        yield from self._stages(stages)
        disk = self.library.disk()
        for key, name, doc in (("recordings_bytes", "recordings_bytes", "bytes the complete recordings use"),
                               ("free_bytes", "disk_free_bytes", "free bytes on the recordings' filesystem"),
                               ("total_bytes", "disk_total_bytes", "size of the recordings' filesystem in bytes")):
            yield GaugeMetricFamily(f"camserver_{name}", doc, value=disk[key])
        yield GaugeMetricFamily("camserver_viewers_connected", "live viewers connected (WebSocket and MJPEG)",
                                value=overview["viewers"])

    def _cameras(self, cameras: dict[str, dict[str, object]]) -> Iterator[Metric]:
        def family(kind: type[CounterMetricFamily | GaugeMetricFamily], name: str, doc: str,
                   value: Callable[[CameraState, dict[str, object]], object]) -> Metric:
            """One metric per camera, from its hub state or its /api/status entry ``shown``."""
            metric = kind(f"camserver_{name}", doc, labels=["camera"])
            for camera, shown in cameras.items():
                metric.add_metric([camera], float(value(self.hub.cameras[camera], shown)))  # type: ignore[arg-type]
            return metric

        yield family(CounterMetricFamily, "frames_received", "frames the gateway took in",
                     lambda state, _: state.frames)
        yield family(CounterMetricFamily, "frames_offered", "frames handed to live viewers",
                     lambda state, _: state.offered)
        yield family(CounterMetricFamily, "frames_dropped", "frames a slow live viewer never got: a newer one "
                     "replaced them while they waited", lambda state, _: state.dropped)
        yield family(GaugeMetricFamily, "camera_fps", "frames per second arriving, over the last 2 s",
                     lambda _, shown: shown["fps"])
        yield family(GaugeMetricFamily, "camera_online", "1 while the camera sent a frame within 5 s",
                     lambda _, shown: shown["online"])
        yield family(GaugeMetricFamily, "viewers", "live viewers of the camera", lambda _, shown: shown["viewers"])
        yield family(GaugeMetricFamily, "motion", "1 while the detector sees motion", lambda _, shown: shown["motion"])
        yield family(GaugeMetricFamily, "recording", "1 while the recorder records",
                     lambda _, shown: shown["recording"])
        yield family(CounterMetricFamily, "episodes", "motion episodes started (motion_start events)",
                     lambda state, _: state.episodes)
        yield family(CounterMetricFamily, "recordings_saved", "recordings saved (recording_saved events)",
                     lambda state, _: state.saved)
        yield family(CounterMetricFamily, "recordings_discarded", "recordings discarded (recording_discarded events)",
                     lambda state, _: state.discarded)
        yield family(CounterMetricFamily, "frame_clock_ahead", "frames stamped later than the gateway's clock "
                     "(capture host's clock ahead): counted as 0 s latency", lambda state, _: state.latency.negative)
        latency = HistogramMetricFamily("camserver_frame_latency_seconds", "seconds from capture (frame ts, the "
                                        "capture host's clock) to the gateway (this host's clock)", labels=["camera"])
        for camera in cameras:
            histogram = self.hub.cameras[camera].latency
            cumulative, buckets = 0, []
            for bound, count in zip(LATENCY_BUCKETS, histogram.buckets, strict=True):
                cumulative += count
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", histogram.count))
            latency.add_metric([camera], buckets, sum_value=histogram.sum)
        yield latency

    def _stages(self, stages: dict[str, dict[str, object]]) -> Iterator[Metric]:
        up = GaugeMetricFamily("camserver_stage_up", "1 while the stage's heartbeats arrive", labels=["stage"])
        age = GaugeMetricFamily("camserver_stage_heartbeat_age_seconds", "seconds since the stage's last heartbeat",
                                labels=["stage"])
        for stage, health in stages.items():
            up.add_metric([stage], float(bool(health["ok"])))
            if health["age"] is not None:
                age.add_metric([stage], float(health["age"]))  # type: ignore[arg-type]
        malformed = CounterMetricFamily("camserver_malformed_messages", "bus messages skipped as malformed",
                                        labels=["stage"])
        malformed.add_metric(["gateway"], float(self.decoder.malformed))
        counters = CounterMetricFamily("camserver_stage_counter", "a stage's own running totals, from its heartbeat",
                                       labels=["stage", "camera", "name"])
        for (stage, camera), values in sorted(self.hub.stage_counters.items()):
            for name, value in sorted(values.items()):
                if name == MALFORMED and not camera:
                    malformed.add_metric([stage], float(value))
                elif name != MALFORMED:
                    counters.add_metric([stage, camera, name], float(value))
        yield from (up, age, malformed, counters)


def registry_for(hub: Hub, library: Library, decoder: Decoder) -> CollectorRegistry:
    """A registry of this gateway's own: prometheus_client's global one would be shared by every gateway."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(hub, library, decoder))
    return registry


class Metrics(Guarded):
    """GET /metrics for Prometheus: closed like every other route, with one more way in for a scraper.

    Without ``--metrics-token`` it takes what the other routes take: with a password set, a session
    cookie or HTTP Basic (``basic_auth`` in prometheus.yml); with none, anyone who reaches the
    gateway, which then listens on loopback only (unless --insecure-no-auth).

    With ``--metrics-token`` (CAMSERVER_METRICS_TOKEN) set, ``Authorization: Bearer TOKEN``
    (``authorization: {credentials: TOKEN}`` in prometheus.yml) lets a scraper in too, so it need
    not hold the login's password. The token is compared in constant time; a wrong one is 401 and
    counts towards the same per-address limit as a wrong password (429 after too many).
    """

    def initialize(self, registry: CollectorRegistry, token: str | None) -> None:
        self.registry, self.token = registry, token

    async def prepare(self) -> None:
        bearer = self._bearer()
        if self.token is None or bearer is None:
            await super().prepare()
            return
        self._check_host()
        address = self.request.remote_ip or "?"
        wait = self.guard.failures.retry_after(address)
        if wait:
            raise TooManyAttempts(wait)
        if not hmac.compare_digest(bearer.encode(), self.token.encode()):
            count = self.guard.failures.fail(address)
            log.warning("wrong metrics token from %s (%d in the last minute)", address, count)
            raise Unauthorized(challenge=False)
        self.set_header("Cache-Control", "private, no-cache")

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(generate_latest(self.registry))

    def _bearer(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        return header[7:].strip() if header[:7].lower() == "bearer " else None
