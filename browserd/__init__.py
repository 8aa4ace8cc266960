"""browserd: a daemonized pool of warm headless Chromium browsers."""

__version__ = "0.1.0"
