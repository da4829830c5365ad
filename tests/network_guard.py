"""Make every slow way to fail a recorded, immediate failure: shared by the "fails fast" tests.

A test that asserted "< 10 s" measured the machine's load as much as the code. What "fast" means is that
nothing waits on the network: no socket connects, the hub is not probed, nothing is downloaded. Those are
the only calls that can block for long, so a test that forbids them and still gets its error is as strict
as a stopwatch and cannot flake.
"""

from __future__ import annotations

import socket


def forbid_network(monkeypatch) -> list[str]:
    """Patch the blocking calls to record themselves and raise; the returned list must stay empty."""
    from model_utils.model import backbone, hub_download

    attempts: list[str] = []

    def refuse(what: str):
        def call(*args, **kwargs):
            attempts.append(what)
            raise AssertionError(f"{what} was called: the failure was not immediate")
        return call

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(backbone, "hub_reachable", refuse("hub_reachable"))
    monkeypatch.setattr(hub_download, "download", refuse("hub_download.download"))
    return attempts
