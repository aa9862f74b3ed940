"""Hooks stage: runs your commands and POSTs signed webhooks on motion, recordings and lost or found cameras.

Optional and off by default: a subscriber like pipeline.logger, binding nothing, so a hook that
hangs or a webhook receiver that is down delays nothing but itself. It hears the detector's and
the recorder's events, and the frames' headers to tell when a camera goes silent
(pipeline/integrations/: commands.py, webhooks.py, watchdog.py). What each hook and webhook gets
is described in docs/integrations.md.
"""

from __future__ import annotations

import logging
import threading

import zmq

from pipeline.bus.curve import bus_curve
from pipeline.bus.sockets import EVENT_HWM, FRAME_HWM, Decoder, receive, subscriber
from pipeline.config.options import Config, ConfigError
from pipeline.integrations.commands import KINDS, CommandHooks, commands
from pipeline.integrations.watchdog import Watchdog
from pipeline.integrations.webhooks import Webhook, webhook_urls
from pipeline.protocol import Event, Frame, event_topic, frame_topic
from pipeline.stage.lifecycle import POLL_MS, main, message_summary
from pipeline.stage.ratelog import RateLimitedLog

OPTIONS = ("frames", "events", "recorder_events", "recordings", "on_motion_start", "on_motion_end",
           "on_recording_saved", "on_camera_lost", "on_camera_found", "hook_timeout", "hook_max_running",
           "camera_lost_after", "webhook_url", "webhook_secret", "log_level", "log_time", "curve_keys",
           "insecure_bus")

log = logging.getLogger("camserver.hooks")


def check(cfg: Config) -> None:
    commands(cfg)
    webhook_urls(cfg)
    if cfg.webhook_secret is not None and cfg.webhook_url is None:
        raise ConfigError("--webhook-secret without --webhook-url")


def run(cfg: Config, stop: threading.Event) -> int:
    argvs, urls = commands(cfg), webhook_urls(cfg)
    if not argvs and not urls:
        log.warning("no hook and no webhook configured (--on-motion-start ..., --webhook-url): nothing to do")
    hooks = CommandHooks(argvs, cfg.recordings, cfg.hook_timeout, cfg.hook_max_running)
    webhooks = [Webhook(url, cfg.webhook_secret, stop) for url in urls]
    watchdog = Watchdog(cfg.camera_lost_after)
    watch_frames = bool({"camera_lost", "camera_found"} & argvs.keys()) or bool(webhooks)

    def dispatch(event: Event) -> None:
        if event.type not in KINDS:
            return
        log.info("%s %s seq=%d", event.camera, event.type, event.seq)
        hooks.handle(event)
        for webhook in webhooks:
            webhook.offer(event)

    event_endpoints = (*cfg.events, *cfg.recorder_events)
    keys = bus_curve(cfg.curve_keys, cfg.insecure_bus, binds=(),
                     connects=(*event_endpoints, *(cfg.frames if watch_frames else ())))
    decoder, failures = Decoder(log), RateLimitedLog(log)
    try:
        with (
            zmq.Context() as ctx,
            subscriber(ctx, event_endpoints, [event_topic()], EVENT_HWM, keys) as events,
            subscriber(ctx, cfg.frames if watch_frames else (), [frame_topic()], FRAME_HWM, keys) as frames,
        ):
            log.info("hooks for %s, webhooks to %s; events from %s%s", ",".join(argvs) or "nothing",
                     ",".join(w.shown for w in webhooks) or "nobody", ",".join(event_endpoints),
                     f", frames from {','.join(cfg.frames)}" if watch_frames else "")
            poller = zmq.Poller()
            poller.register(events, zmq.POLLIN)
            poller.register(frames, zmq.POLLIN)
            while not stop.is_set():
                ready = dict(poller.poll(POLL_MS))
                messages = [*receive(events, 0, decoder)] if events in ready else []
                # Frame.decode reads the header and the JPEG's size from its SOF marker, never the pixels.
                messages += receive(frames, 0, decoder) if frames in ready else []
                for message in messages:
                    try:
                        if isinstance(message, Frame):
                            found = watchdog.frame(message)
                            if found is not None:
                                dispatch(found)
                        else:
                            dispatch(message)
                    except Exception:
                        failures.log(logging.ERROR, "handler", "skipped a message that could not be handled: %s",
                                     message_summary(message), exc_info=True)
                for lost in watchdog.tick():
                    dispatch(lost)
    finally:
        hooks.close()
        for webhook in webhooks:
            webhook.wake()
            if webhook.dropped:
                log.info("webhook %s: %d event(s) dropped in all (queue full)", webhook.shown, webhook.dropped)
    return 0


if __name__ == "__main__":
    main("hooks", OPTIONS, __doc__, run, check)
