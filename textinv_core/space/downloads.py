"""The files a visitor takes away from a finished run."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from ..concepts import concept_name
from .driving import STOP_FILE


def download_files(output_dir: Path, family_is_sdxl: bool) -> dict[str, Path]:
    """The files to offer, each named after the concept so that two concepts downloaded into one
    folder never overwrite each other; they live in `downloads/`, apart from the run's own files.

    - `diffusers`: `NAME-diffusers.zip`, holding the folder `NAME/` with the files under the names
      diffusers expects (`learned_embeds.safetensors`, for SDXL also `learned_embeds_2.safetensors`,
      and `token_identifier.txt`): unzipped, `pipe.load_textual_inversion("NAME")` loads it.
    - `a1111`: `NAME.pt` (SDXL: `NAME.safetensors`), the file A1111 and ComfyUI read, named as
      their prompts call it.
    - `everything`: `NAME-all.zip`, the whole run folder but its checkpoints."""
    output_dir = Path(output_dir)
    token = (output_dir / "token_identifier.txt").read_text().strip()
    name = concept_name(token)
    folder = output_dir / "downloads"
    folder.mkdir(exist_ok=True)
    files = {"diffusers": folder / f"{name}-diffusers.zip"}
    diffusers_files = ["learned_embeds.safetensors", "learned_embeds_2.safetensors", "token_identifier.txt"]
    _zip(files["diffusers"], output_dir, diffusers_files, inside=name)
    a1111 = f"{name}.safetensors" if family_is_sdxl else f"{name}.pt"
    files["a1111"] = folder / a1111
    shutil.copyfile(output_dir / a1111, files["a1111"])
    files["everything"] = folder / f"{name}-all.zip"
    keep = [p.relative_to(output_dir).as_posix() for p in sorted(output_dir.rglob("*")) if p.is_file()]
    keep = [p for p in keep if not p.startswith(("checkpoints/", "downloads/")) and p != STOP_FILE]
    _zip(files["everything"], output_dir, keep)
    return files


def describe(files: dict[str, Path]) -> str:
    """Which download is which, for the page: the file names a visitor finds in their Downloads."""
    name = files["diffusers"].name.removesuffix("-diffusers.zip")
    a1111 = files["a1111"].name
    return (f"**Downloads:** *diffusers*: `{files['diffusers'].name}` holds `{name}/learned_embeds.safetensors` "
            f"(unzip it, then `pipe.load_textual_inversion(\"{name}\")`) · *AUTOMATIC1111 / ComfyUI*: `{a1111}` "
            f"(into `embeddings/`; write `{name}` in a prompt, ComfyUI `embedding:{name}`) · *everything*: "
            f"`{files['everything'].name}`, every file of the run for every tool.")


def _zip(path: Path, folder: Path, names: list[str], inside: str = "") -> None:
    """The files of `folder` called `names` (those that exist), in a folder `inside` of the zip."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            if (folder / name).is_file():
                archive.write(folder / name, f"{inside}/{name}" if inside else name)

