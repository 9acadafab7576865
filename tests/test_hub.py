"""Sharing and loading concepts through the real huggingface_hub client and a local Hub server."""

from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants
from safetensors.torch import load_file

from hub_server import ALICE_READ, ALICE_WRITE, BOB_WRITE, ORG, HubServer, default_users, disable_xet, isolate_hf_client
from textinv_core.hub import HubError, parse_reference, search_concepts
from textinv_core.publish import push_concept, repo_id_for, slug_repo_name
from textinv_core.sources import load_concept
from textinv_core.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def trained(tiny_sd, robot_images, tmp_path_factory) -> Path:
    """A concept trained a few steps on the tiny model, with a preview to use as a sample."""
    output = tmp_path_factory.mktemp("trained")
    config = TrainConfig(token="<red-rocket>", init_word="robot", num_vectors=2, steps=2,
                         preview_every=2, preview_prompt="a <red-rocket> on a beach")
    list(Trainer(tiny_sd, robot_images, config, output).run())
    return output


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_then_load_by_keyword_from_a_fresh_cache(hub, trained, tiny_sd, tmp_path):
    api = hub.api(ALICE_WRITE)
    url = push_concept(trained, "alice/red-rocket", api)
    assert url.endswith("/alice/red-rocket")
    files = set(api.list_repo_files("alice/red-rocket"))
    assert {"learned_embeds.safetensors", "learned_embeds.bin", "token_identifier.txt", "type_of_concept.txt",
            "red-rocket.pt", "red-rocket.safetensors", "README.md"} <= files
    assert any(f.startswith("concept_images/") for f in files) and any(f.startswith("samples/") for f in files)
    assert not any(f.startswith("checkpoints/") for f in files)

    constants.HF_HUB_CACHE = str(tmp_path / "fresh-cache")  # restored by the fixture's monkeypatch
    expected = load_file(trained / "learned_embeds.safetensors")["<red-rocket>"]
    for source in ("alice/red-rocket", f"{hub.endpoint}/alice/red-rocket", "alice/red-rocket/red-rocket.pt"):
        concept, _ = load_concept(source, tiny_sd, api=HfApi(endpoint=hub.endpoint), allow_local=False)
        assert torch.equal(concept.vectors["clip_l"], expected)
    concept, _ = load_concept("alice/red-rocket", tiny_sd, api=HfApi(endpoint=hub.endpoint))
    assert concept.token == "<red-rocket>" and concept.concept_type == "object"


def test_model_card_carries_the_metadata(hub, trained, tmp_path):
    api = hub.api(ALICE_WRITE)
    push_concept(trained, f"{ORG}/red-rocket", api, license="cc-by-4.0")
    card = ModelCard.load(api.hf_hub_download(f"{ORG}/red-rocket", "README.md"))
    assert card.data.library_name == "diffusers" and card.data.license == "cc-by-4.0"
    assert {"textual_inversion", "stable-diffusion", "diffusers", "text-to-image", "sd-1x"} <= set(card.data.tags)
    assert "<red-rocket>" in card.data.widget[0]["text"]
    assert 'load_textual_inversion("textinv-org/red-rocket"' in card.text
    assert "red-rocket.pt" in card.text and "| steps | 2 |" in card.text


def test_repush_makes_a_second_commit(hub, trained):
    api = hub.api(ALICE_WRITE)
    push_concept(trained, "alice/twice", api)
    (trained / "samples").mkdir(exist_ok=True)
    (trained / "previews" / next(iter(p.name for p in (trained / "previews").glob("*.png")))).rename(trained / "samples" / "new.png")
    push_concept(trained, "alice/twice", api)
    assert len(api.list_repo_commits("alice/twice")) == 3  # the repo's initial commit, then two pushes


@pytest.mark.parametrize(
    "token,repo,message",
    [
        ("hf_not_a_token", "alice/x", "refused this token"),
        (ALICE_READ, "alice/x", "read-only"),
        (BOB_WRITE, "alice/x", "can't create repos under 'alice'"),
        (None, "alice/x", "not logged in"),
    ],
)
def test_refused_pushes_explain_and_keep_the_files(hub, trained, token, repo, message):
    before = _snapshot(trained)
    with pytest.raises(HubError, match=message) as err:
        push_concept(trained, repo, HfApi(endpoint=hub.endpoint, token=token))
    if token:
        assert token not in str(err.value)
    assert _snapshot(trained) == before


def test_push_to_someone_elses_existing_repo_is_refused(hub, trained):
    push_concept(trained, "alice/mine", hub.api(ALICE_WRITE))
    with pytest.raises(HubError):
        push_concept(trained, "alice/mine", hub.api(BOB_WRITE))


