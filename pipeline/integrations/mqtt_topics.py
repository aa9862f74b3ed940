"""What camserver says on an MQTT broker: its topics, and each camera as a Home Assistant device.

Pure functions of the options and the camera, so the messages are checked without a broker. The
topics and entities are listed in docs/integrations.md.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

ONLINE, OFFLINE = "online", "offline"
MOTION_ON, MOTION_OFF = "ON", "OFF"
STATE_QOS, SNAPSHOT_QOS = 1, 0
# Topic levels of our own making: no wildcards, no empty level, nothing a broker treats specially.
TOPIC = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def software_version() -> str:
    try:
        return version("camserver")
    except PackageNotFoundError:
        return "unknown"


def default_node_id() -> str:
    """The host name as Home Assistant accepts it in ids: two camservers on one broker stay apart."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0])[:64] or "camserver"


@dataclass(frozen=True)
class Topics:
    """Every topic this stage publishes to or listens on, from the two prefixes."""

    prefix: str
    discovery_prefix: str

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def homeassistant_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    def camera(self, camera: str, what: str) -> str:
        return f"{self.prefix}/{camera}/{what}"

    def discovery(self, node: str, camera: str) -> str:
        return f"{self.discovery_prefix}/device/{node}_{camera}/config"


def discovery_config(topics: Topics, node: str, camera: str, gateway_url: str | None) -> dict[str, Any]:
    """One camera as a Home Assistant device: motion, snapshot image and last recording."""
    uid = f"{node}_{camera}"
    sw = software_version()
    device: dict[str, Any] = {"ids": [uid], "name": f"camserver {camera}", "mf": "camserver", "mdl": "camera",
                              "sw": sw}
    if gateway_url is not None:
        device["cu"] = f"{gateway_url.rstrip('/')}/?camera={camera}"
    return {
        "dev": device,
        "o": {"name": "camserver", "sw": sw},
        "availability_topic": topics.status,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "qos": STATE_QOS,
        "cmps": {
            "motion": {"p": "binary_sensor", "name": "Motion", "device_class": "motion", "unique_id": f"{uid}_motion",
                       "state_topic": topics.camera(camera, "motion"), "payload_on": MOTION_ON,
                       "payload_off": MOTION_OFF},
            "snapshot": {"p": "image", "name": "Snapshot", "unique_id": f"{uid}_snapshot",
                         "image_topic": topics.camera(camera, "snapshot"), "content_type": "image/jpeg"},
            "last_recording": {"p": "sensor", "name": "Last recording", "unique_id": f"{uid}_last_recording",
                               "icon": "mdi:filmstrip", "state_topic": topics.camera(camera, "recording"),
                               "value_template": "{{ value_json.name }}",
                               "json_attributes_topic": topics.camera(camera, "recording")},
        },
    }
