"""What a simulated program's HTTP handlers return, and the error that stops one from starting."""

from __future__ import annotations

import json


class Fatal(Exception):
    """The program fails to start: message logged, container exits 1."""


class Response:
    def __init__(self, status: int = 200, body: bytes | str = b"", ctype: str = "application/json",
                 headers: dict | None = None):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = {"Content-Type": ctype, **(headers or {})}


def json_response(obj, status: int = 200) -> Response:
    return Response(status, json.dumps(obj) + "\n")


def text_response(text: str, status: int = 200, ctype: str = "text/plain; charset=utf-8") -> Response:
    return Response(status, text, ctype)
