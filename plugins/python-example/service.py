"""python-example's gRPC side: clickgate's Forwarder service over the destination logic
of forwarder.py, served through goplugin.py."""

from __future__ import annotations

import datetime
import http.client
import json
import sys
import threading
from typing import Optional

import goplugin  # first: it quiets the gRPC core before grpc is imported
import grpc
from clickgate_forwarder_v1 import forwarder_pb2 as pb
from clickgate_forwarder_v1 import forwarder_pb2_grpc

import forwarder
from forwarder import CONFIG, DEADLINE_MARGIN, FAILED, NOT_SENT, RETRY, ConfigError, Sender


class Forwarder(forwarder_pb2_grpc.ForwarderServicer):
    """clickgate's Forwarder service (sdk/internal/forwarderv1/forwarder.proto). The host
    calls it one call at a time; the lock keeps that true whatever a caller does."""

    def __init__(self, log: goplugin.Logger):
        self._log = log
        self._lock = threading.Lock()
        self._sender: Optional[Sender] = None

    def Describe(self, request, context):
        fields = []
        for f in CONFIG:
            default = f.get("default")
            fields.append(pb.ConfigField(
                name=f["name"], type=f["type"], required=f.get("required", False),
                secret=f.get("secret", False), description=f.get("description", ""),
                default_json="" if default is None else json.dumps(default),
            ))
        return pb.DescribeResponse(name=forwarder.NAME, version=forwarder.VERSION,
                                   description=forwarder.DESCRIPTION, config=fields)

    def Configure(self, request, context):
        try:
            cfg = forwarder.parse_config(request.config_json)
        except ConfigError as e:
            # A rejection goes in the response; an RPC error would read as a broken plugin.
            return pb.ConfigureResponse(error=str(e))
        with self._lock:
            if self._sender is not None:
                self._sender.close()
            self._sender = Sender(cfg)
        self._log.info("configured", destination=f"{cfg.url.scheme}://{cfg.url.netloc}",
                       token=bool(cfg.token), timeout_seconds=cfg.timeout)
        if cfg.token and cfg.url.scheme == "http" and not forwarder.loopback(cfg.url.hostname):
            # Plain stderr reaches the host's log too, as a warning (over StreamStdio).
            print("config.url is plain http to another host: the token would travel unencrypted; use https",
                  file=sys.stderr)
        return pb.ConfigureResponse()

    def Forward(self, request, context):
        with self._lock:
            sender = self._sender
            if sender is None:
                # The whole batch is retried, by a relaunched plugin that gets configured.
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not configured")
            results = [self._one(sender, ev, context) for ev in request.events]
        return pb.ForwardResponse(results=results)

    def _one(self, sender: Sender, ev, context) -> pb.Result:
        try:
            json.loads(ev.json)
        except ValueError:
            return pb.Result(status=FAILED, reason="event is not valid JSON")
        if not forwarder.header_safe(ev.id):
            return pb.Result(status=FAILED, reason="event id cannot be sent as Idempotency-Key")
        timeout = sender.cfg.timeout
        left = context.time_remaining()
        if not context.is_active() or (left is not None and left <= DEADLINE_MARGIN):
            return pb.Result(status=NOT_SENT, reason="not sent: the host's call deadline came first")
        if left is not None:
            timeout = min(timeout, left - DEADLINE_MARGIN)
        token = sender.cfg.token
        try:
            status, retry_after, body = sender.post(ev.id, ev.json, timeout)
        except (OSError, http.client.HTTPException) as e:
            why = str(e) or type(e).__name__
            return pb.Result(status=RETRY, reason=forwarder.redact(f"POST failed: {why}", token))
        st, after, reason = forwarder.outcome(status, retry_after, body,
                                              datetime.datetime.now(datetime.timezone.utc))
        return pb.Result(status=st, retry_after_ms=int(after * 1000), reason=forwarder.redact(reason, token))

    def Close(self, request, context):
        with self._lock:
            if self._sender is not None:
                self._sender.close()
        return pb.CloseResponse()


def run() -> None:
    """Serves the plugin until the host stops it; does not return."""
    log = goplugin.Logger(forwarder.NAME, sys.stderr)
    fwd = Forwarder(log)
    goplugin.serve(
        goplugin.Handshake(forwarder.COOKIE_KEY, forwarder.COOKIE_VALUE, (forwarder.PROTOCOL_VERSION,)),
        lambda server: forwarder_pb2_grpc.add_ForwarderServicer_to_server(fwd, server),
        log,
        not_launched=forwarder.NOT_LAUNCHED,
        max_message_bytes=forwarder.MAX_MESSAGE_BYTES,
        on_shutdown=lambda: fwd.Close(None, None),
    )