def test_push_with_the_server_down_explains_and_keeps_the_files(hub, trained):
    before = _snapshot(trained)
    hub.stop()
    with pytest.raises(HubError, match="can't reach the Hub"):
        push_concept(trained, "alice/down", HfApi(endpoint=hub.endpoint, token=ALICE_WRITE))
    assert _snapshot(trained) == before


def test_lfs_upload_path(tmp_path, monkeypatch, trained, tiny_sd):
    isolate_hf_client(monkeypatch, tmp_path / "home")
    disable_xet(monkeypatch)
    with HubServer(tmp_path / "hub", default_users(), lfs_suffixes=(".bin", ".safetensors", ".pt", ".png")) as server:
        push_concept(trained, "alice/lfs", server.api(ALICE_WRITE))
        assert any(method == "PUT" for method, _ in server.requests)
        concept, _ = load_concept("alice/lfs", tiny_sd, api=HfApi(endpoint=server.endpoint), allow_local=False)
    assert torch.equal(concept.vectors["clip_l"], load_file(trained / "learned_embeds.safetensors")["<red-rocket>"])


def test_keyword_loading_works_offline_from_the_cache(hub, trained, tiny_sd, monkeypatch):
    push_concept(trained, "alice/offline", hub.api(ALICE_WRITE))
    load_concept("alice/offline", tiny_sd, api=HfApi(endpoint=hub.endpoint))  # fills the cache
    hub.stop()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    concept, _ = load_concept("alice/offline", tiny_sd, api=HfApi(endpoint=hub.endpoint), allow_local=False)
    assert concept.token == "<red-rocket>"
    with pytest.raises(HubError, match="network"):
        search_concepts("robot", api=HfApi(endpoint=hub.endpoint))


def test_search_returns_keyword_type_and_previews(hub, trained):
    push_concept(trained, "alice/searchable-robot", hub.api(ALICE_WRITE))
    results = search_concepts("searchable", api=HfApi(endpoint=hub.endpoint), author="alice")
    assert [r.repo_id for r in results] == ["alice/searchable-robot"]
    assert results[0].keyword == "<red-rocket>" and results[0].concept_type == "object"
    assert results[0].preview_urls and all("/resolve/main/concept_images/" in u for u in results[0].preview_urls)


def test_web_visitors_cannot_name_server_files(tiny_sd, trained):
    with pytest.raises(HubError):
        load_concept(str(trained / "learned_embeds.safetensors"), tiny_sd, allow_local=False)


@pytest.mark.parametrize(
    "source,repo,filename",
    [
        ("cat-toy", "sd-concepts-library/cat-toy", None),
        ("<cat-toy>", "sd-concepts-library/cat-toy", None),
        ("user/repo", "user/repo", None),
        ("user/repo/sub/file.safetensors", "user/repo", "sub/file.safetensors"),
        ("https://huggingface.co/user/repo", "user/repo", None),
        ("https://huggingface.co/user/repo/blob/main/x.pt", "user/repo", "x.pt"),
    ],
)
def test_hub_references(source, repo, filename):
    ref = parse_reference(source)
    assert (ref.repo_id, ref.filename) == (repo, filename)


@pytest.mark.parametrize("source", ["../etc/passwd", "user/repo/../../x", "a/b c", "https://example.com/x"])
def test_bad_hub_references_are_refused(source):
    with pytest.raises(HubError):
        parse_reference(source)


def test_repo_names_are_slugged():
    assert slug_repo_name("My Cat Toy!") == "my-cat-toy"
    assert repo_id_for("alice", "<cat-toy>") == "alice/cat-toy"
    with pytest.raises(HubError):
        repo_id_for("bad namespace", "x")


def test_offline_without_a_cached_copy_says_so(hub, tiny_sd, monkeypatch, tmp_path):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(HubError, match="not in the local cache"):
        load_concept("alice/never-cached", tiny_sd, api=HfApi(endpoint=hub.endpoint), allow_local=False)


def test_a_push_names_no_server_path(hub, trained, tmp_path):
    """What a push stages comes from the run folder, whose images came from the server's disk:
    no file of the repo says where the server keeps anything."""
    from conftest import ROOT

    api = hub.api(ALICE_WRITE)
    push_concept(trained, "alice/no-paths", api)
    pushed = {name: Path(api.hf_hub_download("alice/no-paths", name, cache_dir=tmp_path)).read_bytes()
              for name in api.list_repo_files("alice/no-paths")}
    assert "README.md" in pushed and any(name.startswith("concept_images/") for name in pushed)
    for place in (str(trained), str(trained.parent), str(ROOT)):
        assert [name for name, data in pushed.items() if place.encode() in data] == [], place
