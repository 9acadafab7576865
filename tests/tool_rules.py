"""Each tool's rules for loading an embedding file, restated from its current loading code.

Written for these tests from reading each project's code (none of it is copied); each helper says
which code it restates. They answer what a user of that tool would see for one of our files:

- AUTOMATIC1111 (modules/safe.py, modules/textual_inversion/textual_inversion.py): a .pt/.bin must
  pass the zip-entry allow list and the restricted unpickler; the loader then keys the embedding by
  the file name and takes its shape from the layout; an embedding whose width differs from the
  model's (768 SD 1, 1024 SD 2, 768 + 1280 SDXL) is skipped.
- InvokeAI (model_manager/model_on_disk.py, configs/textual_inversion.py,
  util/select_hf_files.py, backend/textual_inversion.py, app/util/ti_utils.py): picklescan, then a
  probe that decides "is this an embedding" and its base model from the width it finds; an install
  by Hub repo id downloads a filtered file list into a folder named after the repo, whose
  `learned_embeds.bin` is what gets loaded; the prompt names a model as <name>.
- ComfyUI (comfy/sd1_clip.py load_embed, sdxl_clip.py / sd2_clip.py tokenizers): `embedding:NAME`
  looks for NAME, NAME.safetensors, NAME.pt, NAME.bin; each encoder takes its key (clip_l,
  clip_g) or else the first value, and ignores rows of the wrong width.
"""

from __future__ import annotations

import importlib
import pickle
import pickletools
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
from safetensors.torch import load_file

# --- AUTOMATIC1111 ----------------------------------------------------------------------------

A1111_ZIP_ENTRY = re.compile(r"^([^/]+)/((data/\d+)|version|(data\.pkl))$")
A1111_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    *(("torch", storage) for storage in ("FloatStorage", "HalfStorage", "IntStorage", "LongStorage",
                                          "DoubleStorage", "ByteStorage", "BFloat16Storage", "float32")),
    ("torch.nn.modules.container", "ParameterDict"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),
    ("__builtin__", "set"),
}
A1111_SUFFIXES = (".pt", ".bin", ".safetensors", ".png", ".webp", ".jxl", ".avif")
A1111_WIDTH = {"SD 1.x": 768, "SD 2.x": 1024, "SDXL": 768 + 1280}


class A1111Refused(Exception):
    """What A1111 reports as "The file may be malicious, so the program is not going to read it"."""


