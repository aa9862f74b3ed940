"""MQTT stage: motion, recordings and snapshots on an MQTT broker, with Home Assistant discovery.

An optional subscriber like the logger (off unless started): it connects to the events, the
recorder's events and the frames, binds nothing, and publishes to the broker ``--mqtt-host``.
Topics, under ``--mqtt-prefix`` (``camserver``)::

    camserver/status              online / offline, retained; "offline" is also the last will,
                                  so a killed process or a lost host shows as unavailable
    camserver/CAMERA/motion       ON / OFF, retained (QoS 1)
    camserver/CAMERA/events       JSON of every event but the per-frame ``delta`` (QoS 1)
    camserver/CAMERA/recording    JSON of the last recording_saved, retained (QoS 1); with
                                  --gateway-url also its ``video_url`` and ``thumbnail_url``
    camserver/CAMERA/snapshot     the JPEG of the newest frame, as capture encoded it (QoS 0),
                                  at most every --mqtt-snapshot-seconds and at each motion start

Home Assistant finds every camera by device-based discovery: one retained config at
``homeassistant/device/NODE_CAMERA/config`` (``--mqtt-discovery-prefix``, ``--mqtt-node-id``)
holding a motion binary_sensor, an image entity fed by the snapshots and a sensor of the last
recording, all unavailable while ``camserver/status`` is offline. It is sent when a camera first
appears in the stream, on every (re)connection, and whenever Home Assistant announces itself on
``homeassistant/status`` (``online``) after a restart.

paho-mqtt runs its network loop in its own thread and reconnects with backoff; the ZeroMQ loop
only hands messages to paho's queue and never waits on the broker. While the broker is away
events are dropped (they are moments, not state), and on reconnection the current state — motion,
last recording, discovery — is published again. Broker trouble is logged at most once per
interval; the password is never logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import threading
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import paho.mqtt.client as paho
import zmq

from pipeline.bus.curve import bus_curve
from pipeline.bus.sockets import subscriber
from pipeline.config.options import MAX_CAMERAS, Config, ConfigError
from pipeline.config.options import OPTIONS as ALL_OPTIONS
from pipeline.protocol import Event, Frame, event_topic, frame_topic
from pipeline.stage.lifecycle import consume, main
from pipeline.stage.ratelog import RateLimitedLog

OPTIONS = ("events", "recorder_events", "frames", "mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password",
           "mqtt_password_file", "mqtt_tls", "mqtt_ca", "mqtt_prefix", "mqtt_discovery_prefix", "mqtt_node_id",
           "mqtt_snapshot_seconds", "gateway_url", "log_level", "log_time", "curve_keys", "insecure_bus")
ONLINE, OFFLINE = "online", "offline"
MOTION_ON, MOTION_OFF = "ON", "OFF"
STATE_QOS, SNAPSHOT_QOS = 1, 0
# QoS 1 messages held for a slow broker at most: beyond it new ones are dropped, not memory filled.
MAX_QUEUED = 500
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
KEEPALIVE_S = 30
STOP_FLUSH_S = 2.0
# Per connected endpoint: the events pipes ride out a slow moment; a frames pipe holds little more than the newest.
BUS_HWM = 100
# Topic levels of our own making: no wildcards, no empty level, nothing a broker treats specially.
_TOPIC = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

log = logging.getLogger("camserver.mqtt")


def software_version() -> str:
    try:
        return version("camserver")
    except PackageNotFoundError:
        return "unknown"


def default_node_id() -> str:
    """The host name as Home Assistant accepts it in ids: two camservers on one broker stay apart."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0])[:64] or "camserver"


def check(cfg: Config) -> None:
    """Rules across the MQTT options, checked before anything connects (ConfigError names the option)."""
    for name in ("mqtt_prefix", "mqtt_discovery_prefix"):
        if not _TOPIC.fullmatch(getattr(cfg, name)):
            raise ConfigError(f"invalid {ALL_OPTIONS[name].flag} {getattr(cfg, name)!r}: expected topic "
                              "levels of letters, digits, _ . - separated by / (no wildcards)")
    if cfg.mqtt_node_id is not None and not _NODE_ID.fullmatch(cfg.mqtt_node_id):
        raise ConfigError(f"invalid --mqtt-node-id {cfg.mqtt_node_id!r}: use 1-64 letters, digits, _ or -")
    if cfg.gateway_url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", cfg.gateway_url):
        raise ConfigError(f"invalid --gateway-url {cfg.gateway_url!r}: expected http(s)://HOST[:PORT]")
    if cfg.mqtt_password is not None and cfg.mqtt_password_file is not None:
        raise ConfigError("give the MQTT password once: --mqtt-password or --mqtt-password-file")
    if cfg.mqtt_ca is not None and not cfg.mqtt_tls:
        raise ConfigError("--mqtt-ca is for --mqtt-tls: add --mqtt-tls")


