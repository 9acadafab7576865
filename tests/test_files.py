"""Files out: what we write loads in diffusers' own loader and in our reader, with equal results."""


import pytest
import torch
from diffusers import DiffusionPipeline
from safetensors.torch import load_file

from textinv_core.concepts import Concept
from textinv_core.models import resolve_model_path
from textinv_core.prompts import encode_prompts
from textinv_core.readers import read_embedding
from textinv_core.sources import fit_embedding, load_concept
from textinv_core.writers import write_concept_files


def _concept(model, n=3, seed=0) -> Concept:
    g = torch.Generator().manual_seed(seed)
    vectors = {s.kind: torch.randn(n, s.width, generator=g) * 0.5 for s in model.text_encoders}
    return Concept("<my-thing>", vectors, "style", "test")


def _fresh_pipeline(model):
    return DiffusionPipeline.from_pretrained(resolve_model_path(model.spec))


def test_diffusers_loader_reads_our_file_and_computes_the_same_prompt_embeddings(tiny_sd, tmp_path):
    concept = _concept(tiny_sd)
    write_concept_files(concept, tmp_path, tiny_sd)
    pipe = _fresh_pipeline(tiny_sd)
    pipe.load_textual_inversion(str(tmp_path), weight_name="learned_embeds.safetensors")
    prompt = "a house in the style of <my-thing>, bright"
    theirs = pipe.encode_prompt(prompt, "cpu", 1, False)[0]
    ours = encode_prompts(tiny_sd, [prompt], [concept]).prompt_embeds
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_sdxl_files_load_into_both_diffusers_encoders_with_the_same_embeddings(tiny_sdxl, tmp_path):
    concept = _concept(tiny_sdxl, n=2)
    write_concept_files(concept, tmp_path, tiny_sdxl)
    pipe = _fresh_pipeline(tiny_sdxl)
    pipe.load_textual_inversion(str(tmp_path / "learned_embeds.safetensors"), token="<my-thing>",
                                text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(str(tmp_path / "learned_embeds_2.safetensors"), token="<my-thing>",
                                text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2)
    prompt = "a photo of <my-thing>"
    theirs = pipe.encode_prompt(prompt, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False)
    ours = encode_prompts(tiny_sdxl, [prompt], [concept])
    assert torch.allclose(ours.prompt_embeds, theirs[0], atol=1e-5)
    # Pooled outputs are not compared: diffusers' added token ids exceed EOS, so with this
    # eos_token_id=2 config CLIP pools at the concept, not at EOS (test_prompts checks ours).


def test_every_written_file_reads_back_to_the_same_vectors(tiny_model, tmp_path):
    concept = _concept(tiny_model)
    written = write_concept_files(concept, tmp_path, tiny_model, step=7)
    embedding_files = [p for p in written if p.suffix in (".pt", ".safetensors") and not p.name.endswith("_2.safetensors")]
    assert embedding_files
    for path in embedding_files:
        fitted, _ = fit_embedding(read_embedding(path), tiny_model)
        for kind, vectors in concept.vectors.items():
            assert torch.equal(fitted.vectors[kind], vectors), path.name
    loaded, _ = load_concept(tmp_path, tiny_model)
    assert loaded.token == "<my-thing>" and loaded.concept_type == "style"
    if not tiny_model.family.is_sdxl:
        a1111 = torch.load(tmp_path / "my-thing.pt", weights_only=True)
        assert a1111["step"] == 7 and a1111["name"] == "my-thing"
        assert load_file(tmp_path / "learned_embeds.safetensors")["<my-thing>"].shape == (3, 32)


def test_an_sdxl_file_on_an_sd_model_uses_clip_l_and_says_so(tiny_sd, tiny_sdxl, tmp_path):
    sdxl = _concept(tiny_sdxl)
    write_concept_files(sdxl, tmp_path, tiny_sdxl)
    concept, notes = load_concept(tmp_path / "my-thing.safetensors", tiny_sd)
    assert torch.equal(concept.vectors["clip_l"], sdxl.vectors["clip_l"]) and "clip_l part" in notes[0]
    sd = _concept(tiny_sd)
    write_concept_files(sd, tmp_path / "sd", tiny_sd)
    with pytest.raises(ValueError, match="this model .* is SDXL"):
        load_concept(tmp_path / "sd" / "my-thing.pt", tiny_sdxl)


def test_a_training_progression_loads_its_final_snapshot_and_says_so(tiny_sdxl, tmp_path):
    """The SDXL notebook's list of snapshots over training is one embedding, not several vectors."""
    widths = [slot.width for slot in tiny_sdxl.text_encoders]
    g = torch.Generator().manual_seed(3)
    snapshots = [{"emb": torch.randn(widths[0], generator=g), "emb2": torch.randn(widths[1], generator=g)} for _ in range(5)]
    torch.save(snapshots, tmp_path / "allmything.pt")
    concept, notes = load_concept(tmp_path / "allmything.pt", tiny_sdxl)
    assert concept.num_vectors == 1
    assert torch.equal(concept.vectors["clip_l"][0], snapshots[-1]["emb"])
    assert torch.equal(concept.vectors["clip_g"][0], snapshots[-1]["emb2"])
    assert "5 snapshots" in notes[0] and "snapshot 5 (the last)" in notes[0]


def test_negative_embedding_in_the_negative_prompt_changes_the_image(tiny_sd, tmp_path):
    from textinv_core.generate import generate

    negative = Concept("bad-thing", {"clip_l": torch.randn(4, 32, generator=torch.Generator().manual_seed(1))}, source="t")
    plain = generate(tiny_sd, "a house", negative_prompt="bad-thing", seed=0, steps=2)[0]
    with_concept = generate(tiny_sd, "a house", [negative], negative_prompt="bad-thing", seed=0, steps=2)[0]
    assert plain.tobytes() != with_concept.tobytes()
    again = generate(tiny_sd, "a house", [negative], negative_prompt="bad-thing", seed=0, steps=2)[0]
    assert again.tobytes() == with_concept.tobytes()
