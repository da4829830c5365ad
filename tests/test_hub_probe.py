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

    def do_CONNECT(self):  # noqa: N802 - an https request through the proxy: the tunnel is asked for, refused
        _Proxy.seen.append("CONNECT " + self.path)
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

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


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_a_host_in_no_proxy_is_asked_directly(monkeypatch, proxy, online_hub):  # noqa: ARG001
    from model_utils.model.backbone import hub_reachable

    # the hub's name only the proxy could resolve, but NO_PROXY lists it: asked directly, fails at DNS
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.geoclip-test.invalid")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "hub.geoclip-test.invalid")
    assert hub_reachable(timeout=3.0) is False
    assert _Proxy.seen == []


def test_no_proxy_reaches_a_hub_the_dead_proxy_would_not(monkeypatch, proxy, online_hub):  # noqa: ARG001
    from model_utils.model.backbone import hub_reachable

    monkeypatch.setenv("HF_ENDPOINT", proxy)  # the stand-in answers direct requests too
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")  # nothing listens: via it, no answer
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert hub_reachable(timeout=3.0) is True
    assert _Proxy.seen == ["/api/models"]  # a direct request: a path, not an absolute URL


def test_an_https_hub_is_asked_through_https_proxy(monkeypatch, proxy, online_hub):  # noqa: ARG001
    from model_utils.model.backbone import hub_reachable

    monkeypatch.setenv("HF_ENDPOINT", "https://hub.geoclip-test.invalid")
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    # the proxy refuses the tunnel, so the hub does not answer; what matters is where the probe went
    assert hub_reachable(timeout=3.0) is False
    assert _Proxy.seen == ["CONNECT hub.geoclip-test.invalid:443"]


def test_the_probe_works_with_huggingface_hub_before_1_0(monkeypatch, proxy, online_hub):  # noqa: ARG001
    """huggingface_hub < 1.0 (as a transformers 4.x install brings) hands out a requests session, which has no
    ``follow_redirects``: the probe must still answer, not always say unreachable."""
    requests = pytest.importorskip("requests")
    import huggingface_hub.utils

    from model_utils.model.backbone import hub_reachable

    monkeypatch.setattr(huggingface_hub.utils, "get_session", requests.Session)
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.geoclip-test.invalid")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    assert hub_reachable(timeout=5.0) is True
    assert _Proxy.seen and _Proxy.seen[0].startswith("http://hub.geoclip-test.invalid/")

