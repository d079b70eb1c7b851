"""The Docker HEALTHCHECK: ``python -m connector.healthcheck`` exits 0 when the local web server answers
``GET /healthz`` with 200, else 1.

It asks the way a request through the TLS-terminating proxy arrives: with a Host that ``ALLOWED_HOSTS`` accepts and
the proxy's ``X-Forwarded-Proto: https``. A plain ``GET http://127.0.0.1:8000/healthz`` gets 400 in production mode
(the host is not allowed) and, with the host allowed, a redirect to HTTPS. Standard library only, and no Django
start-up: it runs every 30 seconds. Environment: ``ALLOWED_HOSTS`` (as for the service), ``HEALTHCHECK_URL``
(default below), ``HEALTHCHECK_TIMEOUT`` (seconds, default 5).
"""

from __future__ import annotations

import http.client
import os
import sys
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000/healthz"
# The header production's SECURE_PROXY_SSL_HEADER trusts (connector/settings.py); ignored outside production.
HTTPS_HEADER = ("X-Forwarded-Proto", "https")


def host_for(allowed_hosts: list[str]) -> str:
    """A host name the service accepts: the first ALLOWED_HOSTS entry, made concrete."""
    for pattern in allowed_hosts:
        if pattern == "*":
            return "localhost"
        host = pattern.strip().lstrip(".")  # ".example.com" allows example.com itself
        if host:
            return host
    return "localhost"  # development: Django allows localhost names when ALLOWED_HOSTS is empty and DEBUG on


def request_headers(allowed_hosts: list[str]) -> dict[str, str]:
    return {
        "Host": host_for(allowed_hosts),
        HTTPS_HEADER[0]: HTTPS_HEADER[1],
        "User-Agent": "connector-healthcheck",
    }


def probe(url: str, headers: dict[str, str], timeout: float) -> tuple[bool, str]:
    """GET ``url`` once, following no redirect (a redirect is a failure). Returns (healthy, what happened)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False, f"not an http(s) URL: {url!r}"
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = connection_class(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers=headers)
        response = conn.getresponse()
        body = response.read(300).decode("utf-8", "replace").strip()
    except OSError as exc:
        return False, f"unhealthy: {url}: {exc}"
    finally:
        conn.close()
    healthy = response.status == 200
    return (
        healthy,
        f"{'healthy' if healthy else 'unhealthy'}: {url} answered HTTP {response.status} {body[:200]}",
    )


def main() -> int:
    allowed = [h for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    healthy, message = probe(
        os.environ.get("HEALTHCHECK_URL", DEFAULT_URL),
        request_headers(allowed),
        float(os.environ.get("HEALTHCHECK_TIMEOUT", "5")),
    )
    print(message)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
