"""Which package indexes pip will use, and whether each answers now: probed once, all at once, bounded.

Why probe before pip: an index pip cannot reach costs minutes of retries per package and a log full of
tracebacks; and when the PyTorch CPU index is out of reach pip would quietly take PyPI's CUDA torch
(several GB). One short HEAD per index gives one clear line instead.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # CPU wheels: ~200 MB instead of several GB
TORCH_INDEX_ENV = "GEOCLIP_TORCH_INDEX"  # another CPU wheel index (a mirror)
PYPI_INDEX = "https://pypi.org/simple"  # pip's default index
PIP_EXTRA_ENV = "GEOCLIP_PIP_ARGS"  # extra pip arguments, e.g. "--no-index --find-links /wheels" offline
PROBE_SECONDS = 8.0


def torch_index() -> str:
    """Where torch's CPU build comes from: ``$GEOCLIP_TORCH_INDEX`` or PyTorch's CPU index."""
    return os.environ.get(TORCH_INDEX_ENV) or TORCH_CPU_INDEX


def extra_pip_args() -> list[str]:
    """``$GEOCLIP_PIP_ARGS`` as pip arguments."""
    return shlex.split(os.environ.get(PIP_EXTRA_ENV, ""))


def _http_only_opener():
    """A urllib opener that speaks http and https only (proxies from the environment, as pip uses them, and
    redirects): no file:, ftp: or data: handler (they end in "unknown url type"), so a probe can never read a local
    file or another scheme."""
    import urllib.request as rq

    opener = rq.OpenerDirector()
    for handler in (rq.ProxyHandler(), rq.HTTPHandler(), rq.HTTPSHandler(), rq.HTTPDefaultErrorHandler(),
                    rq.HTTPRedirectHandler(), rq.HTTPErrorProcessor(), rq.UnknownHandler()):
        opener.add_handler(handler)
    return opener


def _probe(url: str, timeout: float) -> bool:
    """One HEAD request to a package index. Any HTTP answer but a proxy's or gateway's error means the index's
    server answered (a mirror may refuse HEAD with 403/405). Only http(s) URLs are asked (``probeable``)."""
    import urllib.error
    import urllib.request

    if not probeable(url):
        return False
    try:
        with _http_only_opener().open(urllib.request.Request(url.rstrip("/") + "/", method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code != 407 and exc.code < 500
    except Exception:  # noqa: BLE001 - refused, DNS, TLS, timeout: not reachable now
        return False


def indexes_reachable(urls: list[str], timeout: float = PROBE_SECONDS) -> dict[str, bool]:
    """Probe every index once, all at the same time; each answer is bounded by ``timeout`` (+1 s for the
    thread), so a silent server (accepts, never answers) costs ``timeout``, not pip's retries."""
    import time

    results = dict.fromkeys(urls, False)

    def probe(url: str) -> None:
        results[url] = _probe(url, timeout)

    threads = [threading.Thread(target=probe, args=(url,), daemon=True, name="geoclip-index-probe") for url in urls]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 1.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {url: results[url] and not thread.is_alive() for url, thread in zip(urls, threads)}


def _option(args: list[str], *names: str) -> str | None:
    """The value of the last ``--name VALUE`` / ``--name=VALUE`` / ``-i VALUE`` in ``args``."""
    value = None
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(name + "=") and name.startswith("--"):
                value = arg.split("=", 1)[1]
    return value


def pip_config_index(python: str) -> str | None:
    """The index set in pip's configuration files (``pip config list``), as pip itself reads them."""
    try:
        done = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        found[key.strip()] = value.strip().strip("'\"")
    return found.get("install.index-url") or found.get("global.index-url") or None


def default_index(python: str | None = None) -> str:
    """The index pip uses for everything but torch: ``$GEOCLIP_PIP_ARGS --index-url``, ``$PIP_INDEX_URL``,
    pip's configuration, else PyPI."""
    return (_option(extra_pip_args(), "--index-url", "-i")
            or os.environ.get("PIP_INDEX_URL") or (pip_config_index(python) if python else None) or PYPI_INDEX)


def probeable(url: str) -> bool:
    """Only a plain http(s) URL is probed; one with credentials or another scheme is left to pip."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc
