"""``upscaler.wsclient`` against real peers: the ``websockets`` library's server (in a thread, on loopback) for
what a conforming server does, and a bare TCP server for what a broken one does."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import threading

import numpy as np
import pytest
from websockets.sync.server import serve

from upscaler.client import StreamClient, StreamError
from upscaler.wsclient import ConnectionClosed, HandshakeRefused, ProtocolError, WebSocket


@contextlib.contextmanager
def peer(handler, **options):
    """A ``websockets`` server on a free loopback port; yields its ``ws://`` URL."""
    with serve(handler, "127.0.0.1", 0, compression=None, max_size=None, **options) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        scheme = "wss" if options.get("ssl") else "ws"
        yield f"{scheme}://localhost:{server.socket.getsockname()[1]}/path?q=1"
        server.shutdown()
        thread.join(10)


def echo(ws) -> None:
    for message in ws:
        ws.send(message)


def silent(ws) -> None:
    """Reads everything, answers nothing."""
    for _ in ws:
        pass


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 3 * 1024 * 1024 + 3])
def test_binary_messages_of_every_length_encoding_arrive_exactly(size):
    # The server unmasks what it gets and sends it back: a wrong mask or length would not come back equal.
    message = os.urandom(size)
    with peer(echo) as url, WebSocket(url) as ws:
        ws.send(message)
        reply = ws.recv(timeout=10)
        assert isinstance(reply, bytearray) and reply == message


def test_text_messages_are_str_both_ways():
    with peer(echo) as url, WebSocket(url) as ws:
        ws.send("grüße ✓")
        assert ws.recv(timeout=10) == "grüße ✓"


def test_the_request_carries_path_query_and_headers():
    seen = {}

    def handler(ws):
        seen["path"], seen["auth"] = ws.request.path, ws.request.headers.get("Authorization")
        ws.send("ok")

    with peer(handler) as url, WebSocket(url, {"Authorization": "Bearer k"}) as ws:
        assert ws.recv(timeout=10) == "ok"
    assert seen == {"path": "/path?q=1", "auth": "Bearer k"}


def test_fragmented_messages_are_joined():
    def handler(ws):
        ws.send([b"ab", b"cd", b"ef"])
        ws.send(["gr", "üße"])

    with peer(handler) as url, WebSocket(url) as ws:
        assert ws.recv(timeout=10) == b"abcdef"
        assert ws.recv(timeout=10) == "grüße"


def test_pings_are_answered_while_waiting_for_a_message():
    def handler(ws):
        ponged = ws.ping(b"are you there")
        ws.send("pong" if ponged.wait(10) else "no pong")

    with peer(handler) as url, WebSocket(url) as ws:
        assert ws.recv(timeout=20) == "pong"


def test_a_close_comes_after_the_messages_sent_before_it():
    def handler(ws):
        ws.send('{"error": 1}')
        ws.close(4001, "bye")

    with peer(handler) as url, WebSocket(url) as ws:
        assert ws.recv(timeout=10) == '{"error": 1}'
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert (closed.value.code, closed.value.reason) == (4001, "bye")
        with pytest.raises(ConnectionClosed):
            ws.send(b"after the close")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=1)


def test_close_is_a_closing_handshake_the_server_sees():
    codes = []

    def handler(ws):
        for _ in ws:
            pass
        codes.append((ws.close_code, ws.close_reason))

    with peer(handler) as url:
        ws = WebSocket(url)
        ws.close(1000, "done")
        ws.close()  # twice is harmless
        for _ in range(200):
            if codes:
                break
            threading.Event().wait(0.02)
    assert codes == [(1000, "done")]


def test_a_refused_handshake_gives_its_status_and_body():
    def refuse(connection, request):
        return connection.respond(403, '{"error": "nope"}')

    with peer(echo, process_request=refuse) as url, pytest.raises(HandshakeRefused) as refused:
        WebSocket(url)
    assert refused.value.status == 403 and refused.value.body == b'{"error": "nope"}'