class _A1111Unpickler(pickle.Unpickler):
    """A1111's RestrictedUnpickler: its listed globals only, each the real thing; every storage
    comes back as an empty typed storage (the check reads no tensor data)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in A1111_GLOBALS:
            raise A1111Refused(f"global '{module}/{name}' is forbidden")
        return getattr(importlib.import_module("builtins" if module == "__builtin__" else module), name)

    def persistent_load(self, saved_id):
        if saved_id[0] != "storage":
            raise A1111Refused(f"persistent id {saved_id[0]!r}")
        return torch.storage.TypedStorage(_internal=True)


def a1111_check_pt(path: Path) -> None:
    """modules/safe.py check_pt: a zip must hold only DIR/data.pkl, DIR/version and DIR/data/N,
    with exactly one data.pkl, which its restricted unpickler must get through; a pre-zip file
    is five pickles in a row. Raises A1111Refused."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = [name for name in names if not A1111_ZIP_ENTRY.match(name)]
            if bad:
                raise A1111Refused(f"bad file inside {path}: {bad[0]}")
            pickles = [name for name in names if name.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise A1111Refused(f"{len(pickles)} data.pkl in {path}")
            with archive.open(pickles[0]) as data:
                a1111_check_pickle(data)
    except zipfile.BadZipFile:
        with path.open("rb") as data:
            for _ in range(5):
                a1111_check_pickle(data)


def a1111_check_pickle(data: IO[bytes]) -> None:
    """One pickle through A1111's restricted unpickler; raises A1111Refused."""
    try:
        _A1111Unpickler(data).load()
    except A1111Refused:
        raise
    except Exception as err:  # anything else stops A1111 just the same
        raise A1111Refused(f"{type(err).__name__}: {err}") from None


@dataclass
class A1111Embedding:
    name: str           # what the prompt must say
    shape: int          # the width A1111 compares with the model's
    vectors: int
    vec: torch.Tensor | dict[str, torch.Tensor]


def a1111_load(path: Path) -> A1111Embedding | None:
    """EmbeddingDatabase.load_from_file + create_embedding_from_data for a .pt/.bin/.safetensors:
    None for a file it ignores; raises A1111Refused or ValueError where A1111 reports an error."""
    name, suffix = path.stem, path.suffix.lower()
    if suffix in (".pt", ".bin"):
        a1111_check_pt(path)
        data = torch.load(path, map_location="cpu", weights_only=True)
    elif suffix == ".safetensors":
        data = load_file(path)
    else:
        return None
    if "string_to_param" in data:
        params = getattr(data["string_to_param"], "_parameters", data["string_to_param"])
        if len(params) != 1:
            raise ValueError("embedding file has multiple terms in it")
        vec = next(iter(params.values())).float()
        return A1111Embedding(name, vec.shape[-1], vec.shape[0], vec)
    if isinstance(data, dict) and "clip_g" in data and "clip_l" in data:
        vec = {key: value.float() for key, value in data.items()}
        return A1111Embedding(name, data["clip_g"].shape[-1] + data["clip_l"].shape[-1], data["clip_g"].shape[0], vec)
    if isinstance(data, dict) and isinstance(next(iter(data.values())), torch.Tensor):
        if len(data) != 1:
            raise ValueError("embedding file has multiple terms in it")
        vec = next(iter(data.values())).float()
        vec = vec.unsqueeze(0) if vec.ndim == 1 else vec
        return A1111Embedding(name, vec.shape[-1], vec.shape[0], vec)
    raise ValueError(f"Couldn't identify {path.name} as neither textual inversion embedding nor diffuser concept.")


def a1111_scan(folder: Path, width: int) -> tuple[dict[str, A1111Embedding], dict[str, A1111Embedding], list[str]]:
    """load_from_dir over a whole embeddings folder (walked recursively, as A1111 does) with a model
    of this width (A1111_WIDTH): the embeddings registered, those skipped for their width, and the
    errors A1111 would print. Images are only walked past here: ours carry no embedding data."""
    registered: dict[str, A1111Embedding] = {}
    skipped: dict[str, A1111Embedding] = {}
    errors: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 0):
        if path.suffix.lower() in (".png", ".webp", ".jxl", ".avif"):
            continue
        try:
            embedding = a1111_load(path)
        except (A1111Refused, ValueError, RuntimeError, KeyError) as err:
            errors.append(f"{path.relative_to(folder)}: {err}")
            continue
        if embedding is not None:
            target = registered if embedding.shape == width else skipped
            target[embedding.name] = embedding
    return registered, skipped, errors


# --- InvokeAI ---------------------------------------------------------------------------------

# Globals picklescan counts as safe in a torch file; anything it calls dangerous (os, builtins
# eval/exec, subprocess, ...) makes it report the file infected. Stricter here: nothing else at all.
PICKLESCAN_SAFE = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "FloatStorage"),
    ("torch", "HalfStorage"),
    ("torch", "BFloat16Storage"),
    ("torch", "LongStorage"),
}
INVOKEAI_WIDTH_BASE = {768: "sd-1", 1024: "sd-2", 1280: "sdxl"}
INVOKEAI_TRIGGER = re.compile(r"<[a-zA-Z0-9., _-]+>")


class InvokeAIRefused(Exception):
    """An install InvokeAI refuses, with its reason."""


def pickle_globals(data: bytes) -> set[tuple[str, str]]:
    """The globals a pickle names (GLOBAL, and STACK_GLOBAL from the two strings before it), read
    without unpickling anything, as picklescan does."""
    found: set[tuple[str, str]] = set()
    strings: list[str] = []
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            module, name = argument.split(" ", 1)
            found.add((module, name))
        elif opcode.name == "STACK_GLOBAL":
            found.add((strings[-2], strings[-1]))
        elif isinstance(argument, str):
            strings.append(argument)
    return found


