"""Every conversation with the Hugging Face Hub: finding, downloading and sharing concepts.

All calls go through huggingface_hub with an `HfApi` the caller gives (its endpoint and token),
so a Space can use each visitor's own OAuth token and the tests can point it at a local server.
Downloads land in huggingface_hub's cache and are read from there when offline.

Without a network, huggingface_hub's own calls spend 10-90 s on lookups and retries before they
fail. `hub_unreachable()` asks once, in at most PROBE_SECONDS, and remembers the answer for a
minute: while the Hub is known to be unreachable, a search fails at once and a download is served
from the cache (or refused) at once.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx2  # the HTTP client huggingface_hub 2 uses; its connection errors are not OSErrors
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)

from .readers import MAX_BYTES

CONCEPTS_LIBRARY = "sd-concepts-library"
EMBEDDING_SUFFIXES = (".safetensors", ".bin", ".pt")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
REPO_ID = re.compile(rf"^{_NAME}/{_NAME}$")
PROBE_SECONDS = 3.0  # a Hub that is there answers in well under a second
PROBE_TTL = 60.0  # how long the answer is trusted before asking again


class HubError(ValueError):
    """A Hub problem explained for the user (never containing their token)."""


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    filename: str | None = None  # a file inside the repo, or None for the repo's concept


@dataclass
class HubConcept:
    """A search result: enough to show it and load it."""

    repo_id: str
    keyword: str
    concept_type: str | None
    preview_urls: list[str]


def parse_reference(source: str, library: str = CONCEPTS_LIBRARY) -> HubRef:
    """Accept the ways people name a concept on the Hub:
    `cat-toy` (a repo of `library`, the concepts library by default), `user/repo`, `user/repo/file.safetensors`, or a Hub URL
    (`https://huggingface.co/user/repo`, `.../blob/main/file`, `.../resolve/main/file`)."""
    text = source.strip()
    if text.startswith(("http://", "https://")):
        parts = [p for p in urlparse(text).path.split("/") if p]
        if len(parts) >= 5 and parts[2] in ("blob", "resolve"):
            return _checked(HubRef(f"{parts[0]}/{parts[1]}", "/".join(parts[4:])))
        if len(parts) == 2:
            return _checked(HubRef(f"{parts[0]}/{parts[1]}"))
        raise HubError(f"{source}: not a Hub model or file URL (expected huggingface.co/USER/REPO[/blob/main/FILE])")
    parts = text.split("/")
    if len(parts) == 1:
        keyword = text.strip("<>")
        if not REPO_ID.match(f"{library}/{keyword}"):  # said of what was typed, not of the library's repo
            raise HubError(f"“{text}” is not a concept keyword, repo id or Hub link: use a keyword like cat-toy, a "
                           "repo like user/name, or a huggingface.co link")
        return _checked(HubRef(f"{library}/{keyword}"))
    if len(parts) == 2:
        return _checked(HubRef(text))
    return _checked(HubRef("/".join(parts[:2]), "/".join(parts[2:])))


def _checked(ref: HubRef) -> HubRef:
    if not REPO_ID.match(ref.repo_id) or ".." in ref.repo_id:
        raise HubError(f"{ref.repo_id!r} is not a valid Hub repo name (letters, digits, '-', '_', '.')")
    if ref.filename is not None and (".." in ref.filename.split("/") or ref.filename.startswith("/")):
        raise HubError(f"{ref.filename!r} is not a valid file path inside a repo")
    return ref


_probes: dict[str, tuple[float, str | None]] = {}  # endpoint -> (when asked, why unreachable or None)
_probe_lock = threading.Lock()


def hub_unreachable(endpoint: str | None = None) -> str | None:
    """Why the Hub at `endpoint` can't be reached from this machine now, or None when it can.
    One HEAD request, DNS lookup included, bounded by PROBE_SECONDS; remembered for PROBE_TTL."""
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set on this server"
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    with _probe_lock:  # callers arriving during a probe wait for its answer rather than ask again
        asked, reason = _probes.get(endpoint, (-PROBE_TTL, None))
        if time.monotonic() - asked >= PROBE_TTL:
            reason = _probe(endpoint)
            _probes[endpoint] = (time.monotonic(), reason)
        return reason


def _probe(endpoint: str) -> str | None:
    """Ask the endpoint anything: any HTTP answer, even an error status, means it is there. The
    request runs in a thread because a DNS lookup without a network ignores httpx's timeout."""
    host = urlparse(endpoint).hostname or endpoint
    answer: list[str | None] = []

    def ask() -> None:
        try:
            httpx2.head(endpoint, timeout=PROBE_SECONDS)
            answer.append(None)
        except httpx2.TimeoutException:
            answer.append(f"{host} did not answer within {PROBE_SECONDS:.0f} s")
        except Exception:  # any failure to get an answer (HTTP, DNS, a patched resolver) means not there
            answer.append(f"can't connect to {host}: no network, or it is blocked")

    thread = threading.Thread(target=ask, name="hub-probe", daemon=True)
    thread.start()
    thread.join(PROBE_SECONDS + 0.5)
    return answer[0] if answer else f"{host} did not answer within {PROBE_SECONDS:.0f} s"


