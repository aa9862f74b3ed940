"""/metrics as Prometheus sees it: real stages as processes, scraped over real HTTP and parsed by prometheus_client.

One pipeline (demo capture, detector, recorder, gateway) shows that the gateway's counters move
with the stream, that its fps is capture's, that every stage is up and reports its own counters
through its heartbeat, and that the demo visitor's walk is one episode and one saved recording.
A gateway with a password shows who may scrape: the login (Basic), or the bearer token when one is set.
"""

from __future__ import annotations

import base64
import http.client
import time
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import Ports
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import gateway_listening

PASSWORD = "metrics-horse-battery-9"
TOKEN = "scraper-token-0123456789abcdef"
FPS = 10.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(port: int, path: str = "/metrics", headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, content type, body) of one GET on its own connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        conn.close()


def scrape(port: int, headers: dict[str, str] | None = None) -> Samples:
    """Every sample of /metrics by (name, labels), parsed as Prometheus parses it."""
    status, content_type, body = get(port, headers=headers)
    assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8", (status, content_type)
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


def value(samples: Samples, metric: str, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def scraped_with(port: int, name: str) -> Callable[[], Samples | None]:
    """A wait_for predicate: the scrape once cam0's ``name`` is above 0."""

    def check() -> Samples | None:
        samples = scrape(port)
        return samples if value(samples, name, camera="cam0") else None

    return check


def basic(password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def test_metrics_follow_the_stream_the_stages_and_an_episode(start_stage: Callable[..., Stage], ports: Ports) -> None:
    start_stage("recorder", "--pre-seconds", "0.5", "--post-seconds", "0.5")
    start_stage("detector")
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway")
    before_capture = scrape(ports.http)
    assert value(before_capture, "camserver_stage_up", stage="capture") == 0
    assert value(before_capture, "camserver_malformed_messages_total", stage="gateway") == 0
    assert value(before_capture, "camserver_disk_free_bytes") > 0
    start_stage("capture", "--source", "demo", "--fps", str(FPS), "--width", "320", "--height", "240")

    def all_up() -> Samples | None:
        samples = scrape(ports.http)
        ups = [value(samples, "camserver_stage_up", stage=s) for s in ("capture", "detector", "recorder")]
        return samples if ups == [1, 1, 1] and value(samples, "camserver_camera_fps", camera="cam0") else None

    first = wait_for(all_up, 15, "every stage up and frames arriving", interval=0.2)
    time.sleep(2.5)  # the fps meter's 2 s window filled, and a heartbeat with counters from each stage
    second = scrape(ports.http)
    received = [value(s, "camserver_frames_received_total", camera="cam0") for s in (first, second)]
    assert received[1] >= received[0] + 15, received
    assert FPS * 0.7 <= value(second, "camserver_camera_fps", camera="cam0") <= FPS * 1.3
    assert value(second, "camserver_camera_online", camera="cam0") == 1
    assert value(second, "camserver_viewers", camera="cam0") == 0
    assert value(second, "camserver_frame_latency_seconds_bucket", camera="cam0", le="1.0") >= 0.9 * received[1], \
        "frames on one host reach the gateway well within a second of capture"
    assert value(second, "camserver_frame_clock_ahead_total", camera="cam0") == 0
    for stage in ("capture", "detector", "recorder"):
        assert 0 <= value(second, "camserver_stage_heartbeat_age_seconds", stage=stage) < 6
    counter = "camserver_stage_counter_total"
    assert value(second, counter, stage="capture", camera="cam0", name="frames_published") >= 20
    assert value(second, counter, stage="capture", camera="cam0", name="frames_encoded") >= 20
    assert value(second, counter, stage="detector", camera="", name="frames_analysed") >= 15
    assert value(second, counter, stage="recorder", camera="", name="frames_received") >= 15
    for stage in ("gateway", "detector", "recorder"):
        assert value(second, "camserver_malformed_messages_total", stage=stage) == 0

    # The visitor enters 2 s after capture starts and has left 5.5 s later; the detector waits for a
    # still picture and the recorder for its post-roll before the recording is saved.
    episode = wait_for(scraped_with(ports.http, "camserver_episodes_total"), 15, "an episode on /metrics", 0.2)
    assert value(episode, "camserver_episodes_total", camera="cam0") == 1
    saved = wait_for(scraped_with(ports.http, "camserver_recordings_saved_total"), 20, "a saved recording", 0.3)
    assert value(saved, "camserver_recordings_saved_total", camera="cam0") == 1
    assert value(saved, "camserver_recordings_discarded_total", camera="cam0") == 0
    assert value(saved, "camserver_recording", camera="cam0") == 0
    wait_for(lambda: value(scrape(ports.http), "camserver_recordings_bytes") > 10_000, 5, "the recording's bytes")


def test_only_the_login_or_the_token_opens_metrics(start_stage: Callable[..., Stage], ports: Ports) -> None:
    with_token = start_stage("gateway", CAMSERVER_PASSWORD=PASSWORD, CAMSERVER_METRICS_TOKEN=TOKEN)
    wait_for(gateway_listening(ports.http), 15, "the gateway")
    assert get(ports.http)[0] == 401
    assert get(ports.http, headers=basic("wrong-password"))[0] == 401
    assert value(scrape(ports.http, basic()), "camserver_stage_up", stage="capture") == 0
    assert value(scrape(ports.http, {"Authorization": f"Bearer {TOKEN}"}), "camserver_stage_up", stage="capture") == 0
    assert get(ports.http, headers={"Authorization": "Bearer not-the-token-0123456789"})[0] == 401
    assert get(ports.http, headers={"Authorization": f"Bearer {TOKEN}x"})[0] == 401
    assert get(ports.http, "/api/status", {"Authorization": f"Bearer {TOKEN}"})[0] == 401, \
        "the metrics token opens /metrics only"
    assert with_token.stop() == 0
    output = with_token.output()
    assert PASSWORD not in output and TOKEN not in output

    without_token = start_stage("gateway", CAMSERVER_PASSWORD=PASSWORD)
    wait_for(gateway_listening(ports.http), 15, "the gateway without a token")
    assert get(ports.http, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 401
    assert get(ports.http, headers=basic())[0] == 200
    assert PASSWORD not in without_token.output()


def test_a_bad_metrics_token_stops_the_gateway_without_showing_it(start_stage: Callable[..., Stage]) -> None:
    gateway = start_stage("gateway", CAMSERVER_METRICS_TOKEN="short secret")
    assert gateway.proc.wait(10) == 2
    output = gateway.output()
    assert "CAMSERVER_METRICS_TOKEN" in output and "short secret" not in output
