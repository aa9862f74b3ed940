"""MQTT stage: motion, recordings and snapshots on an MQTT broker, with Home Assistant discovery.

An optional subscriber like the logger (off unless started): it connects to the events, the
recorder's events and the frames, binds nothing, and publishes to the broker --mqtt-host through
pipeline/integrations/mqtt_bridge.py. Topics, entities and set-up: docs/integrations.md.
"""

from __future__ import annotations

import logging
import re
import threading

import zmq

from pipeline.bus.curve import bus_curve
from pipeline.bus.sockets import subscriber
from pipeline.config.options import OPTIONS as ALL_OPTIONS
from pipeline.config.options import Config, ConfigError
from pipeline.integrations.mqtt_bridge import Bridge, make_client, read_password
from pipeline.integrations.mqtt_topics import NODE_ID, TOPIC
from pipeline.protocol import event_topic, frame_topic
from pipeline.stage.lifecycle import consume, main

OPTIONS = ("events", "recorder_events", "frames", "mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password",
           "mqtt_password_file", "mqtt_tls", "mqtt_ca", "mqtt_prefix", "mqtt_discovery_prefix", "mqtt_node_id",
           "mqtt_snapshot_seconds", "gateway_url", "log_level", "log_time", "curve_keys", "insecure_bus")
KEEPALIVE_S = 30
# Per connected endpoint: the events pipes ride out a slow moment; a frames pipe holds little more than the newest.
BUS_HWM = 100

log = logging.getLogger("camserver.mqtt")


def check(cfg: Config) -> None:
    """Rules across the MQTT options, checked before anything connects (ConfigError names the option)."""
    for name in ("mqtt_prefix", "mqtt_discovery_prefix"):
        if not TOPIC.fullmatch(getattr(cfg, name)):
            raise ConfigError(f"invalid {ALL_OPTIONS[name].flag} {getattr(cfg, name)!r}: expected topic "
                              "levels of letters, digits, _ . - separated by / (no wildcards)")
    if cfg.mqtt_node_id is not None and not NODE_ID.fullmatch(cfg.mqtt_node_id):
        raise ConfigError(f"invalid --mqtt-node-id {cfg.mqtt_node_id!r}: use 1-64 letters, digits, _ or -")
    if cfg.gateway_url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", cfg.gateway_url):
        raise ConfigError(f"invalid --gateway-url {cfg.gateway_url!r}: expected http(s)://HOST[:PORT]")
    if cfg.mqtt_password is not None and cfg.mqtt_password_file is not None:
        raise ConfigError("give the MQTT password once: --mqtt-password or --mqtt-password-file")
    if cfg.mqtt_ca is not None and not cfg.mqtt_tls:
        raise ConfigError("--mqtt-ca is for --mqtt-tls: add --mqtt-tls")


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