def invokeai_scan(path: Path) -> None:
    """picklescan over a torch zip's pickles: it must parse, and name only known-safe globals."""
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".pkl"):
                    unsafe = pickle_globals(archive.read(name)) - PICKLESCAN_SAFE
                    if unsafe:
                        raise InvokeAIRefused(f"{path.stem} is potentially infected by malware: {sorted(unsafe)}")
    except (zipfile.BadZipFile, ValueError) as err:
        raise InvokeAIRefused(f"Error scanning the model at {path.stem} for malware: {err}") from None


def invokeai_state_dict(path: Path) -> dict:
    """ModelOnDisk.load_state_dict: picklescan, then torch.load (weights_only, torch's default)."""
    if path.suffix in (".ckpt", ".pt", ".pth", ".bin"):
        invokeai_scan(path)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    elif path.suffix == ".safetensors":
        checkpoint = load_file(path)
    else:
        raise InvokeAIRefused(f"Unrecognized model extension: {path.suffix}")
    if not isinstance(checkpoint, dict):
        raise InvokeAIRefused(f"{path.name} does not hold a dict")
    return checkpoint.get("state_dict", checkpoint)


def invokeai_looks_like_embedding(state_dict: dict) -> bool:
    """TI_Config_Base._file_looks_like_embedding (its learned_embeds.* name shortcut compares a
    name with formatted paths, so it never matches: the keys decide)."""
    if any(key in {"string_to_param", "emb_params", "clip_g"} for key in state_dict):
        return True
    return len(state_dict) < 10 and all(isinstance(value, torch.Tensor) for value in state_dict.values())


def invokeai_base(state_dict: dict) -> str:
    """TI_Config_Base._get_base_or_raise: the width it finds, by layout; for any other dict the
    first value's *first* dimension."""
    if "string_to_token" in state_dict:
        width = list(state_dict["string_to_param"].values())[0].shape[-1]
    elif "emb_params" in state_dict:
        width = state_dict["emb_params"].shape[-1]
    elif "clip_g" in state_dict:
        width = state_dict["clip_g"].shape[-1]
    else:
        width = list(state_dict.values())[0].shape[0]
    if width not in INVOKEAI_WIDTH_BASE:
        raise InvokeAIRefused(f"unrecognized token dimension {width}")
    return INVOKEAI_WIDTH_BASE[width]


