"""The MQTT stage's bridge: events and frames from the bus in, retained state and snapshots to the broker out.

paho-mqtt runs its network loop in its own thread and reconnects with backoff; the bus side only
hands messages to paho's queue and never waits on the broker. While the broker is away events are
dropped (they are moments, not state), and on reconnection the current state of every camera
(motion, last recording, discovery) is published again. Broker trouble is logged at most once per
interval; the password is never logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho

from pipeline.config.options import MAX_CAMERAS, Config
from pipeline.integrations.mqtt_topics import (
    MOTION_OFF,
    MOTION_ON,
    OFFLINE,
    ONLINE,
    SNAPSHOT_QOS,
    STATE_QOS,
    Topics,
    default_node_id,
    discovery_config,
)
from pipeline.protocol import Event, Frame
from pipeline.stage.ratelog import RateLimitedLog

# QoS 1 messages held for a slow broker at most: beyond it new ones are dropped, not memory filled.
MAX_QUEUED = 500
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
STOP_FLUSH_S = 2.0

log = logging.getLogger("camserver.mqtt")


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
