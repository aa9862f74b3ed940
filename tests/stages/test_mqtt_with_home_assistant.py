"""The mqtt stage against a real mosquitto: Home Assistant discovery, motion, snapshots, availability, logins.

Each test starts its own broker on a free loopback port with a generated config, never the system
service, and watches it with a paho client as Home Assistant would.
"""

from __future__ import annotations

import getpass
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from tests.support.ports import Ports, free_port
from tests.support.stages import Stage
from tests.support.waiting import wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
DISCOVERY = "homeassistant/device/testnode_cam0/config"


@dataclass
class Broker:
    """A mosquitto of this test's own: its port, and how to stop and start it again on that port."""

    port: int
    conf: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._listening, 10, f"mosquitto to listen on port {self.port}")

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"mosquitto exited: {self.log_path.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.5).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """``make_broker(passwords={"user": "pw"})``: a mosquitto config written and the broker started."""
    if not Path(MOSQUITTO).exists():
        pytest.fail("Debian's mosquitto is needed: apt-get install mosquitto")
    brokers: list[Broker] = []

    def make(passwords: dict[str, str] | None = None, start: bool = True) -> Broker:
        port = free_port()
        # Started as root, mosquitto becomes user "mosquitto", who cannot read this test's files: stay who we are.
        lines = [f"listener {port} 127.0.0.1", f"user {getpass.getuser()}", "persistence false", "log_dest stdout"]
        if passwords:
            password_file = tmp_path / f"passwd-{port}"
            for n, (user, password) in enumerate(passwords.items()):
                subprocess.run([MOSQUITTO_PASSWD, "-b", *(["-c"] if n == 0 else []), str(password_file), user,
                                password], check=True)
            password_file.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        conf = tmp_path / f"mosquitto-{port}.conf"
        conf.write_text("\n".join(lines) + "\n")
        broker = Broker(port, conf, tmp_path / f"mosquitto-{port}.log")
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


class Watcher:
    """A paho client subscribed to everything camserver and discovery publish, keeping every message."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self._lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"watcher-{port}-{time.monotonic()}")
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, *_: c.subscribe([("homeassistant/#", 1), ("camserver/#", 1)])
        self.client.on_message = self._keep
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _keep(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def on(self, topic: str) -> list[paho.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait(self, topic: str, payload: bytes | None, timeout: float, after: int = 0) -> paho.MQTTMessage:
        """The first message on ``topic`` past the first ``after`` ones (with ``payload`` when given)."""
        def found() -> paho.MQTTMessage | None:
            return next((m for m in self.on(topic)[after:] if payload is None or m.payload == payload), None)
        return wait_for(found, timeout, f"{topic} {payload!r} on the broker")  # type: ignore[return-value]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_args(broker: Broker, *extra: str, node: str = "testnode") -> tuple[str, ...]:
    return ("--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), "--mqtt-node-id", node, *extra)


def test_demo_visitor_reaches_home_assistant(make_broker: Callable[..., Broker], start_stage: Callable[..., Stage],
                                             ports: Ports) -> None:
    broker = make_broker()
    watcher = Watcher(broker.port)
    start_stage("detector")
    start_stage("recorder", "--post-seconds", "0.5", "--pre-seconds", "0.5")
    mqtt = start_stage("mqtt", *mqtt_args(broker, "--mqtt-snapshot-seconds", "1", "--gateway-url",
                                          "http://camserver.test:8100"))
    start_stage("capture", "--source", "demo", "--width", "320", "--height", "240")

    watcher.wait("camserver/status", b"online", 15)
    config = json.loads(watcher.wait(DISCOVERY, None, 15).payload)
    assert config["dev"]["ids"] == ["testnode_cam0"] and config["dev"]["mf"] == "camserver"
    assert config["dev"]["cu"] == "http://camserver.test:8100/?camera=cam0"
    assert config["o"]["name"] == "camserver" and config["availability_topic"] == "camserver/status"
    components = config["cmps"]
    assert components["motion"] == {
        "p": "binary_sensor", "name": "Motion", "device_class": "motion", "unique_id": "testnode_cam0_motion",
        "state_topic": "camserver/cam0/motion", "payload_on": "ON", "payload_off": "OFF"}
    assert components["snapshot"]["p"] == "image" and components["snapshot"]["content_type"] == "image/jpeg"
    assert components["snapshot"]["image_topic"] == "camserver/cam0/snapshot"
    assert components["last_recording"]["p"] == "sensor"
    assert components["last_recording"]["json_attributes_topic"] == "camserver/cam0/recording"
    assert len({c["unique_id"] for c in components.values()}) == 3

    snapshot = watcher.wait("camserver/cam0/snapshot", None, 10).payload
    assert snapshot[:2] == b"\xff\xd8" and snapshot[-2:] == b"\xff\xd9", "a snapshot is a whole JPEG"

    watcher.wait("camserver/cam0/motion", b"OFF", 10)
    on = watcher.wait("camserver/cam0/motion", b"ON", 20)
    watcher.wait("camserver/cam0/motion", b"OFF", 20, after=watcher.on("camserver/cam0/motion").index(on))
    types = [json.loads(m.payload)["type"] for m in watcher.on("camserver/cam0/events")]
    assert "motion_start" in types and "motion_end" in types and "delta" not in types
    recording = json.loads(watcher.wait("camserver/cam0/recording", None, 20).payload)
    assert recording["type"] == "recording_saved" and recording["name"]
    assert recording["video_url"] == f"http://camserver.test:8100/recordings/{recording['video']}?camera=cam0"

    # Home Assistant restarts and says so: the discovery comes again.
    sent = len(watcher.on(DISCOVERY))
    watcher.client.publish("homeassistant/status", "online", 1)
    watcher.wait(DISCOVERY, None, 5, after=sent)

    # The broker restarts without its retained messages: the state is sent again on reconnection.
    watcher.close()
    broker.stop()
    broker.start()
    wait_for(lambda: mqtt.output().count("connected to MQTT broker") == 2, 15, "the mqtt stage to reconnect")
    late = Watcher(broker.port)  # subscribes after the reconnection: it gets what the broker retained
    assert late.wait("camserver/status", b"online", 5).retain
    assert late.wait(DISCOVERY, None, 5).retain
    assert late.wait("camserver/cam0/motion", None, 5).retain
    assert json.loads(late.wait("camserver/cam0/recording", None, 5).payload)["name"] == recording["name"]
    assert "cannot reach MQTT broker" in mqtt.output() or "lost MQTT broker" in mqtt.output()

    # Killed without a word: the broker publishes the last will.
    mqtt.stop(signal.SIGKILL)
    late.wait("camserver/status", b"offline", 10)
    late.close()


def test_a_login_the_broker_refuses_is_logged_without_the_password(
        make_broker: Callable[..., Broker], start_stage: Callable[..., Stage], tmp_path: Path) -> None:
    broker = make_broker({"camserver": "right-horse-battery", "homeassistant": "ha-secret"}, start=False)
    password_file = tmp_path / "mqtt-password"
    password_file.write_text("right-horse-battery\n")
    good = start_stage("mqtt", *mqtt_args(broker, "--mqtt-user", "camserver", "--mqtt-password-file",
                                          str(password_file)))
    bad = start_stage("mqtt", *mqtt_args(broker, "--mqtt-user", "camserver", node="other"),
                      CAMSERVER_MQTT_PASSWORD="wrong-staple-9")
    # Started before the broker: both keep running and say so, then connect when it comes.
    wait_for(lambda: "cannot reach MQTT broker" in good.output(), 10, "the unreachable broker to be logged")
    broker.start()
    watcher = Watcher(broker.port, "homeassistant", "ha-secret")
    watcher.wait("camserver/status", b"online", 15)
    wait_for(lambda: "refused the connection" in bad.output(), 15, "the refused login to be logged")
    assert "not authori" in bad.output().lower(), bad.output()
    assert good.proc.poll() is None and bad.proc.poll() is None
    for stage in (good, bad):
        assert "right-horse-battery" not in stage.output() and "wrong-staple-9" not in stage.output()
    good.stop()
    watcher.wait("camserver/status", b"offline", 5)
    watcher.close()