def read_password(cfg: Config) -> str | None:
    """The broker password: the option's, or the first line of the password file."""
    if cfg.mqtt_password_file is None:
        return cfg.mqtt_password
    try:
        lines = cfg.mqtt_password_file.read_text().splitlines()
    except OSError as exc:
        raise OSError(f"cannot read --mqtt-password-file {cfg.mqtt_password_file}: {exc.strerror}") from None
    if not lines or not lines[0]:
        raise OSError(f"--mqtt-password-file {cfg.mqtt_password_file} is empty")
    return lines[0]


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


@dataclass
class CameraState:
    """What the broker is told about one camera, kept so that it can be told again after a reconnection."""

    motion: bool = False
    recording: dict[str, Any] | None = None
    jpeg: bytes | None = None
    snapshot_at: float = -math.inf
    snapshot_sent: paho.MQTTMessageInfo | None = None


class Bridge:
    """The bus side (``handle``, ZeroMQ thread) and the broker side (paho callbacks, paho's thread) of the stage.

    One lock keeps the two from interleaving: a reconnection republishes state that ``handle`` is
    not halfway through changing. Nothing under it waits on the network.
    """

    def __init__(self, cfg: Config, client: paho.Client, where: str) -> None:
        self._client, self._where = client, where
        self._topics = Topics(cfg.mqtt_prefix, cfg.mqtt_discovery_prefix)
        self._node = cfg.mqtt_node_id or default_node_id()
        self._gateway_url = cfg.gateway_url
        self._snapshot_every = cfg.mqtt_snapshot_seconds
        self._cameras: dict[str, CameraState] = {}
        self._lock = threading.Lock()
        self._connected = False
        self._notes = RateLimitedLog(log)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message

    # The bus side.

    def handle(self, message: Frame | Event) -> None:
        with self._lock:
            state = self._camera(message.camera)
            if state is None:
                return
            if isinstance(message, Frame):
                state.jpeg = message.jpeg
                if self._snapshot_every > 0 and time.monotonic() - state.snapshot_at >= self._snapshot_every:
                    self._send_snapshot(message.camera, state)
                return
            if message.type == "delta":
                if isinstance(message.data.get("motion"), bool):
                    self._set_motion(message.camera, state, message.data["motion"])
                return
            if message.type in ("motion_start", "motion_end"):
                self._set_motion(message.camera, state, message.type == "motion_start")
            self._publish(self._topics.camera(message.camera, "events"), _json(message.body()), STATE_QOS)
            if message.type == "recording_saved":
                state.recording = self._recording(message)
                self._publish(self._topics.camera(message.camera, "recording"), _json(state.recording), STATE_QOS,
                              retain=True)

    def _camera(self, camera: str) -> CameraState | None:
        state = self._cameras.get(camera)
        if state is None:
            if len(self._cameras) >= MAX_CAMERAS:
                self._notes.warning("cameras", "ignoring camera %s: already publishing %d cameras", camera,
                                    len(self._cameras))
                return None
            state = self._cameras[camera] = CameraState()
            log.info("camera %s: publishing on %s/%s/ and discovery at %s", camera, self._topics.prefix, camera,
                     self._topics.discovery(self._node, camera))
            self._announce(camera, state)
        return state

    def _set_motion(self, camera: str, state: CameraState, motion: bool) -> None:
        if motion == state.motion:
            return
        state.motion = motion
        self._publish(self._topics.camera(camera, "motion"), MOTION_ON if motion else MOTION_OFF, STATE_QOS,
                      retain=True)
        if motion:
            self._send_snapshot(camera, state)

    def _send_snapshot(self, camera: str, state: CameraState) -> None:
        """The newest JPEG, unless the previous one is still waiting to go out: a slow broker gets fewer."""
        if state.jpeg is None or (state.snapshot_sent is not None and not state.snapshot_sent.is_published()):
            return
        state.snapshot_sent = self._publish(self._topics.camera(camera, "snapshot"), state.jpeg, SNAPSHOT_QOS)
        state.snapshot_at = time.monotonic()

    def _recording(self, event: Event) -> dict[str, Any]:
        body = event.body()
        if self._gateway_url is not None:
            base, query = self._gateway_url.rstrip("/"), f"?camera={event.camera}"
            if isinstance(body.get("video"), str):
                body["video_url"] = f"{base}/recordings/{body['video']}{query}"
            if isinstance(body.get("thumbnail"), str):
                body["thumbnail_url"] = f"{base}/recordings/{body['thumbnail']}{query}"
        return body

    def _announce(self, camera: str, state: CameraState) -> None:
        """Discovery and the retained state of one camera."""
        self._publish_discovery(camera)
        self._publish(self._topics.camera(camera, "motion"), MOTION_ON if state.motion else MOTION_OFF, STATE_QOS,
                      retain=True)
        if state.recording is not None:
            self._publish(self._topics.camera(camera, "recording"), _json(state.recording), STATE_QOS, retain=True)

    def _publish_discovery(self, camera: str) -> None:
        self._publish(self._topics.discovery(self._node, camera),
                      _json(discovery_config(self._topics, self._node, camera, self._gateway_url)), STATE_QOS,
                      retain=True)

    def _publish(self, topic: str, payload: str | bytes, qos: int, retain: bool = False) -> paho.MQTTMessageInfo | None:
        """Queue a message for paho's thread; None while the broker is away (the state is sent on reconnection)."""
        if not self._connected:
            return None
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self._notes.warning("queue", "MQTT message to %s dropped: %s", topic, paho.error_string(info.rc))
            return None
        return info

    # The broker side, in paho's thread.

    def _on_connect(self, client: paho.Client, _userdata: object, _flags: object, reason: Any,
                    _properties: object) -> None:
        if reason.is_failure:
            self._notes.warning("refused", "MQTT broker %s refused the connection: %s (retrying)", self._where,
                                reason)
            return
        log.info("connected to MQTT broker %s", self._where)
        client.subscribe(self._topics.homeassistant_status, STATE_QOS)
        with self._lock:
            self._connected = True
            self._publish(self._topics.status, ONLINE, STATE_QOS, retain=True)
            for camera, state in self._cameras.items():
                state.snapshot_sent = None  # a snapshot queued on the lost connection never went out
                self._announce(camera, state)

    def _on_connect_fail(self, _client: paho.Client, _userdata: object) -> None:
        self._notes.warning("unreachable", "cannot reach MQTT broker %s (retrying, every %d s at most)", self._where,
                            RECONNECT_MAX_S)

    def _on_disconnect(self, _client: paho.Client, _userdata: object, _flags: object, reason: Any,
                       _properties: object) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
        if was_connected and reason.is_failure:
            self._notes.warning("lost", "lost MQTT broker %s: %s (reconnecting)", self._where, reason)

    def _on_message(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        if message.topic == self._topics.homeassistant_status and message.payload.strip() == ONLINE.encode():
            log.info("Home Assistant is online: sending discovery again")
            with self._lock:
                for camera in self._cameras:
                    self._publish_discovery(camera)

    def stop(self) -> None:
        """Say offline (the will is for deaths, this for orderly stops) and leave the broker."""
        with self._lock:
            info = self._publish(self._topics.status, OFFLINE, STATE_QOS, retain=True)
        if info is not None:
            # RuntimeError: the connection went while stopping, and the broker sends the will instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(STOP_FLUSH_S)
        self._client.disconnect()
        self._client.loop_stop()


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def make_client(cfg: Config, password: str | None) -> paho.Client:
    node = cfg.mqtt_node_id or default_node_id()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"camserver-{node}")
    client.max_queued_messages_set(MAX_QUEUED)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    client.will_set(f"{cfg.mqtt_prefix}/status", OFFLINE, STATE_QOS, retain=True)
    if cfg.mqtt_user is not None:
        client.username_pw_set(cfg.mqtt_user, password)
    if cfg.mqtt_tls:
        try:
            client.tls_set(ca_certs=str(cfg.mqtt_ca) if cfg.mqtt_ca is not None else None)
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot set up TLS for the MQTT broker: {exc}") from None
    return client