def invokeai_embedding(state_dict: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """TextualInversionModelRaw.from_checkpoint: (embedding, embedding_2); for SDXL the first is
    clip_g's rows, the second clip_l's."""
    if "string_to_param" in state_dict:
        return next(iter(state_dict["string_to_param"].values())), None
    if "emb_params" in state_dict:
        return state_dict["emb_params"], None
    if "clip_g" in state_dict and "clip_l" in state_dict:
        return state_dict["clip_g"], state_dict["clip_l"]
    embedding = next(iter(state_dict.values()))
    return (embedding.unsqueeze(0) if embedding.ndim == 1 else embedding), None


@dataclass
class InvokeAIModel:
    name: str       # its trigger in a prompt is <name>
    base: str
    embedding: torch.Tensor
    embedding_2: torch.Tensor | None


def invokeai_install_file(path: Path) -> InvokeAIModel:
    """Install one embedding file: probe it as a TI file, load it; the model is named by its stem."""
    state_dict = invokeai_state_dict(path)
    if not invokeai_looks_like_embedding(state_dict):
        raise InvokeAIRefused(f"{path.name} does not look like a textual inversion embedding file")
    base = invokeai_base(state_dict)
    return InvokeAIModel(path.stem, base, *invokeai_embedding(state_dict))


def invokeai_hub_files(repo_files: list[str]) -> list[str]:
    """select_hf_files.filter_files for a repo installed by id: text and json files, names ending
    in learned_embeds.bin (and a few other fixed names), and weights whose name contains "model";
    when any such weights are .safetensors, .bin weights are dropped."""
    fixed = ("learned_embeds.bin", "ip_adapter.bin", "lora_weights.safetensors", "weights.pb", "onnx_data", "spiece.model")
    weights_pattern = re.compile(r"model.*\.(safetensors|bin|onnx|xml|pth|pt|ckpt|msgpack)$")
    picked = [
        name for name in repo_files
        if name.endswith((".json", ".txt", ".jinja")) or name.endswith(fixed) or weights_pattern.search(Path(name).name)
    ]
    if any(name.endswith(".safetensors") for name in picked):
        picked = [name for name in picked if not name.endswith(".bin")]
    return picked


def invokeai_install_folder(folder: Path) -> InvokeAIModel:
    """Probe a downloaded folder as a TI folder: it takes whichever weight file comes first (a set:
    any order), so every one that looks like an embedding must give the same base; the loader then
    reads the folder's learned_embeds.bin. The model is named after the folder."""
    bases = set()
    for path in folder.rglob("*"):
        if path.suffix in (".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".gguf") and path.is_file():
            state_dict = invokeai_state_dict(path)
            if invokeai_looks_like_embedding(state_dict):
                bases.add(invokeai_base(state_dict))
    if len(bases) != 1:
        raise InvokeAIRefused(f"{folder.name}: the probe finds bases {sorted(bases)}")
    learned = folder / "learned_embeds.bin"
    if not learned.is_file():
        raise InvokeAIRefused(f"The embedding file at {learned} was not found")
    return InvokeAIModel(folder.name, bases.pop(), *invokeai_embedding(invokeai_state_dict(learned)))


def invokeai_triggers(prompt: str) -> list[str]:
    """ti_utils.extract_ti_triggers_from_prompt: the model names a prompt asks for."""
    return [trigger[1:-1] for trigger in INVOKEAI_TRIGGER.findall(prompt)]


# --- ComfyUI ----------------------------------------------------------------------------------

# Each text encoder's tokenizer: (embedding_size, embedding_key). SD 2's passes no key, so it
# keeps the default "clip_l".
COMFYUI_ENCODERS = {
    "SD 1.x": {"clip_l": (768, "clip_l")},
    "SD 2.x": {"clip_h": (1024, "clip_l")},
    "SDXL": {"clip_l": (768, "clip_l"), "clip_g": (1280, "clip_g")},
}


def comfyui_find(folder: Path, name: str) -> Path | None:
    """load_embed's lookup for `embedding:NAME`: NAME itself, else NAME + .safetensors, .pt, .bin."""
    exact = folder / name
    if exact.is_file():
        return exact
    return next((folder / f"{name}{suffix}" for suffix in (".safetensors", ".pt", ".bin") if (folder / f"{name}{suffix}").is_file()), None)


def comfyui_rows(path: Path, size: int, key: str) -> torch.Tensor | None:
    """load_embed's choice of tensor for one encoder, then the encoder's width check: rows of
    another width are ignored ("shape mismatch"), so None. Our files load with weights_only
    (ComfyUI's fallback for other pickles guesses widths from raw bytes)."""
    if path.suffix.lower() == ".safetensors":
        embed = load_file(path)
    else:
        embed = torch.load(path, weights_only=True, map_location="cpu")
    if "string_to_param" in embed:
        rows = next(iter(embed["string_to_param"].values()))
    elif isinstance(embed, list):
        parts = [t.reshape(-1, t.shape[-1]) for entry in embed for t in entry.values() if t.shape[-1] == size]
        rows = torch.cat(parts)
    elif key in embed:
        rows = embed[key]
    else:
        rows = next(iter(embed.values()))
    rows = rows.reshape(-1, rows.shape[-1])
    return rows.float() if rows.shape[-1] == size else None


def comfyui_encoder_rows(folder: Path, name: str, family: str) -> dict[str, torch.Tensor | None]:
    """What `embedding:NAME` gives each of the family's encoders."""
    path = comfyui_find(folder, name)
    if path is None:
        raise FileNotFoundError(f"embedding:{name} does not exist")
    return {kind: comfyui_rows(path, size, key) for kind, (size, key) in COMFYUI_ENCODERS[family].items()}
