"""The HTTP side of :class:`~onnxplain.models.remote.RemoteModel`: keep-alive connections (one per
thread), timeouts and retries.

Failure policy (the documented behaviour the tests hold us to):

* connection errors (refused, reset, dropped) and HTTP 5xx / 429 are retried ``retries`` times
  with exponential backoff ``backoff · 2^k`` seconds (capped by ``backoff_max``; a numeric
  ``Retry-After`` header is honoured within the same cap);
* a **timeout** (no byte from the server for ``timeout`` seconds on one socket operation) is
  treated as transient too, because inference is idempotent and an overloaded server is the
  usual cause: it is retried like a connection error and, once the retries are spent, raised as
  :class:`RemoteTimeoutError` (a :class:`~onnxplain.errors.RemoteModelError`);
* any other status is returned to the caller, which never retries it (a 4xx is the request's
  fault, a 2xx that is not the protocol is the server answering, just not correctly).

Every error names the URL and, where there is one, the HTTP status (``error.url``,
``error.status``).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onnxplain.errors import RemoteModelError
from onnxplain.serving.protocol import error_text

__all__ = ["HttpTransport", "RemoteTimeoutError", "Response", "remote_error"]

_RETRY_STATUSES = frozenset({429})  # and every 5xx


class RemoteTimeoutError(RemoteModelError, TimeoutError):
    """The endpoint did not answer within ``timeout`` seconds, on every attempt."""


def remote_error(message: str, url: str, status: int | None, cls: type[RemoteModelError] = RemoteModelError) -> Any:
    """A :class:`RemoteModelError` (or ``cls``) carrying ``url`` and ``status`` attributes."""
    error = cls(message)
    error.url, error.status = url, status  # type: ignore[attr-defined]
    return error


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class HttpTransport:
    """Requests to one server: ``base_url`` (scheme, host, port and an optional path prefix).

    Connections are per thread (``http.client`` connections are not thread-safe) and reused
    (keep-alive); the object pickles without them and reconnects on first use.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        backoff_max: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.base_url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self._scheme, self._netloc, self._prefix = parts.scheme, parts.netloc, parts.path.rstrip("/")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.backoff_max = float(backoff_max)
        self.headers = dict(headers or {})
        self._init_connections()

    def _init_connections(self) -> None:
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_local", "_conns", "_lock"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_connections()

    def close(self) -> None:
        """Close every keep-alive connection (the next request opens a new one)."""
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = cls(self._netloc, timeout=self.timeout)
            conn.connect()
            # http.client writes headers and a bytes body in one send, but a large body may still
            # leave in several segments: do not let Nagle's algorithm wait for the server's ACK
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            self._local.conn = None

    def _attempt(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        conn = self._connection()
        conn.request(method, self._prefix + path, body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        response = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
        if resp.will_close:
            self._drop_connection()
        return response

    def request(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Response:
        """One HTTP exchange with retries; returns any non-retryable answer, raises on exhaustion."""
        all_headers = {**self.headers, **headers}
        attempts = self.retries + 1
        last, timed_out, last_status = "", False, None
        for attempt in range(attempts):
            delay = min(self.backoff_max, self.backoff * (2**attempt))
            try:
                response = self._attempt(method, path, body, all_headers)
            except TimeoutError as exc:
                self._drop_connection()
                timed_out, last_status = True, None
                last = f"no answer within {self.timeout:g} s ({exc or 'timed out'})"
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                timed_out, last_status = False, None
                last = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                status = response.status
                if not (status >= 500 or status in _RETRY_STATUSES):
                    return response
                timed_out, last_status = False, status
                last = f"HTTP {status} ({error_text(response.body)})"
                retry_after = response.headers.get("retry-after", "")
                if retry_after.strip().isdigit():
                    delay = min(self.backoff_max, max(delay, float(retry_after)))
            if attempt + 1 < attempts and delay > 0:
                time.sleep(delay)
        url = self.base_url + path
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        cls = RemoteTimeoutError if timed_out else RemoteModelError
        raise remote_error(f"{method} {url} failed after {tries}: {last}.", url, last_status, cls)

    def get_json(self, path: str, *, what: str) -> Any:
        """GET ``path`` and parse its JSON; any non-200 answer is a :class:`RemoteModelError`."""
        response = self.request("GET", path, None, {"Accept": "application/json"})
        url = self.base_url + path
        if response.status != 200:
            raise remote_error(
                f"GET {url} ({what}) answered HTTP {response.status}: {error_text(response.body)}.",
                url,
                response.status,
            )
        try:
            return json.loads(response.body)
        except ValueError as exc:
            raise remote_error(f"GET {url} ({what}) returned malformed JSON ({exc}).", url, 200) from exc
