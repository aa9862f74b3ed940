"""The HTTP API of the gateway, against a real gateway process and a prepared recordings folder."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from pipeline.record.library import Library
from tests.support.ports import Ports
from tests.support.recordings import prepare
from tests.support.stages import Stage
from tests.support.waiting import wait_for
from tests.support.web import gateway_listening, request


def test_listing_pages_filters_gets_and_deletes(start_stage: Callable[..., Stage], ports: Ports) -> None:
    day1 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    day2 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    names = prepare(ports, [day1 + 3600 * h for h in range(5)] + [day2 + 3600 * h for h in range(3)])
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway")

    status, body = request(ports.http, "GET", "/api/recordings")
    assert status == 200 and [r["name"] for r in body["recordings"]] == names[::-1] and body["next"] is None
    first = body["recordings"][0]
    assert first["video_url"] == f"/recordings/{names[-1]}.mp4"
    assert first["thumbnail_url"] == f"/recordings/{names[-1]}.jpg"

    pages, cursor = [], ""
    while cursor is not None:
        status, body = request(ports.http, "GET", f"/api/recordings?limit=3{cursor and f'&before={cursor}'}")
        pages.append([r["name"] for r in body["recordings"]])
        cursor = body["next"]
    assert pages == [names[::-1][0:3], names[::-1][3:6], names[::-1][6:8]]

    status, body = request(ports.http, "GET", f"/api/recordings?from={day1}&to={day2}")
    assert [r["name"] for r in body["recordings"]] == names[4::-1]

    for bad in ("limit=0", "limit=many", "from=yesterday"):
        status, body = request(ports.http, "GET", f"/api/recordings?{bad}")
        assert status == 400 and body["status"] == 400 and body["error"], bad

    status, body = request(ports.http, "GET", f"/api/recordings/{names[2]}")
    assert status == 200 and body["name"] == names[2] and body["duration"] == 3.0
    status, body = request(ports.http, "DELETE", f"/api/recordings/{names[2]}")
    assert status == 200 and body == {"deleted": names[2]}
    assert not list(ports.recordings.glob(f"{names[2]}*"))
    for method in ("GET", "DELETE"):
        status, body = request(ports.http, method, f"/api/recordings/{names[2]}")
        assert status == 404 and body["status"] == 404 and names[2] in body["error"]
    status, body = request(ports.http, "DELETE", "/api/recordings/..%2F..%2Fpyproject.toml")
    assert status == 404


def test_the_listing_of_one_camera_holds_its_recordings_only(start_stage: Callable[..., Stage], ports: Ports) -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    front = prepare(ports, [day + 60 * i for i in range(3)])
    garden = prepare(ports, [day + 30 + 60 * i for i in range(2)], camera="garden")
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway")

    status, body = request(ports.http, "GET", "/api/recordings?camera=garden")
    assert status == 200 and [r["name"] for r in body["recordings"]] == garden[::-1] and body["next"] is None
    status, body = request(ports.http, "GET", "/api/recordings?camera=cam0&limit=2")
    assert [r["name"] for r in body["recordings"]] == front[:0:-1] and body["next"] == front[1]
    status, body = request(ports.http, "GET", "/api/recordings")
    assert len(body["recordings"]) == 5
    status, body = request(ports.http, "GET", "/api/recordings?camera=no%20such%20id")
    assert status == 400 and "camera" in body["error"]


def test_hostile_sidecars_beside_good_recordings_leave_the_listing_whole(
        start_stage: Callable[..., Stage], ports: Ports) -> None:
    """One broken or planted sidecar must not take the list (and the page) down, nor send invalid JSON."""
    day = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    names = prepare(ports, [day + 60 * i for i in range(7)])
    good, hostile = [names[0], names[3], names[6]], [names[1], names[2], names[4], names[5]]
    library = Library(ports.recordings)
    library.path(hostile[0], ".json").write_text("[]")
    library.path(hostile[1], ".json").write_text("null")
    sidecar = json.loads(library.path(hostile[2], ".json").read_text())
    library.path(hostile[2], ".json").write_text(json.dumps({**sidecar, "duration": float("nan")}))
    outside = ports.recordings.parent / "outside.json"
    library.path(hostile[3], ".json").rename(outside)
    library.path(hostile[3], ".json").symlink_to(outside)
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway")

    conn = http.client.HTTPConnection("127.0.0.1", ports.http, timeout=10)
    conn.request("GET", "/api/recordings")
    response = conn.getresponse()
    assert response.status == 200
    body = json.loads(response.read(), parse_constant=lambda token: pytest.fail(f"{token} in the API's JSON"))
    assert [r["name"] for r in body["recordings"]] == good[::-1]
    for name in hostile:
        assert request(ports.http, "GET", f"/api/recordings/{name}")[0] == 404

    # A file planted as a symlink inside the folder (to another recording, or to a .part being written)
    # or reached through a subfolder is not served, though it stays inside the folder.
    library.path(hostile[0], ".mp4").unlink()
    library.path(hostile[0], ".mp4").symlink_to(library.path(good[0], ".mp4"))
    (ports.recordings / "sub").mkdir()
    library.path(good[1], ".mp4").rename(ports.recordings / "sub" / f"{good[1]}.mp4")
    for path, expected in ((f"/recordings/{good[0]}.mp4", 200), (f"/recordings/{hostile[0]}.mp4", 404),
                           (f"/recordings/sub%2F{good[1]}.mp4", 404)):
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        assert response.status == expected, path


def test_status_reports_cameras_stages_and_disk(start_stage: Callable[..., Stage], ports: Ports) -> None:
    start_stage("gateway")
    wait_for(gateway_listening(ports.http), 15, "the gateway")
    status, body = request(ports.http, "GET", "/api/status")
    assert status == 200 and body["cameras"] == {}
    assert body["stages"]["capture"] == {"ok": False, "age": None}
    assert body["disk"]["total_bytes"] > body["disk"]["free_bytes"] > 0 and body["disk"]["recordings_bytes"] == 0

    start_stage("recorder")
    start_stage("detector")
    start_stage("capture", "--source", "demo")

    def all_up() -> bool:
        stages = request(ports.http, "GET", "/api/status")[1]["stages"]
        return all(stage["ok"] for stage in stages.values())

    wait_for(all_up, 20, "every stage to report healthy", interval=0.5)
    body = request(ports.http, "GET", "/api/status")[1]
    cam = body["cameras"]["cam0"]
    assert cam["online"] and cam["demo"] and (cam["w"], cam["h"]) == (640, 480)
    wait_for(lambda: request(ports.http, "GET", "/api/status")[1]["cameras"]["cam0"]["recording"], 20,
             "the recorder to be recording the demo's visitor", interval=0.25)
    assert request(ports.http, "GET", "/api/status")[1]["cameras"]["cam0"]["motion"] is True
