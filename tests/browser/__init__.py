"""Tests that drive the gateway's pages in a headless Chromium (Debian's chromium and chromium-driver)."""