def test_a_reply_that_does_not_come_times_out():
    with peer(silent) as url, WebSocket(url) as ws:
        ws.send(b"x")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.2)
        with pytest.raises((ConnectionClosed, OSError)):  # closed: a late reply is not taken for the next
            ws.send(b"y")
            ws.recv(timeout=5)


def test_messages_over_max_size_are_refused_with_1009():
    codes = []  # a large message: unread bytes left at close would reset the connection and lose our 1009

    def handler(ws):
        ws.send(bytes(4_000_000))
        with contextlib.suppress(Exception):
            ws.recv()
        codes.append(ws.close_code)

    with peer(handler) as url, WebSocket(url, max_size=999) as ws, pytest.raises(ProtocolError, match="limit"):
        ws.recv(timeout=10)
    assert codes == [1009]


@contextlib.contextmanager
def raw_server(answer):
    """A bare TCP server: reads the handshake request, sends ``answer(request)``, keeps the socket a while."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run():
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            conn.sendall(answer(request))
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.recv(4096)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    with listener:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/"
    thread.join(10)


def _upgrade(request: bytes, accept: str | None = None) -> bytes:
    from upscaler.wsclient import _accept

    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = accept or _accept(key.decode())
    return f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
           f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()  # fmt: skip


def test_a_wrong_accept_key_is_refused():
    wrong = raw_server(lambda request: _upgrade(request, accept="d3Jvbmc="))
    with wrong as url, pytest.raises(ProtocolError, match="Accept"):
        WebSocket(url)


def test_a_response_that_is_not_http_is_refused():
    not_http = raw_server(lambda request: b"SSH-2.0-OpenSSH\r\n\r\n")
    with not_http as url, pytest.raises(ProtocolError, match="not an HTTP response"):
        WebSocket(url)


@pytest.mark.parametrize(
    "frame, why",
    [
        (b"\x82\x82abcdxy", "masked"),  # servers must not mask
        (b"\xc2\x01x", "reserved"),  # RSV1 without an extension
        (b"\x00\x01x", "continuation"),  # a continuation with nothing to continue
        (b"\x81\x02\xff\xfe", "UTF-8"),
        (b"\x09\x01x", "control"),  # a fragmented ping
    ],
)
def test_broken_frames_are_protocol_errors(frame, why):
    broken = raw_server(lambda request: _upgrade(request) + frame)
    with broken as url, WebSocket(url) as ws, pytest.raises(ProtocolError, match=why):
        ws.recv(timeout=10)


def test_a_dropped_connection_is_closed_1006():
    with raw_server(lambda request: _upgrade(request) + struct.pack("!BB", 0x82, 10) + b"cut") as url:
        ws = WebSocket(url)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.code == 1006


def test_wss_with_the_servers_certificate(tmp_path):
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    with peer(echo, ssl=server_context) as url:
        with pytest.raises(ssl.SSLCertVerificationError):  # the system's trust store does not know it
            WebSocket(url)
        with WebSocket(url, ssl_context=ssl.create_default_context(cafile=cert)) as ws:
            ws.send(b"\x00" * 100_000)
            assert ws.recv(timeout=10) == b"\x00" * 100_000


def test_the_stream_client_closes_a_stream_whose_reply_is_late():
    with peer(silent) as url:
        client = StreamClient(url.replace("ws://", "http://"), width=4, height=4, timeout=10)
        client.timeout = 0.2  # for the reply only: a loaded machine may take longer than that to shake hands
        with pytest.raises(StreamError) as late:
            client.send(np.zeros((4, 4, 3), np.uint8))
        assert late.value.code == "timeout"
        with pytest.raises(StreamError):  # closed: a late reply cannot be taken for the next frame's
            client.send(np.zeros((4, 4, 3), np.uint8))


def test_a_handshake_without_an_answer_is_a_stream_timeout():
    with raw_server(lambda request: b"") as url, pytest.raises(StreamError) as late:
        StreamClient(url, width=4, height=4, timeout=0.2)
    assert late.value.code == "timeout" and "handshake" in str(late.value)
