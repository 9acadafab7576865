"""Every file we write, checked against the loading rules of the tool it is for (tool_rules.py).

Concepts here have the real widths (768 SD 1, 1024 SD 2, 768 + 1280 SDXL) and come in every
shape we write: SD 1 with one vector and with several, SD 2, SDXL. Each goes through the three
places files are written: a training output folder, `convert`, and a Hub push's staging folder.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from diffusers.loaders import TextualInversionLoaderMixin
from huggingface_hub import ModelCard
from transformers import CLIPTextModel

from textinv_core.builtin import text_config, tiny_tokenizer
from textinv_core.cli import main as cli
from textinv_core.concepts import Concept
from textinv_core.publish import stage_repo
from textinv_core.writers import READABLE, write_concept_folder
from tool_rules import (
    A1111_WIDTH,
    A1111Refused,
    InvokeAIRefused,
    a1111_check_pickle,
    a1111_check_pt,
    a1111_load,
    a1111_scan,
    comfyui_encoder_rows,
    invokeai_hub_files,
    invokeai_install_file,
    invokeai_install_folder,
    invokeai_scan,
    invokeai_triggers,
)

TOKEN, NAME = "<my-thing>", "my-thing"
ENCODERS = {"SD 1.x": {"clip_l": 768}, "SD 2.x": {"clip_h": 1024}, "SDXL": {"clip_l": 768, "clip_g": 1280}}
INVOKEAI_BASE = {"SD 1.x": "sd-1", "SD 2.x": "sd-2", "SDXL": "sdxl"}
CASES = [("SD 1.x", 1), ("SD 1.x", 4), ("SD 2.x", 3), ("SDXL", 1), ("SDXL", 2)]
CASE_IDS = ["sd1-one-vector", "sd1-four-vectors", "sd2", "sdxl-one-vector", "sdxl-two-vectors"]


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request) -> tuple[str, Concept]:
    family, n = request.param
    generator = torch.Generator().manual_seed(n)
    vectors = {kind: torch.randn(n, width, generator=generator) * 0.5 for kind, width in ENCODERS[family].items()}
    return family, Concept(TOKEN, vectors, "object", "test")


def is_sdxl(family: str) -> bool:
    return family == "SDXL"


def tool_file(folder: Path, family: str) -> Path:
    """The file A1111 users are told to take (README, model card)."""
    return folder / (f"{NAME}.safetensors" if is_sdxl(family) else f"{NAME}.pt")


# --- what each tool makes of a file ------------------------------------------------------------


def assert_a1111_registers(path: Path, family: str, concept: Concept, name: str = NAME) -> None:
    embedding = a1111_load(path)
    assert embedding is not None and embedding.name == name
    assert (embedding.shape, embedding.vectors) == (A1111_WIDTH[family], concept.num_vectors)
    if is_sdxl(family):
        assert all(torch.equal(embedding.vec[kind], concept.vectors[kind]) for kind in ("clip_l", "clip_g"))
    else:
        assert torch.equal(embedding.vec, next(iter(concept.vectors.values())))


def assert_invokeai_model(model, family: str, concept: Concept, name: str) -> None:
    assert (model.name, model.base) == (name, INVOKEAI_BASE[family])
    assert invokeai_triggers(f"a photo of <{name}>, bright") == [model.name]
    if is_sdxl(family):  # InvokeAI keeps clip_g's rows first
        assert torch.equal(model.embedding, concept.vectors["clip_g"])
        assert torch.equal(model.embedding_2, concept.vectors["clip_l"])
    else:
        assert torch.equal(model.embedding, next(iter(concept.vectors.values()))) and model.embedding_2 is None


def assert_comfyui_rows(folder: Path, family: str, concept: Concept) -> None:
    rows = comfyui_encoder_rows(folder, NAME, family)
    assert rows.keys() == concept.vectors.keys()
    for kind, vectors in concept.vectors.items():
        assert rows[kind] is not None and torch.equal(rows[kind], vectors), kind


class DiffusersHost(TextualInversionLoaderMixin):
    """The smallest object diffusers' own `load_textual_inversion` runs on: a tokenizer and a text
    encoder per width given (one layer each, so they build in a moment)."""

    hf_device_map = None

    def __init__(self, widths: list[int]):
        tokenizers = [tiny_tokenizer() for _ in widths]
        encoders = [CLIPTextModel(text_config(t, width, layers=1)) for t, width in zip(tokenizers, widths)]
        self.tokenizer, self.text_encoder = tokenizers[0], encoders[0]
        self.tokenizer_2, self.text_encoder_2 = (tokenizers[1], encoders[1]) if len(widths) > 1 else (None, None)

    @property
    def components(self) -> dict:
        return {"text_encoder": self.text_encoder, "text_encoder_2": self.text_encoder_2}

    def rows(self, token: str, n: int, second: bool = False) -> torch.Tensor:
        """The rows diffusers gave `token` (and its `token_1`... for more vectors)."""
        tokenizer, encoder = (self.tokenizer_2, self.text_encoder_2) if second else (self.tokenizer, self.text_encoder)
        ids = tokenizer.convert_tokens_to_ids([token] + [f"{token}_{i}" for i in range(1, n)])
        return encoder.get_input_embeddings().weight[ids].detach()


def assert_diffusers_loads(source: Path, family: str, concept: Concept, **kwargs) -> None:
    """diffusers' loader, with the keyword the file stores (SD), or for SDXL as the README and the
    model card show: the learned_embeds pair, one file per encoder, with token=."""
    host = DiffusersHost(list(ENCODERS[family].values()))
    n = concept.num_vectors
    if not is_sdxl(family):
        host.load_textual_inversion(str(source), **kwargs)
        assert torch.equal(host.rows(TOKEN, n), next(iter(concept.vectors.values())))
        return
    folder = source if source.is_dir() else source.parent
    host.load_textual_inversion(str(folder), weight_name="learned_embeds.safetensors", token=TOKEN)
    host.load_textual_inversion(str(folder), weight_name="learned_embeds_2.safetensors", token=TOKEN,
                                text_encoder=host.text_encoder_2, tokenizer=host.tokenizer_2)
    assert torch.equal(host.rows(TOKEN, n), concept.vectors["clip_l"])
    assert torch.equal(host.rows(TOKEN, n, second=True), concept.vectors["clip_g"])


# --- the rules themselves bite where the tools do --------------------------------------------


def test_a_plain_torch_save_is_refused_by_a1111_as_the_issue_reports(tmp_path):
    torch.save({"string_to_param": {"*": torch.zeros(1, 768)}}, tmp_path / "plain.pt")
    with pytest.raises(A1111Refused, match=r"bad file inside .*\.format_version"):
        a1111_check_pt(tmp_path / "plain.pt")


def test_a_pickle_calling_anything_else_is_refused_by_a1111_and_picklescan(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (print, ("this would have run",))

    torch.save({"emb_params": torch.zeros(1, 768), "x": Sneaky()}, tmp_path / "sneaky.pt")
    with zipfile.ZipFile(tmp_path / "sneaky.pt") as archive, archive.open("sneaky/data.pkl") as data:
        with pytest.raises(A1111Refused, match="/print' is forbidden"):
            a1111_check_pickle(data)
    with pytest.raises(InvokeAIRefused, match="infected"):
        invokeai_scan(tmp_path / "sneaky.pt")


def test_community_pt_files_pass_the_a1111_check():
    corpus = os.environ.get("TEXTINV_COMPAT_CORPUS", "")
    files = sorted(Path(corpus).glob("a1111_pt/*/*.pt")) if corpus else []
    if not files:
        pytest.skip("set TEXTINV_COMPAT_CORPUS to the real-embeddings folder to check the rule against real files")
    for path in files:
        a1111_check_pt(path)


# --- a training output folder -----------------------------------------------------------------


@pytest.fixture
def output(case, tmp_path) -> tuple[str, Concept, Path]:
    """A training output folder for the case, as train.py writes it."""
    family, concept = case
    write_concept_folder(concept, tmp_path / "output", step=7, base_model="some/model")
    return family, concept, tmp_path / "output"


def test_output_folder_works_in_a1111_even_copied_whole(output):
    family, concept, folder = output
    assert_a1111_registers(tool_file(folder, family), family, concept)
    registered, _, errors = a1111_scan(folder, A1111_WIDTH[family])
    assert errors == []
    assert NAME in registered


def test_output_folder_works_in_comfyui(output):
    family, concept, folder = output
    assert_comfyui_rows(folder, family, concept)


def test_output_folder_files_install_in_invokeai(output):
    family, concept, folder = output
    assert_invokeai_model(invokeai_install_file(folder / f"{NAME}.safetensors"), family, concept, NAME)
    if not is_sdxl(family):
        assert_invokeai_model(invokeai_install_file(folder / f"{NAME}.pt"), family, concept, NAME)


def test_output_folder_loads_in_diffusers_with_the_keyword(output):
    family, concept, folder = output
    assert_diffusers_loads(folder, family, concept)


def test_every_file_written_is_readable_by_all_whatever_the_umask(case, tmp_path):
    family, concept = case
    previous = os.umask(0o077)
    try:
        written = write_concept_folder(concept, tmp_path / "out")
        (tmp_path / "out" / "settings.json").write_text(f'{{"family": "{family}", "model": "some/model"}}')
        (tmp_path / "staging").mkdir()
        stage_repo(tmp_path / "out", tmp_path / "staging", "alice/my-thing", "openrail++")
    finally:
        os.umask(previous)
    staged = [p for p in (tmp_path / "staging").iterdir() if p.suffix in (".pt", ".bin", ".safetensors", ".txt")]
    for path in written + staged:
        assert path.stat().st_mode & 0o777 == READABLE, path.name


# --- convert ------------------------------------------------------------------------------------


def converted(family: str, concept: Concept, tmp_path: Path) -> dict[str, Path]:
    """Run `convert` from a training folder to every format it offers for this family."""
    write_concept_folder(concept, tmp_path / "source")
    source = str(tmp_path / "source")
    targets = {"sdxl": f"{NAME}.safetensors", "diffusers": "learned_embeds.safetensors"} if is_sdxl(family) else {
        "a1111": f"{NAME}.pt", "safetensors": f"{NAME}.safetensors", "diffusers": "learned_embeds.safetensors",
        "diffusers-bin": "learned_embeds.bin",
    }
    outputs = {}
    for kind, file_name in targets.items():
        output = tmp_path / kind / file_name
        assert cli(["convert", source, "--to", kind.removesuffix("-bin"), "--output", str(output)]) == 0
        outputs[kind] = output
    return outputs


def test_converted_files_work_in_each_tool(case, tmp_path):
    family, concept = case
    outputs = converted(family, concept, tmp_path)
    webui = outputs["sdxl" if is_sdxl(family) else "a1111"]
    assert_a1111_registers(webui, family, concept)
    assert_comfyui_rows(webui.parent, family, concept)
    assert_invokeai_model(invokeai_install_file(webui), family, concept, NAME)
    if not is_sdxl(family):
        safetensors = outputs["safetensors"]
        assert_a1111_registers(safetensors, family, concept)
        assert_invokeai_model(invokeai_install_file(safetensors), family, concept, NAME)
        a1111_check_pt(outputs["diffusers-bin"])  # a .bin gets a PyTorch file, as its loaders expect
        assert_diffusers_loads(outputs["diffusers-bin"].parent, family, concept, weight_name="learned_embeds.bin")
    assert_diffusers_loads(outputs["diffusers"].parent, family, concept)


def test_convert_refuses_a1111_layout_as_safetensors(tmp_path, capsys):
    write_concept_folder(Concept(TOKEN, {"clip_l": torch.zeros(1, 768)}), tmp_path / "source")
    assert cli(["convert", str(tmp_path / "source"), "--to", "a1111", "--output", str(tmp_path / "x.safetensors")]) == 2
    assert ".pt" in capsys.readouterr().err


# --- a Hub push ---------------------------------------------------------------------------------


def staged(family: str, concept: Concept, tmp_path: Path, repo_id: str) -> Path:
    output, staging = tmp_path / "output", tmp_path / "staging"
    write_concept_folder(concept, output, step=12, base_model="some/model")
    (output / "settings.json").write_text(f'{{"family": "{family}", "model": "some/model"}}')
    staging.mkdir()
    stage_repo(output, staging, repo_id, "openrail++")
    return staging


def invokeai_download(staging: Path, repo_id: str, into: Path) -> Path:
    """What InvokeAI's install by repo id puts on disk: the filtered files, in a folder named
    after the repo."""
    files = [p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()]
    folder = into / repo_id.split("/")[1]
    for name in invokeai_hub_files(files):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(staging / name, folder / name)
    return folder


@pytest.mark.parametrize("repo_id", ["alice/my-thing", "alice/thing-v2"])
def test_a_pushed_repo_installs_in_invokeai_by_repo_id(case, tmp_path, repo_id):
    family, concept = case
    staging = staged(family, concept, tmp_path, repo_id)
    folder = invokeai_download(staging, repo_id, tmp_path / "invokeai")
    assert sorted(p.name for p in folder.iterdir()) == ["learned_embeds.bin", "token_identifier.txt", "type_of_concept.txt"]
    repo_name = repo_id.split("/")[1]
    assert_invokeai_model(invokeai_install_folder(folder), family, concept, repo_name)
    card = ModelCard.load(staging / "README.md").content
    assert f"`<{repo_name}>`" in card


def test_a_pushed_repo_works_in_a1111_comfyui_and_diffusers(case, tmp_path):
    family, concept = case
    staging = staged(family, concept, tmp_path, "alice/my-thing")
    for path in staging.iterdir():
        if path.suffix in (".pt", ".bin"):
            a1111_check_pt(path)
    assert_a1111_registers(tool_file(staging, family), family, concept)
    assert a1111_scan(staging, A1111_WIDTH[family])[2] == []
    assert_comfyui_rows(staging, family, concept)
    assert_diffusers_loads(staging, family, concept)  # diffusers takes learned_embeds.safetensors
    if not is_sdxl(family):  # and, pointed at it, reads the keyword stored in learned_embeds.bin
        assert_diffusers_loads(staging, family, concept, weight_name="learned_embeds.bin")


def test_the_model_card_says_which_file_goes_where_with_each_keyword(case, tmp_path):
    family, concept = case
    card = ModelCard.load(staged(family, concept, tmp_path, "alice/my-thing") / "README.md").content
    webui = tool_file(Path(), family).name
    for row in (
        f"| AUTOMATIC1111 | `{webui}`, into `embeddings/` | `{NAME}` |",
        f"| ComfyUI | `{NAME}.safetensors`, into `models/embeddings/` | `embedding:{NAME}` |",
        f"| InvokeAI, from a file | `{NAME}.safetensors`, installed as a file | `<{NAME}>` |",
    ):
        assert row in card
    assert "install by repo id `alice/my-thing`" in card and f"| `{TOKEN}` |" in card


# --- a user copying a whole output folder, checkpoints included ----------------------------------


def test_a_copied_output_folder_with_checkpoints_raises_no_a1111_errors(tiny_sd, robot_images, tmp_path):
    from textinv_core.train import TrainConfig, Trainer

    config = TrainConfig(token="<red-rocket>", init_word="robot", num_vectors=2, steps=2, save_every=1)
    list(Trainer(tiny_sd, robot_images, config, tmp_path).run())
    checkpoints = [p for p in tmp_path.rglob("*") if p.is_file() and "checkpoint" in p.parent.name]
    assert checkpoints
    if any(p.suffix in (".pt", ".bin", ".safetensors") for p in checkpoints):
        pytest.skip("train.py still names checkpoints step-*.pt, which A1111 loads from a copied folder "
                    "(issue 14: the change proposed for train.py)")
    registered, _, errors = a1111_scan(tmp_path, tiny_sd.text_encoders[0].width)
    assert errors == [] and "red-rocket" in registered
