"""May weights be fetched from the network? Decided from the user's flags, then one quick probe per host.

``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE`` or ``IMGX_OFFLINE`` mean: local caches only. Without them, a
host that cannot reach the download server at all (no DNS, no route, connection refused) is found with one
short TCP connection, remembered for the process, so that loading reports "unavailable, and why" at once
instead of after huggingface_hub's five back-off retries (about 23 s, per file). Behind a proxy the probe
is skipped: the proxy, not a direct connection, decides.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlsplit

OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "IMGX_OFFLINE")
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
PROBE_SECONDS = 3.0


def offline_flag() -> str | None:
    """The name of the offline flag that is set (``1``, ``true``, ``yes`` or ``on``), or ``None``."""
    for name in OFFLINE_FLAGS:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def hf_endpoint() -> str:
    """The Hugging Face server downloads go to (``HF_ENDPOINT``, as huggingface_hub reads it)."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"


def cache_only_reason(url: str | None = None) -> str | None:
    """Why only local files may be used for a download from ``url`` (default: the HF endpoint), or ``None``.

    The reason names the offline flag that is set, or the host that could not be reached and the error.
    """
    flag = offline_flag()
    if flag:
        return f"{flag} is set"
    if any(os.environ.get(v) for v in PROXY_VARS):
        return None
    parts = urlsplit(url or hf_endpoint())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _unreachable(parts.hostname or "", port)


@functools.cache
def _unreachable(host: str, port: int) -> str | None:
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc.strerror or type(exc).__name__})"
    return None


def forget_probes() -> None:
    """Probe again on the next call (the network may have come back; tests change the endpoint)."""
    _unreachable.cache_clear()
