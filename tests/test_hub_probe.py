"""The hub probe connects the way huggingface_hub will: through the environment's proxy, to HF_ENDPOINT,
and gives up on a hub that accepts and then stays silent. Loopback servers only; no network."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy stand-in: answers every request itself and remembers what it was asked."""

    seen: list[str] = []

    def do_HEAD(self):  # noqa: N802 - http.server API
        _Proxy.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD  # noqa: N815

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture()
def proxy():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Proxy.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_probe_goes_through_the_proxy_of_the_environment(monkeypatch, proxy, online_hub):  # noqa: ARG001
    from model_utils.model.backbone import hub_reachable

    # a hub name only the proxy can resolve: without the proxy the probe would fail at DNS
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.geoclip-test.invalid")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    assert hub_reachable(timeout=5.0) is True
    assert _Proxy.seen and _Proxy.seen[0].startswith("http://hub.geoclip-test.invalid/")


def test_no_proxy_and_an_unresolvable_hub_is_unreachable(monkeypatch, online_hub):  # noqa: ARG001
    from model_utils.model.backbone import hub_reachable

    monkeypatch.setenv("HF_ENDPOINT", "http://hub.geoclip-test.invalid")
    assert hub_reachable(timeout=3.0) is False


def test_a_hub_that_accepts_and_stays_silent_is_unreachable(monkeypatch, online_hub):  # noqa: ARG001
    from model_utils.model.backbone import hub_reachable

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts connections (the kernel does) and never answers
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        assert hub_reachable(timeout=1.0) is False
    finally:
        silent.close()
