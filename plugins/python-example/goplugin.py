"""The plugin's side of HashiCorp go-plugin's gRPC protocol, for a plugin not written in Go.

Nothing here is specific to clickgate: serve() takes the application's handshake values
and a function that registers its gRPC services. What a go-plugin host (go-plugin v1.8,
client.go) does with a plugin, and so what this module answers:

1. It starts the plugin with, in its environment, the magic cookie, PLUGIN_PROTOCOL_VERSIONS
   (the application protocol versions the host speaks, comma separated), and with AutoMTLS
   PLUGIN_CLIENT_CERT: the host's one-time client certificate, PEM.
2. It reads one line from the plugin's stdout:
   CORE-PROTOCOL-VERSION|APP-PROTOCOL-VERSION|NETWORK-TYPE|NETWORK-ADDR|PROTOCOL|SERVER-CERT
   e.g. 1|1|unix|/tmp/plugin-x/plugin.sock|grpc|MIIB... SERVER-CERT is the plugin's own
   one-time certificate: DER, base64 with the standard alphabet and no padding. With
   AutoMTLS the host always dials TLS and trusts that certificate alone, so a plugin that
   prints none, or serves plaintext, cannot be connected to. The host's own certificate is
   ECDSA P-521: see _TLSFront for why that keeps TLS away from grpcio here.
3. It calls, besides the application's services: grpc.health.v1.Health/Check for service
   "plugin" (its Ping); plugin.GRPCStdio/StreamStdio once, to copy what the plugin writes
   to stdout and stderr into its log; plugin.GRPCController/Shutdown when it closes the
   plugin, after which it waits 2 s for the process to exit before killing it; and
   plugin.GRPCBroker/StartStream, which only plugins that broker extra connections need:
   the host ignores its failure, so it is not served here.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import os
import queue
import select
import shutil
import signal
import ssl
import stat
import sys
import tempfile
import threading
import traceback
from concurrent import futures
from dataclasses import dataclass
from typing import Callable, NoReturn, Optional, Sequence, TextIO

# The gRPC core logs to stderr on its own; only its errors are worth the host's log.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402

from go_plugin import (  # noqa: E402
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2,
    grpc_stdio_pb2_grpc,
)

# CORE_PROTOCOL_VERSION is go-plugin's own protocol version, the handshake's first field.
CORE_PROTOCOL_VERSION = 1
# HEALTH_SERVICE is the service name the host's Ping checks.
HEALTH_SERVICE = "plugin"
# The host kills the plugin 2 s after Shutdown; in-flight calls get part of that.
SHUTDOWN_GRACE_SECONDS = 1.0
# Chunks of stdout and stderr held for StreamStdio; past this, output is dropped rather
# than blocking the plugin when no host reads it.
STDIO_BUFFER_CHUNKS = 1024


@dataclass(frozen=True)
class Handshake:
    """What must match between host and plugin."""

    cookie_key: str
    cookie_value: str
    # The application protocol versions this plugin speaks.
    protocol_versions: Sequence[int]


class Logger:
    """Writes log lines in hclog's JSON shape, which the host parses from the plugin's
    stderr and re-logs with their level and fields."""

    def __init__(self, name: str, out: TextIO):
        self.name = name
        self.out = out
        self._lock = threading.Lock()

    def log(self, level: str, message: str, **fields) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        line = {
            "@level": level,
            "@message": message,
            "@module": self.name,
            # The layout go-plugin parses: 2006-01-02T15:04:05.000000Z07:00.
            "@timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        line.update({k: v for k, v in fields.items() if not k.startswith("@")})
        text = json.dumps(line, default=str) + "\n"
        with self._lock:
            try:
                self.out.write(text)
                self.out.flush()
            except (OSError, ValueError):
                pass  # the host is gone; nothing left to tell

    def debug(self, message: str, **fields) -> None:
        self.log("debug", message, **fields)

    def info(self, message: str, **fields) -> None:
        self.log("info", message, **fields)

    def warn(self, message: str, **fields) -> None:
        self.log("warn", message, **fields)

    def error(self, message: str, **fields) -> None:
        self.log("error", message, **fields)


class _LoggingHandler(logging.Handler):
    """Sends Python's logging (grpc logs a servicer's exception there) to the Logger."""

    def __init__(self, log: Logger):
        super().__init__(logging.WARNING)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else "warn"
        fields = {"logger": record.name}
        if record.exc_info:
            fields["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        self._log.log(level, record.getMessage(), **fields)


def negotiate(ours: Sequence[int], offered: str) -> int:
    """Picks the newest application protocol version that both sides speak. With none in
    common (or no list) it answers its oldest, as go-plugin's own server does, so that the
    host reports the mismatch in its own words."""
    theirs = set()
    for part in offered.split(","):
        part = part.strip()
        if part.isascii() and part.isdigit():
            theirs.add(int(part))
    common = sorted(set(ours) & theirs)
    return common[-1] if common else min(ours)


def server_certificate() -> tuple[bytes, bytes, str]:
    """Makes the plugin's one-time certificate: a self-signed ECDSA P-256 certificate for
    "localhost" (the name the host's TLS config expects), usable for server and client
    auth like go-plugin's own. Returns the key and certificate as PEM, and the
    certificate as the handshake's last field."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        # The certificate lives as long as the process; the host checks validity at every
        # reconnection, so it must not expire under a long-running plugin.
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    # PEM has newlines, which the one-line handshake cannot carry: go-plugin sends the raw
    # DER in base64 without padding (base64.RawStdEncoding).
    field = base64.b64encode(der).decode("ascii").rstrip("=")
    return key_pem, cert.public_bytes(serialization.Encoding.PEM), field


class _Stdio(grpc_stdio_pb2_grpc.GRPCStdioServicer):
    """Streams what the process writes to fd 1 and 2 after the handshake to the host, which
    logs stdout at info and stderr at warn under the plugin's name."""

    def __init__(self) -> None:
        self._chunks: queue.Queue = queue.Queue(STDIO_BUFFER_CHUNKS)
        self._stopped = threading.Event()
        self.dropped = 0

    def capture(self, fd: int, channel: int) -> None:
        """Points fd at a pipe whose contents the host receives on channel."""
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        threading.Thread(target=self._pump, args=(r, channel), daemon=True).start()

    def _pump(self, r: int, channel: int) -> None:
        while True:
            try:
                data = os.read(r, 32 << 10)
            except OSError:
                return
            if not data:
                return
            try:
                self._chunks.put_nowait(grpc_stdio_pb2.StdioData(channel=channel, data=data))
            except queue.Full:
                self.dropped += 1

    def stop(self) -> None:
        self._stopped.set()

    def StreamStdio(self, request, context):
        while context.is_active() and not self._stopped.is_set():
            try:
                yield self._chunks.get(timeout=0.2)
            except queue.Empty:
                continue


class _Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
    def __init__(self, stop: threading.Event):
        self._stop = stop

    def Shutdown(self, request, context):
        # Answer first: the server stops in the main thread, not under this call.
        self._stop.set()
        return grpc_controller_pb2.Empty()


class _TLSFront:
    """Terminates the host's mTLS with Python's ssl module and relays the plaintext to the
    gRPC server on a socket in the same private directory.

    grpcio's own TLS cannot do it: it is BoringSSL, which in TLS 1.3 does not offer to
    verify ECDSA P-521 signatures (ecdsa_secp521r1_sha512), and go-plugin's AutoMTLS client
    certificate is P-521. The host would find no signature algorithm in common, send no
    certificate, and be refused; grpcio has no setting to limit TLS to 1.2, where ECDSA
    signatures are not tied to a curve. OpenSSL, behind Python's ssl module, takes P-521.
    """

    def __init__(self, outer: str, inner: str, ctx: ssl.SSLContext, log: Logger):
        self._outer, self._inner, self._ctx, self._log = outer, inner, ctx, log
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(self._refused)
        self._server: Optional[asyncio.AbstractServer] = None

    def start(self) -> None:
        """Listens (before the handshake line promises the socket), then serves in a thread."""
        self._server = self._loop.run_until_complete(asyncio.start_unix_server(
            self._relay, path=self._outer, ssl=self._ctx, ssl_handshake_timeout=10, limit=1 << 20))
        threading.Thread(target=self._loop.run_forever, name="tls-front", daemon=True).start()

    def stop(self) -> None:
        def close() -> None:
            if self._server is not None:
                self._server.close()
            self._loop.stop()
        self._loop.call_soon_threadsafe(close)

    def _refused(self, loop, context) -> None:
        # Mostly a failed TLS handshake: someone without the host's certificate tried.
        self._log.warn(context.get("message") or "TLS front error", error=str(context.get("exception", "")))

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            inner_reader, inner_writer = await asyncio.open_unix_connection(self._inner)
        except OSError as e:
            self._log.error("cannot reach the gRPC server", error=str(e))
            writer.close()
            return
        await asyncio.gather(self._copy(reader, inner_writer), self._copy(inner_reader, writer))

    @staticmethod
    async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await src.read(256 << 10)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        except OSError:  # ssl.SSLError included
            pass  # either end went away; closing dst tells the other direction
        finally:
            dst.close()


def _watch_host(fd: int, stop: threading.Event) -> None:
    """Stops the plugin when the host's end of the handshake pipe (the plugin's original
    stdout, which the host reads until the plugin exits) closes: the host is gone, killed
    or crashed, and no Shutdown will come."""
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return  # run by hand with stdout on a terminal or a file: nothing to watch
    p = select.poll()
    p.register(fd, 0)  # POLLERR (no reader left) and POLLHUP are always reported
    while True:
        try:
            if p.poll():
                stop.set()
                return
        except InterruptedError:
            continue


def _tls_context(directory: str, key_pem: bytes, cert_pem: bytes, client_pem: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads files only: they exist, owner-only, for as long as it takes.
    key_file = os.path.join(directory, "key.pem")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, cert_pem + key_pem)
        os.close(fd)
        ctx.load_cert_chain(key_file)
    finally:
        os.unlink(key_file)
    # Only the host that launched the plugin holds the key of PLUGIN_CLIENT_CERT, so
    # requiring it keeps every other local process off the socket.
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=client_pem)
    # gRPC's HTTP/2: the host refuses a TLS connection that did not agree on it.
    ctx.set_alpn_protocols(["h2"])
    return ctx


