"""Every conversation with the Hugging Face Hub: finding, downloading and sharing concepts.

All calls go through huggingface_hub with an `HfApi` the caller gives (its endpoint and token),
so a Space can use each visitor's own OAuth token and the tests can point it at a local server.
Downloads land in huggingface_hub's cache and are read from there when offline.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx2  # the HTTP client huggingface_hub 2 uses; its connection errors are not OSErrors
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
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
        return _checked(HubRef(f"{library}/{text.strip('<>')}"))
    if len(parts) == 2:
        return _checked(HubRef(text))
    return _checked(HubRef("/".join(parts[:2]), "/".join(parts[2:])))


def _checked(ref: HubRef) -> HubRef:
    if not REPO_ID.match(ref.repo_id) or ".." in ref.repo_id:
        raise HubError(f"{ref.repo_id!r} is not a valid Hub repo name (letters, digits, '-', '_', '.')")
    if ref.filename is not None and (".." in ref.filename.split("/") or ref.filename.startswith("/")):
        raise HubError(f"{ref.filename!r} is not a valid file path inside a repo")
    return ref


def download_concept(ref: HubRef, api: HfApi | None = None, cache_dir: str | Path | None = None) -> Path:
    """Fetch a concept (one file, or a repo's embedding files and keyword) into the Hub cache and
    return the local path. Concept images and subfolders are never downloaded; oversized files are
    refused before a byte is fetched when the Hub can be asked about sizes."""
    api = api or HfApi()
    common = dict(endpoint=api.endpoint, token=api.token, cache_dir=cache_dir)
    try:
        if ref.filename:
            _check_sizes(api, ref.repo_id, [ref.filename])
            return Path(hf_hub_download(ref.repo_id, ref.filename, **common))
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
        raise HubError(f"{ref.repo_id}: can't reach the Hub and it is not in the local cache") from None
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
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code}"
    return type(err).__name__
