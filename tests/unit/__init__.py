"""Unit tests: the pipeline's functions and classes in the test process, with no process and no socket.

Fast and self-contained: ``pytest tests/unit`` needs no free port, no browser and no broker.
"""
