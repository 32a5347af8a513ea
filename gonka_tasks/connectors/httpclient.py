"""HTTP from the deployer's machine to the seed API: bounded retries, jittered backoff, 429 honoured.

Seed proxies rate-limit (10-20 requests/min per IP), so a 429's Retry-After is respected; 5xx,
resets and timeouts are retried a bounded number of times; other answers are returned as they
are (a 404 is data: "not registered yet"). After the budget, `HttpError` names the endpoint, the
last status and what to try.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from gonka_tasks.errors import DeployError

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
    """Seconds a 429/503 asks us to wait: `Retry-After: <seconds>` or `Retry-After: <HTTP date>`."""
    value = (headers.get("Retry-After") if headers else None) or ""
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo else None


def _advice(last_kind: str) -> str:
    """What to try, by the kind of the last failure."""
    if last_kind == "rate":
        return ("the endpoint is rate-limiting this machine (HTTP 429): wait a minute or two and rerun; "
                "several deploys from one machine share its limit")
    if last_kind == "server":
        return ("the server side fails (HTTP 5xx): try again later, or point the node config at another "
                "seed/RPC URL")
    return ("check the URL in the node config and that it is reachable from this machine (DNS, firewall, "
            "proxy); rerun once it is")


def request(url: str, *, method: str = "GET", body: dict | None = None, attempts: int = 5, timeout: float = 10,
            base_wait: float = 0.5, max_wait: float = 20, what: str = "") -> Response:
    """One HTTP call with bounded retries of transient failures; returns the final non-transient answer.

    Transient: 429 (waits what Retry-After asks, at most `max_wait`), 5xx, refused/reset/dropped
    connections, truncated answers, timeouts. Between attempts the wait grows exponentially with
    jitter (uniform in [b/2, b], b = base_wait * 2^n, capped at max_wait), so the whole call takes
    at most about attempts * timeout + (attempts - 1) * max_wait.
    """
    data = json.dumps(body).encode() if body is not None else None
    last, last_kind = "no answer", "network"
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"User-Agent": USER_AGENT, "Accept": "application/json",
                                              **({"Content-Type": "application/json"} if data else {})})
        wait = None
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - URLs come from validated config
                return Response(r.status, r.read())
        except urllib.error.HTTPError as e:
            try:
                payload = e.read()
            except (OSError, http.client.HTTPException):
                payload = b""
            if e.code == 429:
                wait = _retry_after(e.headers)
                last, last_kind = "HTTP 429 (rate limited)", "rate"
            elif e.code >= 500:
                wait = _retry_after(e.headers) if e.code == 503 else None
                last, last_kind = f"HTTP {e.code}", "server"
            else:
                return Response(e.code, payload)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            # URLError wraps refused/unreachable; RemoteDisconnected, IncompleteRead, BadStatusLine and
            # resets are a connection dropped mid-answer; TimeoutError an answer too slow.
            reason = getattr(e, "reason", e)
            last, last_kind = f"{type(reason).__name__}: {reason}", "network"
        if attempt < attempts:
            backoff = min(max_wait, base_wait * 2 ** (attempt - 1))
            time.sleep(min(max_wait, wait) if wait is not None else random.uniform(backoff / 2, backoff))
    raise HttpError(f"{what or url}: no usable answer from {url} after {attempts} attempts (last: {last})",
                    _advice(last_kind))


def get_json(url: str, **kw):
    r = request(url, **kw)
    return r.status, r.json()
