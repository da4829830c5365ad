"""Fetch a CLIP backbone from the Hugging Face hub into its cache: the files GeoCLIP loads and no more.

Why not let ``from_pretrained`` download: it shows its progress on a terminal nobody sees in QGIS and cannot
be cancelled. Here every byte is reported to the caller's ``progress`` and ``is_canceled`` is asked on every
chunk. ``huggingface_hub`` writes each file to a temporary name and moves it into the cache only when complete
(a cut connection is resumed with a Range request within the run; a cancelled or failed file is deleted), so
the cache never holds a half model: a snapshot counts as cached only when every file a tower needs is there.

Every file comes from one commit: a pinned revision (a commit id) as given, else the commit the branch or tag
names at the start of the download, so the snapshot folder (named by its commit) says which weights it holds.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import BackboneUnavailable, Canceled
from ..progress import IsCanceled, Progress

CONFIG = "config.json"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # the first one the repo has
IMAGE_FILES = ("preprocessor_config.json",)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json")
INFO_SECONDS = 10.0
CHUNK_BYTES = 1024 * 1024  # read per step: Cancel and the byte progress react every MiB (the hub's default is 10 MB)



def endpoint() -> str:
    """The hub the download goes to: ``$HF_ENDPOINT`` (read now, not at import) or huggingface.co."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _complete(folder: Path, tower: str) -> bool:
    """Does a snapshot folder hold everything ``tower`` ("vision" or "text") loads?"""
    has = lambda name: (folder / name).is_file()  # noqa: E731 - a one-line predicate
    if not has(CONFIG) or not any(has(w) for w in WEIGHTS):
        return False
    if tower == "vision":
        return all(has(n) for n in IMAGE_FILES)
    return has("tokenizer.json") or (has("vocab.json") and has("merges.txt"))


def cached_snapshot(repo: str, tower: str, revision: str = "main") -> Path | None:
    """The cached snapshot of ``repo`` at ``revision`` (a commit id, or the branch/tag the cache has a ref for) if
    it is complete for ``tower``, else None (never a partial one, never another commit's)."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo, CONFIG, revision=revision)
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return folder if _complete(folder, tower) else None


def _size(num: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if num < 1000 or unit == "GB":
            return f"{num:.0f} {unit}" if unit == "bytes" else f"{num:.1f} {unit}"
        num /= 1000
    return f"{num:.1f} GB"


def _bar_class(repo: str, done: int, total: int, progress: Progress | None,
               is_canceled: IsCanceled | None, shown: dict):
    """A tqdm class that forwards one file's bytes (offset by ``done``) to ``progress`` and stops on cancel.
    ``shown`` is shared by the whole download: its text (a line in the dock's log) changes once per tenth."""
    from tqdm import tqdm

    class Bar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True  # nothing on a terminal; the caller shows it
            self._bytes = int(kwargs.get("initial") or 0)
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            self._bytes += int(n or 0)
            if is_canceled is not None and is_canceled():
                raise Canceled(f"Download of the CLIP backbone '{repo}' cancelled; nothing partial is kept.")
            if progress is not None:
                now = done + self._bytes
                fraction = min(1.0, now / total) if total else 0.0
                tenth = 10 if now >= total else int(10 * fraction)
                if tenth != shown["tenth"]:  # the bar moves every chunk, the text every tenth
                    shown["tenth"] = tenth
                    shown["text"] = f"Downloading the CLIP backbone {repo}: {_size(now)} of {_size(total)}"
                progress(fraction, shown["text"])
            return super().update(n)

    return Bar


@contextlib.contextmanager
def _plain_http() -> Iterator[None]:
    """huggingface_hub over plain HTTP(S) in chunks of at most CHUNK_BYTES for this download, then as it was.
    With hf_xet installed the hub's large files come through Xet instead: its progress arrives through two bars
    from a native thread, and a Cancel raised there is not guaranteed to stop it. Over HTTP each chunk passes
    our bar (progress, Cancel) and a cut connection resumes with a Range request. huggingface_hub's own 10 MB
    chunks would leave Cancel unanswered for tens of seconds on a slow line."""
    from huggingface_hub import constants

    was = constants.HF_HUB_DISABLE_XET, constants.DOWNLOAD_CHUNK_SIZE
    constants.HF_HUB_DISABLE_XET = True
    constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, CHUNK_BYTES)
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET, constants.DOWNLOAD_CHUNK_SIZE = was


def download(repo: str, tower: str, progress: Progress | None = None,
             is_canceled: IsCanceled | None = None, revision: str = "main") -> Path:
    """Download what both towers of ``repo`` at ``revision`` need (weights, config, image processor, tokenizer)
    into the HF cache and return the snapshot folder (named by its commit). Raises Canceled, or
    BackboneUnavailable with the reason."""
    from huggingface_hub import HfApi

    hub = endpoint()
    try:
        info = HfApi(endpoint=hub).model_info(repo, revision=revision, files_metadata=True, timeout=INFO_SECONDS)
    except Exception as exc:  # noqa: BLE001 - any failure here means: cannot download
        raise BackboneUnavailable(f"asking {hub} for '{repo}' at revision {revision} failed ({_short(exc)})") from exc
    commit = str(info.sha or "")
    if not commit:
        raise BackboneUnavailable(f"{hub} did not say which commit revision {revision} of '{repo}' is")
    sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
    weights = next((w for w in WEIGHTS if w in sizes), None)
    if CONFIG not in sizes or weights is None:
        raise BackboneUnavailable(f"the hub repo '{repo}' has no {CONFIG} or no weights ({' / '.join(WEIGHTS)})")
    names = [CONFIG, *(n for n in IMAGE_FILES + TOKENIZER_FILES if n in sizes), weights]
    total, done, folder, shown = sum(sizes[n] for n in names), 0, None, {"tenth": -1, "text": ""}
    for name in names:
        # the config under the revision asked for (so the cache records a branch's ref to this commit), the rest
        # under the commit itself: a branch moving mid-download cannot mix two commits' files
        ask = revision if name == CONFIG else commit
        try:
            with _plain_http():
                path = _fetch(repo, name, hub, ask, _bar_class(repo, done, total, progress, is_canceled, shown))
        except Canceled:
            raise
        except Exception as exc:  # noqa: BLE001 - network, disk, hub errors alike
            raise BackboneUnavailable(
                f"downloading {name} from {hub} stopped ({_short(exc)}); nothing partial is kept, "
                f"run again to restart the download") from exc
        folder = Path(path).parent
        commit = folder.name  # the snapshot folder is named by the commit the hub served the config from
        done += sizes[name]
    if folder is None or not _complete(folder, tower):
        raise BackboneUnavailable(f"the hub repo '{repo}' lacks files the {tower} tower needs")
    return folder


def _fetch(repo: str, name: str, hub: str, revision: str, bar) -> str:
    """One file of ``repo`` at ``revision`` into the HF cache (its path there)."""
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo, name, revision=revision, endpoint=hub, tqdm_class=bar)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"