def run(cfg: Config, stop: threading.Event) -> int:
    port = cfg.mqtt_port or (8883 if cfg.mqtt_tls else 1883)
    where = f"{cfg.mqtt_host}:{port}" + (" (TLS)" if cfg.mqtt_tls else "")
    client = make_client(cfg, read_password(cfg))
    bridge = Bridge(cfg, client, where)
    endpoints = (*cfg.events, *cfg.recorder_events, *cfg.frames)
    keys = bus_curve(cfg.curve_keys, cfg.insecure_bus, binds=(), connects=endpoints)
    # connect_async: the first connection is tried, and retried, in paho's thread like every other.
    client.connect_async(cfg.mqtt_host, port, KEEPALIVE_S)
    client.loop_start()
    try:
        with (
            zmq.Context() as ctx,
            subscriber(ctx, endpoints, [event_topic(), frame_topic()], BUS_HWM, keys) as sock,
        ):
            log.info("publishing events from %s and snapshots from %s to MQTT broker %s%s",
                     ",".join((*cfg.events, *cfg.recorder_events)), ",".join(cfg.frames), where,
                     f" as {cfg.mqtt_user}" if cfg.mqtt_user is not None else "")
            consume(sock, stop, bridge.handle, log)
    finally:
        bridge.stop()
    return 0


if __name__ == "__main__":
    main("mqtt", OPTIONS, __doc__, run, check)
