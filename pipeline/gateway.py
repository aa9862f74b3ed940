"""Gateway stage: the web server, with the live view, the recordings and the status of every camera.

It subscribes to frames and events over ZeroMQ on Tornado's own event loop (pipeline/web/pump.py),
keeps the newest frame per camera in a Hub (pipeline/web/hub.py), and pushes frames to every
client as fast as that client takes them. The routes are in pipeline/web/app.py and documented in
docs/web-api.md; who may reach them in docs/security.md.
"""

from __future__ import annotations

import asyncio
import logging

import zmq

from pipeline.bus.curve import bus_curve
from pipeline.bus.sockets import EVENT_HWM, FRAME_HWM, VIDEO_HWM, Decoder, subscriber
from pipeline.config.loading import load_or_exit
from pipeline.config.options import Config, ConfigError
from pipeline.protocol import event_topic, frame_topic, stage_topic
from pipeline.record.library import Library
from pipeline.stage.lifecycle import async_stop_event, setup_logging
from pipeline.web import server
from pipeline.web.app import announce, make_app, make_guard
from pipeline.web.hosts import is_loopback
from pipeline.web.hub import Hub
from pipeline.web.pump import Pump, VideoSubscriptions
from pipeline.web.tracks import Tracks

OPTIONS = ("host", "port", "frames", "events", "recorder_events", "recordings", "log_level", "log_time", "user",
           "password", "password_file", "insecure_no_auth", "allowed_hosts", "tls_cert", "tls_key", "max_connections",
           "max_connections_per_client", "max_viewers_per_client", "curve_keys", "insecure_bus", "metrics_token",
           "video")

log = logging.getLogger("camserver.gateway")


def check(cfg: Config) -> None:
    """Rules across options; above all, never listen beyond loopback without a password by accident."""
    if cfg.password is not None and cfg.password_file is not None:
        raise ConfigError("give either --password (CAMSERVER_PASSWORD) or --password-file "
                          "(CAMSERVER_PASSWORD_FILE), not both")
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key (CAMSERVER_TLS_CERT, CAMSERVER_TLS_KEY) go together")
    server.tls_context(cfg)
    has_password = cfg.password is not None or cfg.password_file is not None
    if not is_loopback(cfg.host) and not has_password and not cfg.insecure_no_auth:
        raise ConfigError(
            f"refusing to listen on {cfg.host} without a password: set one with CAMSERVER_PASSWORD=..., or "
            "--password-file FILE made by `python -m pipeline.passwd -o FILE` (or pass --insecure-no-auth)")


async def serve(cfg: Config) -> int:
    stop = async_stop_event()
    hub = Hub()
    try:
        guard = make_guard(cfg)
    except OSError as exc:
        log.error("cannot keep the login's cookie secret in %s: %s", cfg.recordings, exc)
        return 1
    try:
        keys = bus_curve(cfg.curve_keys, cfg.insecure_bus, binds=(),
                         connects=(*cfg.frames, *cfg.events, *cfg.recorder_events, *cfg.video))
    except OSError as exc:
        log.error("%s", exc)
        return 1
    decoder = Decoder(log)
    ctx = zmq.Context()
    # Subscribed to no camera's track until its first H.264 viewer: the subscription is the request.
    video = subscriber(ctx, cfg.video, [], VIDEO_HWM, keys)
    tracks = Tracks(VideoSubscriptions(video))
    app = make_app(hub, Library(cfg.recordings), guard, cfg.max_viewers_per_client, decoder, cfg.metrics_token,
                   tracks)
    try:
        http = server.listen(app, cfg.port, cfg.host, server.tls_context(cfg), cfg.max_connections,
                             cfg.max_connections_per_client)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", cfg.host, cfg.port, exc)
        ctx.destroy(linger=0)
        return 1
    pumps = [
        Pump(subscriber(ctx, cfg.frames, [frame_topic(), stage_topic()], FRAME_HWM, keys), hub, decoder),
        Pump(subscriber(ctx, (*cfg.events, *cfg.recorder_events), [event_topic(), stage_topic()], EVENT_HWM,
                        keys), hub, decoder),
        Pump(video, hub, decoder, tracks),
    ]
    announce(cfg, guard)
    await stop.wait()
    http.stop()
    hub.close()
    tracks.close()
    for each in pumps:
        each.close()
    try:
        await asyncio.wait_for(http.close_all_connections(), timeout=1.0)
    except TimeoutError:
        log.warning("some connections did not close in time")
    ctx.term()
    return 0


def main() -> None:
    cfg = load_or_exit("gateway", OPTIONS, __doc__.splitlines()[0], check)
    setup_logging("gateway", cfg.log_level, cfg.log_time)
    raise SystemExit(asyncio.run(serve(cfg)))


if __name__ == "__main__":
    main()
