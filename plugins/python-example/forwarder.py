"""python-example: a clickgate forwarder plugin written in Python.

It POSTs each event's JSON document to a configured URL, one request per event, and
answers one result per event: 2xx delivered; 429 and 5xx retry, not before the response's
Retry-After; any other status failed (the host dead-letters it); a network error retry.

This file is the entry point and what the plugin does with events, in the standard
library alone; service.py is clickgate's gRPC service over it, and goplugin.py the
go-plugin protocol under that. clickgate's host launches it like a Go plugin, through the
python-example launcher beside it. "forwarder.py describe" prints what the Go SDK's
describe prints.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import re
import ssl
import sys
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

NAME = "python-example"
VERSION = "0.1.0"
DESCRIPTION = "POST each event as JSON to a URL (a forwarder written in Python)"
# The clickgate plugin protocol this plugin speaks, and the handshake values of
# sdk/internal/glue: a host with others refuses it.
PROTOCOL_VERSION = 1
COOKIE_KEY = "CLICKGATE_PLUGIN"
COOKIE_VALUE = "forwarder-7f3c2a91e4b8"
# The host's limit for one message: a Forward batch of thousands of events.
MAX_MESSAGE_BYTES = 64 << 20

# CONFIG documents the "config" object of the plugins file, in the order and shape of
# the Go SDK's sdk.ConfigField.
CONFIG = [
    {"name": "url", "type": "string", "required": True,
     "description": "http or https endpoint receiving one POST per event"},
    {"name": "token", "type": "string", "secret": True,
     "description": "sent as Authorization: Bearer <token>"},
    {"name": "timeout", "type": "duration", "default": "10s",
     "description": "per request, at most 5m"},
]

MAX_TIMEOUT = 300.0
# A receiver cannot park an event for longer than this, whatever its Retry-After says.
MAX_RETRY_AFTER = 3600.0
# How much of a refusal's body a reason quotes.
SNIPPET_BYTES = 200
# How much of a response body is read to keep the connection; past it, the connection
# is dropped instead.
DRAIN_BYTES = 64 << 10
# Time kept back from the host's call deadline: an event that cannot finish inside the
# deadline is answered retry instead of overrunning it (which gets the plugin killed).
DEADLINE_MARGIN = 0.25

# Outcomes: the values of forwarder.proto's Result.Status. NOT_SENT is for an event the
# call did not try: retried like RETRY, it uses up no attempt while others were tried.
DELIVERED, RETRY, FAILED, NOT_SENT = 1, 2, 3, 4


def describe() -> str:
    """The JSON that `describe` prints: what the Go SDK's Serve prints for "describe",
    byte for byte (Go's encoder escapes <, > and & inside strings)."""
    out = {"name": NAME, "version": VERSION, "protocol_version": PROTOCOL_VERSION}
    if DESCRIPTION:
        out["description"] = DESCRIPTION
    out["config"] = CONFIG
    text = json.dumps(out, indent=2, ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text + "\n"


class ConfigError(ValueError):
    """A rejected configuration; its message names the field and goes to the operator."""


@dataclass(frozen=True)
class Config:
    url: urllib.parse.SplitResult
    token: str = field(repr=False)  # a secret: never in a repr, so never in a log
    timeout: float = 10.0


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Reads a duration the way Go's time.ParseDuration does ("10s", "1m30s", "250ms"),
    as seconds, so plugins files read alike for Go and Python plugins."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError("empty duration")
    return total


def parse_config(raw: bytes) -> Config:
    """Validates the plugins file's "config" object."""
    try:
        doc = json.loads(raw or b"{}")
    except ValueError as e:
        raise ConfigError(f"config: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError("config: want a JSON object")
    known = {f["name"] for f in CONFIG}
    for key in doc:
        if key not in known:
            # A misspelt field is an error, not a silent default.
            raise ConfigError(f"config: unknown field {key!r}")

    url = doc.get("url")
    if not isinstance(url, str):
        raise ConfigError("config.url: required, an http or https URL")
    try:
        u = urllib.parse.urlsplit(url)
        u.port  # raises on a bad port
    except ValueError:
        raise ConfigError("config.url: want an http or https URL") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError("config.url: want an http or https URL")
    if u.username is not None or u.password is not None:
        raise ConfigError("config.url: put credentials in token, not in the URL")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ConfigError("config.url: must not contain spaces or control characters")

    token = doc.get("token", "")
    if not isinstance(token, str):
        raise ConfigError("config.token: want a string")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
        raise ConfigError("config.token: must not contain control characters")

    timeout_text = doc.get("timeout", "10s")
    try:
        if not isinstance(timeout_text, str):
            raise ValueError
        timeout = parse_duration(timeout_text)
    except ValueError:
        raise ConfigError("config.timeout: want a duration like 10s") from None
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ConfigError("config.timeout: want more than 0 and at most 5m")
    return Config(url=u, token=token, timeout=timeout)


_DIGITS = re.compile(r"[0-9]+")
# RFC 9110 section 5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms that a
# recipient must still accept.
_HTTP_DATES = ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y")


def parse_retry_after(value: Optional[str], now: datetime.datetime) -> float:
    """Reads Retry-After (delay-seconds or an HTTP-date) as seconds from now, capped at
    MAX_RETRY_AFTER; 0 when absent, unreadable or past, which leaves the wait to the
    host's back-off."""
    if value is None:
        return 0.0
    value = value.strip()
    if _DIGITS.fullmatch(value):
        # Compare as text first: a header of a million digits is not worth converting.
        if len(value) > 7:
            return MAX_RETRY_AFTER
        return min(float(int(value)), MAX_RETRY_AFTER)
    for layout in _HTTP_DATES:
        try:
            at = datetime.datetime.strptime(value, layout).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            continue
        return min(max((at - now).total_seconds(), 0.0), MAX_RETRY_AFTER)
    return 0.0


def redact(text: str, secret: str) -> str:
    """Removes the secret from text bound for the host's log (a receiver may echo it)."""
    return text.replace(secret, "[redacted]") if secret else text


def snippet(body: bytes) -> str:
    """The start of a response body, on one line, for a reason."""
    text = body[:SNIPPET_BYTES].decode("utf-8", "replace")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def outcome(status: int, retry_after: Optional[str], body: bytes,
            now: datetime.datetime) -> tuple[int, float, str]:
    """Maps a response to (status, retry after in seconds, reason)."""
    reason = f"{status} {snippet(body)}".strip()
    if 200 <= status < 300:
        return DELIVERED, 0.0, ""
    if status == 429 or status >= 500:
        return RETRY, parse_retry_after(retry_after, now), reason
    return FAILED, 0.0, reason


class Sender:
    """POSTs to the configured URL over one kept-alive connection."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._conn: Optional[http.client.HTTPConnection] = None
        self._target = cfg.url.path or "/"
        if cfg.url.query:
            self._target += "?" + cfg.url.query

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        u = self.cfg.url
        # An explicit port, always: http.client would read the last part of an IPv6
        # address as one.
        if u.scheme == "https":
            return http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)

    def post(self, event_id: str, body: bytes, timeout: float) -> tuple[int, Optional[str], bytes]:
        """Sends one event; returns the status, Retry-After and the start of the body."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"clickgate-{NAME}/{VERSION}",
        }
        if event_id:
            # Stable across redeliveries: the receiver drops a second copy.
            headers["Idempotency-Key"] = event_id
        if self.cfg.token:
            headers["Authorization"] = "Bearer " + self.cfg.token
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connect(timeout)
            self._conn.timeout = timeout
            if self._conn.sock is not None:
                self._conn.sock.settimeout(timeout)
            try:
                self._conn.request("POST", self._target, body=body, headers=headers)
                resp = self._conn.getresponse()
                data = resp.read(DRAIN_BYTES)
                if not resp.isclosed():
                    self.close()  # a body past DRAIN_BYTES: not worth reading to keep the connection
                return resp.status, resp.getheader("Retry-After"), data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                # A kept-alive connection the receiver had closed: one fresh try.
                if not reused or attempt == 2:
                    raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def loopback(host: str) -> bool:
    """Whether host is this machine (where plain http is no risk to the token)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")


def header_safe(value: str) -> bool:
    """Whether value can be sent as a header value as it is."""
    return _HEADER_SAFE.fullmatch(value) is not None


NOT_LAUNCHED = (f"{NAME} is a clickgate forwarder plugin: list it in CLICKGATE_PLUGINS_FILE, "
                "or run it with \"describe\"")


def main() -> None:
    if sys.argv[1:] == ["describe"]:
        sys.stdout.write(describe())
        return
    if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
        sys.stderr.write(NOT_LAUNCHED + "\n")
        sys.exit(1)
    # Only now the gRPC stack, which takes most of a start: describe and the check above
    # answer at once without it.
    import service

    service.run()


if __name__ == "__main__":
    main()
