"""Locate and load the CLIP ViT-L/14 backbone: one tower at a time, offline-first, failing fast.

A source is a local folder (``save_pretrained`` layout) or a Hugging Face repo id, optionally
``repo@revision``; the default backbone is pinned to one commit (``DEFAULT_CLIP_REVISION``), another repo id
without a revision follows its ``main``. A repo id is read from the HF cache first (only a snapshot of that
commit complete for the tower counts); only when it is missing there and the hub is reachable is it
downloaded (``hub_download``: byte progress, Cancel). Offline, the answer comes in seconds with a message
that says how to supply a folder, instead of the minutes a blocked connection can take.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

from ..constants import DEFAULT_CLIP, DEFAULT_CLIP_REVISION
from ..errors import BackboneUnavailable

log = logging.getLogger(__name__)

REQUIRED_PROJECTION = 768
PROBE_SECONDS = 4.0


def clip_source(clip_model: str | os.PathLike | None = None) -> str:
    """The backbone to use: the argument, else ``$GEOCLIP_CLIP_MODEL``, else ViT-L/14 on the hub."""
    return str(clip_model or os.environ.get("GEOCLIP_CLIP_MODEL") or DEFAULT_CLIP)


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or os.sep in source.replace("/", "", 1) or Path(source).exists()


def hub_reference(source: str) -> tuple[str, str]:
    """(repo id, revision) of a hub source: ``repo@revision`` as given, the default backbone at its pinned commit,
    any other repo id at ``main``."""
    repo, _, revision = source.partition("@")
    if not revision:
        revision = DEFAULT_CLIP_REVISION if repo == DEFAULT_CLIP else "main"
    return repo, revision


def origin(source: str, folder: str) -> str:
    """Where a loaded tower came from, for the run's log: the hub repo and the commit its snapshot folder is named
    by, or the local folder."""
    if _looks_like_path(source):
        return f"CLIP backbone from the folder {folder}"
    repo, revision = hub_reference(source)
    commit = Path(folder).name
    asked = "" if revision == commit else f" ({revision})"
    return f"CLIP backbone {repo} at revision {commit}{asked}, from the Hugging Face cache {folder}"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = PROBE_SECONDS) -> bool:
    """Can huggingface_hub reach the hub now? Asked with huggingface_hub's own HTTP client, so
    ``HF_ENDPOINT`` and the proxies of the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``)
    apply exactly as they will for the download. Any HTTP answer counts; a hub that accepts the
    connection and then stays silent counts as unreachable after ``timeout`` seconds.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    result = {"ok": False}

    def probe() -> None:
        url = endpoint.rstrip("/") + "/api/models"
        with contextlib.suppress(Exception):
            session = get_session()
            try:  # huggingface_hub >= 1.0: an httpx client
                session.head(url, timeout=timeout, follow_redirects=False)
            except TypeError:  # before 1.0 (a transformers 4.x install): a requests session
                session.head(url, timeout=timeout, allow_redirects=False)
            result["ok"] = True

    worker = threading.Thread(target=probe, daemon=True, name="geoclip-hub-probe")
    worker.start()
    worker.join(timeout + 1.0)  # a hard bound, whatever the client does with its own timeouts
    return result["ok"]


def missing_message(source: str, reason: str) -> str:
    """One paragraph: what is missing and the two ways to fix it."""
    online = "go online once" + (" and unset HF_HUB_OFFLINE" if _offline() else "")  # only if the user set it
    return (
        f"The CLIP backbone '{source}' is not available: {reason}. GeoCLIP's image side needs the "
        f"CLIP ViT-L/14 model (about 1.7 GB). Either {online} so it can be downloaded into the "
        f"Hugging Face cache, or point GEOCLIP_CLIP_MODEL (or the panel's "
        f"'CLIP backbone' setting) at a local folder holding a CLIP model saved with save_pretrained "
        f"(config.json, model.safetensors, preprocessor_config.json). Location-only features "
        f"(GPS embeddings, 'places like here') work without it."
    )


def resolve(source: str, tower: str = "vision") -> str | None:
    """The local folder to load ``tower`` ("vision" or "text") from, or None when it has to be downloaded
    first (a repo id that is not completely cached, with the hub reachable); raises BackboneUnavailable fast."""
    if _looks_like_path(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise BackboneUnavailable(missing_message(source, f"the folder {folder} does not exist"))
        if not (folder / "config.json").is_file():
            raise BackboneUnavailable(missing_message(source, f"{folder} has no config.json"))
        return str(folder)
    from .hub_download import cached_snapshot

    repo, revision = hub_reference(source)
    cached = cached_snapshot(repo, tower, revision)
    if cached is not None:
        return str(cached)
    if _offline():
        raise BackboneUnavailable(missing_message(source, "it is not in the Hugging Face cache and "
                                                          "HF_HUB_OFFLINE is set"))
    if not hub_reachable():
        raise BackboneUnavailable(missing_message(source, "it is not in the Hugging Face cache and the "
                                                          "hub cannot be reached from this machine"))
    return None


def locate(source: str, tower: str, progress=None, is_canceled=None) -> str:
    """A local folder holding ``tower`` of ``source``: the folder given, the complete cached snapshot, or
    a fresh download into the HF cache (progress in bytes, cancellable)."""
    folder = resolve(source, tower)
    if folder is not None:
        return folder
    from .hub_download import download

    repo, revision = hub_reference(source)
    try:
        return str(download(repo, tower, progress=progress, is_canceled=is_canceled, revision=revision))
    except BackboneUnavailable as exc:
        raise BackboneUnavailable(missing_message(source, str(exc))) from exc


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' notices about unused text/vision weights and its weight-loading progress bar."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _check_projection(config, source: str) -> None:
    dim = getattr(config, "projection_dim", None)
    if dim != REQUIRED_PROJECTION:
        raise BackboneUnavailable(
            f"The CLIP model '{source}' projects to {dim} dimensions; GeoCLIP needs a ViT-L/14-compatible "
            f"CLIP with projection_dim {REQUIRED_PROJECTION} (openai/clip-vit-large-patch14)."
        )


def _load_tower(source: str, tower: str, model_cls: str, companion_cls: str, what: str, device: str, dtype,
                progress=None, is_canceled=None):
    """(tower, its processor or tokenizer, where it came from) from ``source``, one transformers class each,
    checked for 768-d."""
    where = locate(source, tower, progress, is_canceled)
    said = origin(source, where)
    log.info("GeoCLIP: %s", said)
    import transformers

    try:
        with _quiet_transformers():
            model = getattr(transformers, model_cls).from_pretrained(where, local_files_only=True)
            companion = getattr(transformers, companion_cls).from_pretrained(where, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise BackboneUnavailable(missing_message(source, f"{what} failed ({exc})")) from exc
    _check_projection(model.config, source)
    return model.to(device=device, dtype=dtype).eval(), companion, said


def load_vision(source: str, device: str = "cpu", dtype=None, progress=None, is_canceled=None):
    """(vision tower with projection, image processor, origin); the text tower is never materialised."""
    return _load_tower(source, "vision", "CLIPVisionModelWithProjection", "CLIPImageProcessor", "loading",
                       device, dtype, progress, is_canceled)


def load_text(source: str, device: str = "cpu", dtype=None, progress=None, is_canceled=None):
    """(text tower with projection, tokenizer, origin), loaded only for text queries."""
    return _load_tower(source, "text", "CLIPTextModelWithProjection", "AutoTokenizer", "loading the text tower",
                       device, dtype, progress, is_canceled)
