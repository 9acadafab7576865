"""The test Hub (tests/hub_server.py) driven by the real huggingface_hub client, no mocks.

Why: every Hub-facing test of textinv trusts this server to answer like the Hub. These tests pin
that down with the calls the app makes (whoami, create_repo, upload_folder, hf_hub_download,
snapshot_download, list_models, model_info) and with the failure modes the app must report
(bad token, foreign namespace, read-only token, private repo, server gone).

The client is always pointed at the server explicitly (`HfApi(endpoint=...)`,
`hf_hub_download(..., endpoint=...)`); nothing depends on HF_ENDPOINT at import time.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx2  # huggingface_hub 2.x's HTTP library: a dead server surfaces as httpx2.ConnectError
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hub_server import (
    ALICE_READ,
    ALICE_WRITE,
    BOB_WRITE,
    ORG,
    HubServer,
    default_users,
    disable_xet,
    isolate_hf_client,
    parse_front_matter,
)

README = """---
license: mit
library_name: diffusers
base_model: tiny/sd
tags:
- textual-inversion
- stable-diffusion
instance_prompt: "a photo of <cat-toy>"
---
# <cat-toy>

A learned embedding.
"""


def write_folder(folder: Path, note: str = "first") -> dict[str, bytes]:
    """A model folder like the app uploads: a card, a text file and a binary embedding."""
    files = {
        "README.md": README.encode(),
        "notes.txt": f"trained: {note}\n".encode(),
        "learned_embeds.safetensors": bytes(range(256)) * 12 + note.encode(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def download(server: HubServer, repo_id: str, filename: str, cache_dir: Path, **kwargs) -> bytes:
    kwargs.setdefault("token", ALICE_WRITE)
    path = hf_hub_download(repo_id, filename, endpoint=server.endpoint, cache_dir=cache_dir, **kwargs)
    return Path(path).read_bytes()


# --------------------------------------------------------------------------------------------
# accounts
# --------------------------------------------------------------------------------------------


def test_whoami_reports_user_orgs_and_token_role(hub: HubServer) -> None:
    me = hub.api(ALICE_WRITE).whoami()
    assert me["name"] == "alice"
    assert [org["name"] for org in me["orgs"]] == [ORG]
    assert me["auth"]["accessToken"]["role"] == "write"
    assert hub.api(ALICE_READ).whoami()["auth"]["accessToken"]["role"] == "read"
    assert hub.api(BOB_WRITE).whoami()["orgs"] == []


def test_whoami_rejects_an_unknown_token(hub: HubServer) -> None:
    with pytest.raises(HfHubHTTPError) as caught:
        hub.api("hf_not_a_token").whoami()
    assert caught.value.response.status_code == 401
    assert "Invalid user token" in str(caught.value)


# --------------------------------------------------------------------------------------------
# creating repos and permissions
# --------------------------------------------------------------------------------------------


def test_create_repo_new_then_existing(hub: HubServer) -> None:
    api = hub.api(ALICE_WRITE)
    url = api.create_repo("cat-toy")
    assert url.repo_id == "alice/cat-toy"
    assert url == f"{hub.endpoint}/alice/cat-toy"

    with pytest.raises(HfHubHTTPError) as caught:
        api.create_repo("alice/cat-toy")
    assert caught.value.response.status_code == 409
    assert api.create_repo("alice/cat-toy", exist_ok=True) == url
    # Someone else's public repo: 409 as well, so exist_ok passes (nothing is created).
    assert hub.api(BOB_WRITE).create_repo("alice/cat-toy", exist_ok=True) == url

    # A new repo already has a commit on main (.gitattributes), as on the Hub.
    info = api.model_info("alice/cat-toy")
    assert len(info.sha) == 40 and [s.rfilename for s in info.siblings] == [".gitattributes"]


def test_create_repo_in_an_org_the_user_belongs_to(hub: HubServer) -> None:
    url = hub.api(ALICE_WRITE).create_repo(f"{ORG}/shared")
    assert url.repo_id == f"{ORG}/shared"


def test_create_repo_refused_in_a_foreign_namespace_or_with_a_read_token(hub: HubServer) -> None:
    with pytest.raises(HfHubHTTPError) as caught:
        hub.api(BOB_WRITE).create_repo("alice/not-yours")
    assert caught.value.response.status_code == 403
    assert not isinstance(caught.value, RepositoryNotFoundError)
    with pytest.raises(HfHubHTTPError) as caught:
        hub.api(BOB_WRITE).create_repo(f"{ORG}/not-a-member")
    assert caught.value.response.status_code == 403

    with pytest.raises(HfHubHTTPError) as caught:
        hub.api(ALICE_READ).create_repo("from-read-token")
    assert caught.value.response.status_code == 403
    assert "read-only" in str(caught.value)


def test_commit_refused_for_a_read_token_and_for_someone_elses_repo(hub: HubServer) -> None:
    hub.api(ALICE_WRITE).create_repo("cat-toy")
    for token in (ALICE_READ, BOB_WRITE):
        with pytest.raises(HfHubHTTPError) as caught:
            hub.api(token).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/cat-toy")
        assert caught.value.response.status_code == 403
    assert [c.title for c in hub.api(ALICE_WRITE).list_repo_commits("alice/cat-toy")] == ["initial commit"]


# --------------------------------------------------------------------------------------------
# uploading, history, downloading
# --------------------------------------------------------------------------------------------


def test_upload_folder_makes_one_commit_and_downloads_the_same_bytes(hub: HubServer, tmp_path: Path) -> None:
    api = hub.api(ALICE_WRITE)
    api.create_repo("cat-toy")
    files = write_folder(tmp_path / "out")

    first = api.upload_folder(repo_id="alice/cat-toy", folder_path=tmp_path / "out", commit_message="Add embedding")
    commits = api.list_repo_commits("alice/cat-toy")
    assert [c.title for c in commits] == ["Add embedding", "initial commit"]
    assert commits[0].commit_id == first.oid == api.model_info("alice/cat-toy").sha
    assert first.commit_url == f"{hub.endpoint}/alice/cat-toy/commit/{first.oid}"
    # Default answer is "regular": bytes are inlined in the commit, no LFS and no xet round trip.
    assert not [path for method, path in hub.requests if method == "PUT" or "lfs" in path or "xet" in path]

    for name, data in files.items():
        assert download(hub, "alice/cat-toy", name, tmp_path / "fresh-cache") == data

    # Second upload: only notes changed -> a new commit, old revision still readable.
    write_folder(tmp_path / "out", note="second")
    second = api.upload_folder(repo_id="alice/cat-toy", folder_path=tmp_path / "out")
    assert second.oid != first.oid
    assert len(api.list_repo_commits("alice/cat-toy")) == 3
    cache = tmp_path / "cache-2"
    assert download(hub, "alice/cat-toy", "notes.txt", cache) == b"trained: second\n"
    assert download(hub, "alice/cat-toy", "notes.txt", cache, revision=first.oid) == b"trained: first\n"

    # Same files again: the preupload oids say "unchanged", the client makes no commit.
    before = len(hub.requests)
    third = api.upload_folder(repo_id="alice/cat-toy", folder_path=tmp_path / "out")
    assert third.oid == second.oid
    assert ("POST", "/api/models/alice/cat-toy/commit/main") not in hub.requests[before:]
    assert hub.errors == []


def test_snapshot_download_fetches_every_file(hub: HubServer, tmp_path: Path) -> None:
    api = hub.api(ALICE_WRITE)
    api.create_repo("cat-toy")
    files = write_folder(tmp_path / "out")
    api.upload_folder(repo_id="alice/cat-toy", folder_path=tmp_path / "out", path_in_repo="v1")

    snapshot = snapshot_download("alice/cat-toy", endpoint=hub.endpoint, token=ALICE_WRITE, cache_dir=tmp_path / "c")
    folder = Path(snapshot)
    assert folder.name == api.model_info("alice/cat-toy").sha
    for name, data in files.items():
        assert (folder / "v1" / name).read_bytes() == data
    assert (folder / ".gitattributes").is_file()


def test_create_commit_deletes_files_and_honours_parent_commit(hub: HubServer) -> None:
    api = hub.api(ALICE_WRITE)
    api.create_repo("cat-toy")
    ops = [CommitOperationAdd(f"steps/{i}.txt", f"step {i}".encode()) for i in range(3)]
    head = api.create_commit("alice/cat-toy", ops, commit_message="steps").oid
    stale = [CommitOperationAdd("late.txt", b"late")]

    api.create_commit("alice/cat-toy", [CommitOperationDelete("steps/0.txt")], commit_message="rm", parent_commit=head)
    assert api.list_repo_files("alice/cat-toy") == [".gitattributes", "steps/1.txt", "steps/2.txt"]
    api.create_commit("alice/cat-toy", [CommitOperationDelete("steps/")], commit_message="rm -r")
    assert api.list_repo_files("alice/cat-toy") == [".gitattributes"]

    with pytest.raises(HfHubHTTPError) as caught:  # the branch moved since `head`
        api.create_commit("alice/cat-toy", stale, commit_message="stale", parent_commit=head)
    assert caught.value.response.status_code == 412


# --------------------------------------------------------------------------------------------
# listing and info
# --------------------------------------------------------------------------------------------


def test_list_models_by_author_search_tag_and_limit(hub: HubServer, tmp_path: Path) -> None:
    api = hub.api(ALICE_WRITE)
    for repo_id in ("alice/Cat-Toy", "alice/dog-style", f"{ORG}/cat-shared"):
        api.create_repo(repo_id)
    write_folder(tmp_path / "out")
    api.upload_folder(repo_id="alice/Cat-Toy", folder_path=tmp_path / "out")

    assert [m.id for m in api.list_models(author="alice")] == ["alice/Cat-Toy", "alice/dog-style"]
    assert sorted(m.id for m in api.list_models(search="CAT")) == ["alice/Cat-Toy", f"{ORG}/cat-shared"]
    assert [m.id for m in api.list_models(author="alice", search="dog")] == ["alice/dog-style"]
    assert [m.id for m in api.list_models(filter="textual-inversion")] == ["alice/Cat-Toy"]
    assert len(list(api.list_models(limit=2))) == 2

    full = next(iter(api.list_models(search="cat-toy", full=True)))
    assert full.sha is not None and "README.md" in [s.rfilename for s in full.siblings]
    assert next(iter(api.list_models(search="cat-toy"))).siblings is None

    hub.page_size = 1  # more results than a page: the client follows `Link: rel="next"`
    assert len(list(api.list_models())) == 3
    assert sum(1 for method, path in hub.requests if path == "/api/models") >= 3


def test_model_info_siblings_card_data_and_tree(hub: HubServer, tmp_path: Path) -> None:
    api = hub.api(ALICE_WRITE)
    api.create_repo("cat-toy")
    files = write_folder(tmp_path / "out")
    api.upload_folder(repo_id="alice/cat-toy", folder_path=tmp_path / "out")  # the card is the root README
    api.upload_folder(repo_id="alice/cat-toy", folder_path=tmp_path / "out", path_in_repo="v1")

    info = api.model_info("alice/cat-toy")
    sizes = {s.rfilename: s.size for s in info.siblings}
    expected = {name: len(data) for name, data in files.items()}
    expected.update({f"v1/{name}": len(data) for name, data in files.items()})
    assert sizes == {".gitattributes": sizes[".gitattributes"], **expected}
    assert info.tags == ["textual-inversion", "stable-diffusion"]
    assert info.card_data.library_name == "diffusers"
    assert info.card_data.base_model == "tiny/sd"
    assert info.card_data.get("instance_prompt") == "a photo of <cat-toy>"
    assert api.model_info("alice/cat-toy", revision=info.sha).sha == info.sha

    top = {entry.path for entry in api.list_repo_tree("alice/cat-toy")}
    assert top == {".gitattributes", "v1", *files}
    inside = {entry.path for entry in api.list_repo_tree("alice/cat-toy", path_in_repo="v1", recursive=True)}
    assert inside == {f"v1/{name}" for name in files}


def test_missing_repo_revision_and_file_raise_specific_errors(hub: HubServer, tmp_path: Path) -> None:
    api = hub.api(ALICE_WRITE)
    api.create_repo("cat-toy")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/nope")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("alice/cat-toy", revision="v9")
    with pytest.raises(RevisionNotFoundError):
        download(hub, "alice/cat-toy", ".gitattributes", tmp_path / "c", revision="refs/pr/1")
    with pytest.raises(RemoteEntryNotFoundError):
        download(hub, "alice/cat-toy", "missing.safetensors", tmp_path / "c")
    assert api.file_exists("alice/cat-toy", ".gitattributes")
    assert not api.file_exists("alice/cat-toy", "missing.safetensors")
    assert api.repo_exists("alice/cat-toy") and not api.repo_exists("alice/nope")


def test_a_private_repo_is_invisible_to_other_users(hub: HubServer, tmp_path: Path) -> None:
    alice, bob = hub.api(ALICE_WRITE), hub.api(BOB_WRITE)
    alice.create_repo("secret", private=True)
    alice.upload_file(path_or_fileobj=b"shh", path_in_repo="s.txt", repo_id="alice/secret")

    assert alice.model_info("alice/secret").private is True
    assert hub.api(ALICE_READ).model_info("alice/secret").private is True  # read tokens can read
    assert [m.id for m in alice.list_models(author="alice")] == ["alice/secret"]
    for other in (bob, hub.api(None)):
        with pytest.raises(RepositoryNotFoundError):
            other.model_info("alice/secret")
        assert list(other.list_models(author="alice")) == []
    with pytest.raises(RepositoryNotFoundError):
        download(hub, "alice/secret", "s.txt", tmp_path / "c", token=BOB_WRITE)
    with pytest.raises(HfHubHTTPError) as caught:  # invisible: no 409, so no "it exists" leak
        bob.create_repo("alice/secret")
    assert caught.value.response.status_code == 403


# --------------------------------------------------------------------------------------------
# the LFS upload path
# --------------------------------------------------------------------------------------------


# The client itself PUTs with `data=fileobj`, which httpx2 deprecates; not ours to fix.
@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
def test_lfs_files_go_through_the_batch_endpoint_and_a_put(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_hf_client(monkeypatch, tmp_path / "hf_home")
    disable_xet(monkeypatch)  # else hf_xet (installed) would take the "lfs" files
    weights = bytes(range(256)) * 400 + b"tail"
    with HubServer(tmp_path / "hub", default_users(), lfs_suffixes=(".bin",)) as server:
        api = server.api(ALICE_WRITE)
        api.create_repo("cat-toy")
        folder = tmp_path / "out"
        write_folder(folder)
        (folder / "learned_embeds.bin").write_bytes(weights)
        api.upload_folder(repo_id="alice/cat-toy", folder_path=folder)

        oid = hashlib.sha256(weights).hexdigest()
        assert ("POST", "/alice/cat-toy.git/info/lfs/objects/batch") in server.requests
        assert server.requests.count(("PUT", f"/_lfs/{oid}")) == 1
        sibling = {s.rfilename: s for s in api.model_info("alice/cat-toy", files_metadata=True).siblings}
        assert sibling["learned_embeds.bin"].lfs.sha256 == oid
        assert sibling["notes.txt"].lfs is None
        assert download(server, "alice/cat-toy", "learned_embeds.bin", tmp_path / "c") == weights

        # The same bytes under another name: the batch answers "already there", no second PUT.
        api.upload_file(path_or_fileobj=weights, path_in_repo="copy.bin", repo_id="alice/cat-toy")
        assert server.requests.count(("PUT", f"/_lfs/{oid}")) == 1
        assert download(server, "alice/cat-toy", "copy.bin", tmp_path / "c") == weights
        assert server.errors == []


# --------------------------------------------------------------------------------------------
# a server that has gone away
# --------------------------------------------------------------------------------------------


def test_a_stopped_server_fails_fast_and_cached_files_still_resolve(hub: HubServer, tmp_path: Path) -> None:
    """Calls that do not retry (whoami, model_info, create_repo) raise httpx2.ConnectError at
    once. hf_hub_download is different: for a file *not* in the cache it retries with backoff
    (1+2+4+8+8 s) and raises LocalEntryNotFoundError after ~23 s, whatever `etag_timeout` is
    (the connection is refused, nothing times out), so that case is not exercised here. For a
    cached file it returns the cached copy straight away."""
    api = hub.api(ALICE_WRITE)
    api.create_repo("cat-toy")
    api.upload_file(path_or_fileobj=b"cached", path_in_repo="a.txt", repo_id="alice/cat-toy")
    cached = download(hub, "alice/cat-toy", "a.txt", tmp_path / "c")
    hub.stop()

    started = time.monotonic()
    with pytest.raises(httpx2.ConnectError):
        api.model_info("alice/cat-toy")
    with pytest.raises(httpx2.ConnectError):
        api.whoami()
    assert download(hub, "alice/cat-toy", "a.txt", tmp_path / "c") == cached
    assert time.monotonic() - started < 3


# --------------------------------------------------------------------------------------------
# the card parser used for cardData and tags
# --------------------------------------------------------------------------------------------


def test_front_matter_subset() -> None:
    card = parse_front_matter(
        "---\ntags: [a, 'b']\nthreshold: 0.5\nsteps: 3\nflag: true\nnothing: ~\n"
        "widget:\n  - text: hi\n    output: x\nnested:\n  key: value # comment\n---\nbody"
    )
    assert card == {
        "tags": ["a", "b"],
        "threshold": 0.5,
        "steps": 3,
        "flag": True,
        "nothing": None,
        "widget": [{"text": "hi", "output": "x"}],
        "nested": {"key": "value"},
    }
    assert parse_front_matter("# no metadata") == {}
    with pytest.raises(ValueError):
        parse_front_matter("---\ntags: [a]\n")