def serve(
    handshake: Handshake,
    register: Callable[[grpc.Server], None],
    log: Logger,
    not_launched: str,
    max_message_bytes: int = 4 << 20,
    on_shutdown: Optional[Callable[[], None]] = None,
) -> NoReturn:
    """Runs the plugin until the host shuts it down, then exits the process.

    register adds the application's services to the server. not_launched is printed, and
    the process exits 1, when the magic cookie is missing: someone ran the plugin by hand.
    on_shutdown runs once the host has asked the plugin to stop.
    """
    if os.environ.get(handshake.cookie_key) != handshake.cookie_value:
        sys.stderr.write(not_launched.rstrip("\n") + "\n")
        sys.exit(1)
    client_pem = os.environ.get("PLUGIN_CLIENT_CERT", "")
    if not client_pem:
        # go-plugin's Go server would fall back to plaintext here, but a host without
        # AutoMTLS is not one this plugin lets connect.
        sys.stderr.write("PLUGIN_CLIENT_CERT is not set: this plugin needs a host with go-plugin's AutoMTLS\n")
        sys.exit(1)
    try:
        x509.load_pem_x509_certificate(client_pem.encode())
    except ValueError as e:
        sys.stderr.write(f"PLUGIN_CLIENT_CERT is not a PEM certificate: {e}\n")
        sys.exit(1)

    logging.basicConfig(handlers=[_LoggingHandler(log)], level=logging.WARNING, force=True)
    sys.excepthook = lambda t, v, tb: log.error(
        "uncaught exception", traceback="".join(traceback.format_exception(t, v, tb))
    )
    threading.excepthook = lambda a: log.error(
        "uncaught exception in a thread",
        thread=a.thread.name if a.thread else "",
        traceback="".join(traceback.format_exception(a.exc_type, a.exc_value, a.exc_traceback)),
    )

    version = negotiate(handshake.protocol_versions, os.environ.get("PLUGIN_PROTOCOL_VERSIONS", ""))
    key_pem, cert_pem, cert_field = server_certificate()
    # A private directory for the sockets: the host's (TLS), and the gRPC server's behind it
    # (plaintext), which no other user can reach there.
    sock_dir = tempfile.mkdtemp(prefix="plugin", dir=os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or None)
    sock = os.path.join(sock_dir, "plugin.sock")
    inner = os.path.join(sock_dir, "grpc.sock")
    front = _TLSFront(sock, inner, _tls_context(sock_dir, key_pem, cert_pem, client_pem), log)

    stop = threading.Event()
    stdio = _Stdio()
    server = grpc.server(
        # One worker stays in StreamStdio for the plugin's life; the host's calls are
        # one at a time, beside health checks.
        futures.ThreadPoolExecutor(max_workers=8),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    checker = health.HealthServicer()
    checker.set(HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(_Controller(stop), server)
    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(stdio, server)
    register(server)
    try:
        if server.add_insecure_port("unix:" + inner) == 0:
            raise OSError(f"cannot listen on {inner}")
        server.start()
        front.start()
    except OSError as e:
        shutil.rmtree(sock_dir, ignore_errors=True)
        sys.stderr.write(f"{e}\n")
        sys.exit(1)

    # Ctrl-C at a terminal reaches its whole foreground process group; the plugin stops
    # when its host says so (Shutdown), as go-plugin's Go plugins do. SIGTERM still does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    sys.stdout.write(f"{CORE_PROTOCOL_VERSION}|{version}|unix|{sock}|grpc|{cert_field}\n")
    sys.stdout.flush()
    # From here on the host discards what arrives on stdout: what is written to stdout or
    # stderr reaches it over StreamStdio instead. The logger keeps the real stderr, which
    # the host reads and logs itself.
    log.out = os.fdopen(os.dup(2), "w", encoding="utf-8", errors="replace")
    threading.Thread(target=_watch_host, args=(os.dup(1), stop), name="host-watch", daemon=True).start()
    stdio.capture(1, grpc_stdio_pb2.StdioData.STDOUT)
    stdio.capture(2, grpc_stdio_pb2.StdioData.STDERR)
    sys.stdout.reconfigure(line_buffering=True)
    log.debug("serving", protocol_version=version, network="unix", address=sock)

    while not stop.wait(1.0):
        pass
    code = 0
    try:
        if on_shutdown is not None:
            on_shutdown()
    except Exception:  # the process exits either way; say why it was not clean
        log.error("shutdown failed", traceback=traceback.format_exc())
        code = 1
    stdio.stop()
    # The relay stays up until the server has stopped: the server's goodbye, and the
    # host's closing of its connection, travel through it.
    server.stop(SHUTDOWN_GRACE_SECONDS).wait(SHUTDOWN_GRACE_SECONDS + 0.5)
    front.stop()
    shutil.rmtree(sock_dir, ignore_errors=True)
    if stdio.dropped:
        log.warn("output was dropped: no host read it", chunks=stdio.dropped)
    log.debug("stopped")
    sys.stdout.flush()
    # os._exit, not sys.exit: a call still blocked (an HTTP request past the grace
    # period) would hold the interpreter open past the host's 2 s, and get it killed.
    os._exit(code)
