"""Sharing a trained concept as a concepts-library repo on the Hub.

A push stages exactly the files to publish in a temporary folder and uploads it as one commit.
The user's output folder is only read, so a failed push (network, permissions) loses nothing and
can simply be retried. Tokens are passed to huggingface_hub and never printed or stored by us.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError

from .concepts import Concept, concept_name
from .hub import REPO_ID, HubError, error_reason
from .readers import read_embedding
from .writers import write_concept_folder, write_learned_embeds_bin

LICENSES = ("openrail++", "creativeml-openrail-m", "cc-by-4.0", "cc-by-nc-4.0", "mit", "apache-2.0", "other")


def slug_repo_name(name: str) -> str:
    """`My Cat Toy!` -> `my-cat-toy`: a name the Hub accepts."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.strip().strip("<>").lower()).strip("-._")
    return slug[:96] or "concept"


def repo_id_for(namespace: str, name: str) -> str:
    repo_id = f"{namespace.strip()}/{slug_repo_name(name)}"
    if not REPO_ID.match(repo_id):
        raise HubError(f"{repo_id!r} is not a valid repo name: use letters, digits and '-'")
    return repo_id


def check_can_push(api: HfApi, namespace: str) -> str:
    """Ask the Hub who the token belongs to before creating anything; returns the user name."""
    if not api.token:
        raise HubError("not logged in: log in with Hugging Face, set HF_TOKEN, or paste a token with write access")
    try:
        me = api.whoami()
    except HfHubHTTPError as err:
        if err.response is not None and err.response.status_code == 401:
            raise HubError("the Hub refused this token (invalid or expired): log in again or paste a new one") from None
        raise HubError(f"could not check the token ({error_reason(err)})") from None
    except (httpx2.HTTPError, OSError) as err:
        raise HubError(f"can't reach the Hub ({error_reason(err)}); your files are safe, try again later") from None
    role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise HubError("this token is read-only: create a token with write access (or log in with the write scope)")
    allowed = [me["name"]] + [org["name"] for org in me.get("orgs", [])]
    if namespace not in allowed:
        raise HubError(f"you can't create repos under {namespace!r}; this token can write to: {', '.join(allowed)}")
    return me["name"]


def stage_repo(output_dir: Path, staging: Path, repo_id: str, license: str) -> None:
    """Lay out the repo: embedding files for every tool, keyword, type, images and a model card.

    The embedding files are written afresh from the trained vectors (not copied), so a folder
    trained by an older version still publishes files every tool accepts today; `learned_embeds.bin`
    is added for InvokeAI's install by repo id.
    """
    settings = json.loads((output_dir / "settings.json").read_text()) if (output_dir / "settings.json").exists() else {}
    concept, step = trained_concept(output_dir)
    base = settings.get("model")
    write_concept_folder(concept, staging, step=step, base_model=base)
    write_learned_embeds_bin(concept, staging / "learned_embeds.bin", step=step, checkpoint_name=base)
    for folder, target, limit in (("concept_images", "concept_images", 50), ("samples", "samples", 8), ("previews", "samples", 4)):
        images = sorted((output_dir / folder).glob("*.png"))[-limit:]
        if images:
            (staging / target).mkdir(exist_ok=True)
        for path in images:
            shutil.copy2(path, staging / target / path.name)
    model_card(repo_id, concept.token, settings, staging, license).save(staging / "README.md")


def trained_concept(output_dir: Path) -> tuple[Concept, int]:
    """The concept in a training output folder, and the step it was saved at (0 when unknown)."""
    embedding = read_embedding(output_dir / "learned_embeds.safetensors")
    type_file = output_dir / "type_of_concept.txt"
    kind = type_file.read_text().strip() if type_file.exists() else "object"
    a1111 = output_dir / f"{concept_name(embedding.token)}.pt"
    step = read_embedding(a1111).details.get("step", 0) if a1111.exists() else 0
    return Concept(embedding.token, dict(embedding.vectors), kind, str(output_dir)), step


def tool_table(repo_id: str, token: str, is_sdxl: bool) -> str:
    """Markdown: which file each tool takes and the exact keyword it wants in the prompt.

    A1111 and ComfyUI key an embedding by its file name; InvokeAI by its model name in angle
    brackets, which is the file name for a file and the repo's name for a repo installed by id;
    diffusers by the token stored in the file.
    """
    name = concept_name(token)
    webui_file = f"{name}.safetensors" if is_sdxl else f"{name}.pt"
    diffusers_files = "`learned_embeds.safetensors`" + (" + `learned_embeds_2.safetensors`" if is_sdxl else "")
    rows = [
        ("diffusers", f"{diffusers_files} (code below)", f"`{token}`"),
        ("AUTOMATIC1111", f"`{webui_file}`, into `embeddings/`", f"`{name}`"),
        ("ComfyUI", f"`{name}.safetensors`, into `models/embeddings/`", f"`embedding:{name}`"),
        ("InvokeAI", f"install by repo id `{repo_id}` (it takes `learned_embeds.bin`)", f"`<{repo_id.split('/')[1]}>`"),
        ("InvokeAI, from a file", f"`{name}.safetensors`, installed as a file", f"`<{name}>`"),
    ]
    lines = ["| tool | file | write in the prompt |", "| --- | --- | --- |"]
    return "\n".join(lines + [f"| {tool} | {file} | {keyword} |" for tool, file, keyword in rows])


