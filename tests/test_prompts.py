"""The concept mechanism: prompts with keywords, without touching the shared tokenizer or encoder."""

import threading

import torch

from conftest import assert_same_state, model_state
from textinv_core.concepts import Concept, new_concept
from textinv_core.prompts import encode_prompts, tokenize_all


def _random_concept(model, token, n, seed):
    g = torch.Generator().manual_seed(seed)
    return Concept(token, {s.kind: torch.randn(n, s.width, generator=g) for s in model.text_encoders}, source=f"seed {seed}")


def test_plain_prompt_tokenizes_and_encodes_like_the_pipeline(tiny_model):
    prompt = "a photo of a red robot on a table"
    for slot, tokens in zip(tiny_model.text_encoders, tokenize_all(tiny_model, [prompt], [])):
        expected = slot.tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
        assert tokens.ids[0].tolist() == expected
    ours = encode_prompts(tiny_model, [prompt])
    theirs = tiny_model.pipe.encode_prompt(prompt, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False)
    assert torch.allclose(ours.prompt_embeds, theirs[0])
    if tiny_model.family.is_sdxl:
        assert torch.allclose(ours.pooled, theirs[2])


def test_keyword_becomes_one_slot_per_vector_and_changes_only_later_positions(tiny_model):
    concept = _random_concept(tiny_model, "<cat-toy>", 3, 0)
    tokens = tokenize_all(tiny_model, ["a <cat-toy> on a table"], [concept])[0]
    assert tokens.cols.tolist() == [2, 3, 4] and tokens.sources.tolist() == [0, 1, 2]
    with_concept = encode_prompts(tiny_model, ["a <CAT-TOY> on a table"], [concept]).prompt_embeds
    other = encode_prompts(tiny_model, ["a <cat-toy> on a table"], [_random_concept(tiny_model, "<cat-toy>", 3, 1)]).prompt_embeds
    # causal attention: positions before the keyword are untouched, the keyword's own differ
    assert torch.equal(with_concept[0, :2], other[0, :2])
    assert not torch.allclose(with_concept[0, 2:5], other[0, 2:5])


def test_keyword_matches_whole_words_only(tiny_sd):
    concept = _random_concept(tiny_sd, "bad-hands", 2, 0)
    tokens = tokenize_all(tiny_sd, ["bad-hands-5, bad-hands"], [concept])[0]
    assert len(tokens.cols) == 2  # only the second, standalone keyword


def test_shared_tokenizer_and_encoder_are_untouched(tiny_model):
    before = model_state(tiny_model)
    sizes = [len(s.tokenizer) for s in tiny_model.text_encoders]
    concept = new_concept(tiny_model, "<thing>", "robot", 2, "object", 0)
    encode_prompts(tiny_model, ["a <thing>"], [concept]).prompt_embeds.sum().backward()
    assert [len(s.tokenizer) for s in tiny_model.text_encoders] == sizes
    assert_same_state(before, tiny_model)
    assert all(v.grad is not None for v in concept.vectors.values())


def test_two_threads_with_same_keyword_get_their_own_concept(tiny_model):
    """Two visitors at once, each with their own `<pet>`: each gets exactly what it gets alone."""
    prompt = "a photo of <pet>"
    concepts = [_random_concept(tiny_model, "<pet>", 2, seed) for seed in (1, 2)]
    alone = [encode_prompts(tiny_model, [prompt], [c]).prompt_embeds for c in concepts]
    results: dict[int, list] = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def work(i):
        barrier.wait()
        for _ in range(20):
            results[i].append(encode_prompts(tiny_model, [prompt], [concepts[i]]).prompt_embeds)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in (0, 1):
        assert all(torch.equal(r, alone[i]) for r in results[i])
    assert not torch.allclose(alone[0], alone[1])
    plain = encode_prompts(tiny_model, [prompt]).prompt_embeds
    assert not torch.allclose(plain, alone[0])  # and with no concepts, the plain model


def test_pooled_output_is_taken_at_end_of_text(tiny_sdxl):
    """SDXL's pooled embedding must come from the EOS position even with a concept in the prompt
    (an added token with an id above EOS would move CLIP's argmax pooling onto the concept)."""
    concept = _random_concept(tiny_sdxl, "<thing>", 2, 0)
    prompt = "a <thing> on a table"
    slot = tiny_sdxl.text_encoders[1]
    tokens = tokenize_all(tiny_sdxl, [prompt], [concept])[1]
    eos_position = tokens.ids[0].tolist().index(slot.tokenizer.eos_token_id)
    cond = encode_prompts(tiny_sdxl, [prompt], [concept])
    from textinv_core.prompts import substituted

    table = concept.vectors["clip_g"]
    with substituted(slot.encoder.get_input_embeddings(), tokens.rows, tokens.cols, table[tokens.sources]):
        out = slot.encoder(tokens.ids, output_hidden_states=True)
    final = slot.encoder.text_model.final_layer_norm(out.hidden_states[-1])
    expected = slot.encoder.text_projection(final[0, eos_position])
    assert torch.allclose(cond.pooled[0], expected, atol=1e-6)
