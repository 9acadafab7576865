"""Generation from one shared model by several visitors at once."""

import threading

import pytest
import torch

from conftest import assert_same_state, model_state
from textinv_core.concepts import Concept
from textinv_core.generate import generate
from textinv_core.sources import load_concepts
from textinv_core.writers import write_concept_files


def _concept(model, token, seed):
    g = torch.Generator().manual_seed(seed)
    return Concept(token, {s.kind: torch.randn(2, s.width, generator=g) for s in model.text_encoders}, source=f"seed {seed}")


def test_two_threads_with_same_named_concepts_get_their_own_images(tiny_model):
    before = model_state(tiny_model)
    concepts = [_concept(tiny_model, "<pet>", seed) for seed in (1, 2)]
    settings = dict(seed=7, steps=3, guidance=5.0)
    alone = [generate(tiny_model, "a photo of <pet>", [c], **settings)[0].tobytes() for c in concepts]
    assert alone[0] != alone[1]
    results: dict[int, list[bytes]] = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def visitor(i):
        barrier.wait()
        for _ in range(3):
            results[i].append(generate(tiny_model, "a photo of <pet>", [concepts[i]], **settings)[0].tobytes())

    threads = [threading.Thread(target=visitor, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == [alone[0]] * 3 and results[1] == [alone[1]] * 3
    assert_same_state(before, tiny_model)
    assert all(len(s.tokenizer) == s.encoder.get_input_embeddings().num_embeddings for s in tiny_model.text_encoders)


def test_generation_settings_are_honoured(tiny_sdxl):
    images = generate(tiny_sdxl, "a red robot", steps=2, seed=1, num_images=2, width=48, height=32)
    assert [im.size for im in images] == [(48, 32), (48, 32)]
    with pytest.raises(ValueError, match="prompt is empty"):
        generate(tiny_sdxl, "  ")


def test_clashing_keywords_from_two_sources_get_a_suffix(tiny_sd, tmp_path):
    for name, seed in (("a", 1), ("b", 2)):
        write_concept_files(_concept(tiny_sd, "<pet>", seed), tmp_path / name, tiny_sd)
    concepts, notes = load_concepts([str(tmp_path / "a"), str(tmp_path / "b")], tiny_sd)
    assert [c.token for c in concepts] == ["<pet>", "<pet-2>"]
    assert "already used" in notes[0]
    image_a = generate(tiny_sd, "<pet>", concepts, seed=0, steps=2)[0].tobytes()
    image_b = generate(tiny_sd, "<pet-2>", concepts, seed=0, steps=2)[0].tobytes()
    assert image_a != image_b
