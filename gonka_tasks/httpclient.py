"""HTTP from the deployer's machine to the seed API: bounded retries, jittered backoff, 429 honoured.

Seed proxies rate-limit (10-20 requests/min per IP), so a 429's Retry-After is respected; 5xx,
resets and timeouts are retried a bounded number of times; other answers are returned as they
are (a 404 is data: "not registered yet"). After the budget, `HttpError` names the endpoint, the
last status and what to try.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from .errors import DeployError

USER_AGENT = "gonka-deploy"


class HttpError(DeployError):
    """The endpoint could not be reached (or kept failing) within the retry budget."""


@dataclass
class Response:
    status: int
    body: bytes

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8", "replace"))
        except ValueError:
            return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def request(url: str, *, method: str = "GET", body: dict | None = None, attempts: int = 5, timeout: float = 10,
            base_wait: float = 0.5, max_wait: float = 20, what: str = "") -> Response:
    """One HTTP call with bounded retries of transient failures; returns the final non-transient answer."""
    data = json.dumps(body).encode() if body is not None else None
    last = "no answer"
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"User-Agent": USER_AGENT, "Accept": "application/json",
                                              **({"Content-Type": "application/json"} if data else {})})
        wait = None
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - URLs come from validated config
                return Response(r.status, r.read())
        except urllib.error.HTTPError as e:
            payload = e.read() if hasattr(e, "read") else b""
            if e.code == 429:
                wait = _retry_after(e.headers)
                last = "HTTP 429 (rate limited)"
            elif e.code >= 500:
                last = f"HTTP {e.code}"
            else:
                return Response(e.code, payload)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            last = f"{type(reason).__name__}: {reason}"
        if attempt < attempts:
            backoff = min(max_wait, base_wait * 2 ** (attempt - 1))
            time.sleep(min(max_wait, wait) if wait is not None else random.uniform(backoff / 2, backoff))
    raise HttpError(f"{what or url}: no usable answer from {url} after {attempts} attempts (last: {last})",
                    "check the URL in the node config and that it is reachable from here; the seed may be "
                    "rate-limiting or down, try again later")


def get_json(url: str, **kw):
    r = request(url, **kw)
    return r.status, r.json()