def download_concept(ref: HubRef, api: HfApi | None = None, cache_dir: str | Path | None = None) -> Path:
    """Fetch a concept (one file, or a repo's embedding files and keyword) into the Hub cache and
    return the local path. Concept images and subfolders are never downloaded; oversized files are
    refused before a byte is fetched when the Hub can be asked about sizes. While the Hub can't be
    reached, only the cache is looked at."""
    api = api or HfApi()
    offline = hub_unreachable(api.endpoint)
    common = dict(endpoint=api.endpoint, token=api.token, cache_dir=cache_dir, local_files_only=offline is not None)
    try:
        if ref.filename:
            if not offline:
                _check_sizes(api, ref.repo_id, [ref.filename])
            return Path(hf_hub_download(ref.repo_id, ref.filename, **common))
        if not offline:
            _check_sizes(api, ref.repo_id, None)
        folder = snapshot_download(
            ref.repo_id,
            allow_patterns=["*.safetensors", "*.bin", "*.pt", "token_identifier.txt", "type_of_concept.txt"],
            ignore_patterns=["*/*"],
            **common,
        )
        return Path(folder)
    except RepositoryNotFoundError:
        raise HubError(f"{ref.repo_id}: no such model repo on the Hub (or it is private and your token can't see it)") from None
    except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: catch it first
        why = f" ({offline})" if offline else ""
        raise HubError(f"{ref.repo_id}: can't reach the Hub{why} and it is not in the local cache") from None
    except EntryNotFoundError:
        raise HubError(f"{ref.repo_id}: has no file {ref.filename!r}") from None
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as err:
        raise HubError(f"{ref.repo_id}: download failed ({error_reason(err)})") from None


def _check_sizes(api: HfApi, repo_id: str, filenames: list[str] | None) -> None:
    try:
        info = api.model_info(repo_id, files_metadata=True)
    except (OfflineModeIsEnabled, httpx2.HTTPError):
        return  # offline: the cache is all there is, and the reader checks sizes anyway
    for sibling in info.siblings or []:
        wanted = sibling.rfilename in filenames if filenames else "/" not in sibling.rfilename
        if wanted and sibling.rfilename.endswith(EMBEDDING_SUFFIXES) and (sibling.size or 0) > MAX_BYTES:
            raise HubError(
                f"{repo_id}/{sibling.rfilename} is {sibling.size / 2**20:.0f} MB: too large to be an embedding "
                f"(limit {MAX_BYTES // 2**20} MB); is it a model or LoRA?"
            )


def search_concepts(query: str, api: HfApi | None = None, author: str = CONCEPTS_LIBRARY, limit: int = 12) -> list[HubConcept]:
    """Community concepts whose repo name matches `query`, with keyword, type and previews."""
    api = api or HfApi()
    if reason := hub_unreachable(api.endpoint):
        raise HubError(f"searching needs a network connection to the Hub, which this server can't reach right now ({reason})")
    try:
        models = list(api.list_models(author=author or None, search=query or None, limit=limit, full=True))
    except OfflineModeIsEnabled:
        raise HubError("searching the Hub needs a network connection (HF_HUB_OFFLINE is set)") from None
    except (HfHubHTTPError, httpx2.HTTPError) as err:
        raise HubError(f"Hub search failed ({error_reason(err)})") from None
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda m: _describe(api, m), models))


def _describe(api: HfApi, model) -> HubConcept:
    files = [s.rfilename for s in (model.siblings or [])]
    previews = [
        f"{api.endpoint}/{model.id}/resolve/main/{f}"
        for f in files
        if f.startswith("concept_images/") and f.lower().endswith((".png", ".jpg", ".jpeg", ".webp"))
    ][:4]
    keyword = _small_text(api, model.id, "token_identifier.txt") if "token_identifier.txt" in files else None
    concept_type = _small_text(api, model.id, "type_of_concept.txt") if "type_of_concept.txt" in files else None
    return HubConcept(model.id, keyword or f"<{model.id.split('/')[1]}>", concept_type, previews)


def _small_text(api: HfApi, repo_id: str, filename: str) -> str | None:
    try:
        path = hf_hub_download(repo_id, filename, endpoint=api.endpoint, token=api.token)
    except (HfHubHTTPError, httpx2.HTTPError, OSError):
        return None
    lines = Path(path).read_text(errors="replace")[:200].splitlines()
    return next((line.strip() for line in lines if line.strip()), None)


def error_reason(err: BaseException) -> str:
    """A short cause without request headers (which would carry the token)."""
    if isinstance(err, httpx2.ConnectError):
        return "can't connect to the Hub: check the network"
    if isinstance(err, httpx2.TimeoutException):
        return "the Hub did not answer in time"
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code}"
    return "network error" if isinstance(err, httpx2.HTTPError) else "unexpected error"
