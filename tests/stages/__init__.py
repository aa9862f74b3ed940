"""Tests that start real processes (the stages, process managers, tools) or open real sockets.

ZeroMQ, HTTP, WebSocket, an MQTT broker, RTSP and MJPEG sources: on loopback, on ports from
tests.support.ports, with every process reaped when the test ends.
"""