def model_card(repo_id: str, token: str, settings: dict, staging: Path, license: str) -> ModelCard:
    family = settings.get("family", "SD 1.x")
    base = settings.get("model", "")
    is_sdxl = family == "SDXL"
    kind = (staging / "type_of_concept.txt").read_text().strip() if (staging / "type_of_concept.txt").exists() else "object"
    example = f"a photo of {token}" if kind == "object" else f"a painting of a harbour in the style of {token}"
    samples = sorted(p.relative_to(staging).as_posix() for p in (staging / "samples").glob("*.png")) if (staging / "samples").exists() else []
    data = ModelCardData(
        license=license,
        library_name="diffusers",
        base_model=base if re.match(r"^[\w.-]+/[\w.-]+$", base) else None,
        tags=["textual_inversion", "stable-diffusion", "diffusers", "text-to-image", "sdxl" if is_sdxl else family.lower().replace(" ", "-").replace(".", "")],
        pipeline_tag="text-to-image",
        widget=[{"text": example} | ({"output": {"url": samples[0]}} if samples else {})],
        instance_prompt=token,
    )
    if is_sdxl:
        diffusers_use = f'''```python
pipe.load_textual_inversion("{repo_id}", weight_name="learned_embeds.safetensors", token="{token}",
                            text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
pipe.load_textual_inversion("{repo_id}", weight_name="learned_embeds_2.safetensors", token="{token}",
                            text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2)
image = pipe("{example}").images[0]
```'''
    else:
        diffusers_use = f'''```python
pipe.load_textual_inversion("{repo_id}", weight_name="learned_embeds.safetensors")
image = pipe("{example}").images[0]
```'''
    concept_images = sorted((staging / "concept_images").glob("*.png")) if (staging / "concept_images").exists() else []
    gallery = " ".join(f"![](concept_images/{p.name})" for p in concept_images[:8])
    sample_gallery = " ".join(f"![]({s})" for s in samples)
    rows = "\n".join(
        f"| {k} | {settings[k]} |"
        for k in ("model", "num_vectors", "init_word", "steps", "learning_rate", "lr_schedule", "batch_size", "resolution", "seed", "flip")
        if k in settings
    )
    content = f"""---
{data.to_yaml()}
---

# {token}

A textual-inversion {kind} concept for {family}{f" (trained on `{base}`)" if base else ""}: one new word,
`{token}`, learned from {len(concept_images) or "a few"} images with textinv; the rest
of the model is unchanged.

## Which file for which tool

Each tool reads its own file and wants its own keyword in the prompt:

{tool_table(repo_id, token, is_sdxl)}

## Use it in diffusers

{diffusers_use}

## Training images

{gallery or "(not included)"}

## Samples

{sample_gallery or "(none yet)"}

## Training settings

| setting | value |
| --- | --- |
{rows}
"""
    return ModelCard(content)


def push_concept(
    output_dir: str | Path,
    repo_id: str,
    api: HfApi,
    private: bool = False,
    license: str = "openrail++",
    commit_message: str | None = None,
) -> str:
    """Create (or update) `repo_id` with the concept in `output_dir`; returns the repo URL."""
    output_dir = Path(output_dir)
    if not (output_dir / "learned_embeds.safetensors").exists() or not (output_dir / "token_identifier.txt").exists():
        raise HubError(f"{output_dir} does not hold a trained concept (no learned_embeds.safetensors / token_identifier.txt)")
    if not REPO_ID.match(repo_id):
        raise HubError(f"{repo_id!r} is not a valid repo name: use NAMESPACE/NAME with letters, digits and '-'")
    check_can_push(api, repo_id.split("/")[0])
    with tempfile.TemporaryDirectory(prefix="textinv-push-") as tmp:
        staging = Path(tmp)
        stage_repo(output_dir, staging, repo_id, license)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                commit_message=commit_message or f"Upload concept {staging.joinpath('token_identifier.txt').read_text().strip()}",
            )
        except HfHubHTTPError as err:
            status = err.response.status_code if err.response is not None else None
            if status in (401, 403):
                raise HubError(
                    f"the Hub refused the push to {repo_id} (HTTP {status}): the repo may belong to someone else, "
                    "or the token lacks write access. Your files are safe; fix that and push again"
                ) from None
            raise HubError(f"push to {repo_id} failed ({error_reason(err)}); your files are safe, push again") from None
        except (httpx2.HTTPError, OSError) as err:
            raise HubError(f"push to {repo_id} failed ({error_reason(err)}); your files are safe, push again") from None
    return str(url)
