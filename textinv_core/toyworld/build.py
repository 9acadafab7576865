"""Train `builtin:toyworld` from nothing on a CPU: `python -m textinv_core.toyworld.build`.

Five stages, each resumable (its state is saved to the work folder every few minutes and when it
ends, and a finished stage is skipped on the next run):

1. data     render the world's scenes once (uint8 pictures and their attributes)
2. vae      an AutoencoderKL, 64 px pictures <-> 4 x 16 x 16 latents
3. latents  encode every picture once; the latent scale is set so latents have unit variance
4. unet     the CLIP text encoder and the UNet2DConditionModel, trained together on the diffusion
            loss (min-SNR weighted) with captions drawn afresh each step, 10 % empty for guidance;
            an exponential moving average of both is what gets saved. The training tokenizer
            also knows the world's hidden words (`world.hidden_words`), so every unnamed thing
            is drawn for some input.
5. checker  the attribute classifier used to measure what generated pictures show

`export` writes a plain diffusers pipeline folder plus `world.json` and the checker's weights. Its
tokenizer cannot produce the hidden words and its text encoder has no rows for them: their vectors
go to `hidden_words.safetensors`, which only `measure` reads (the oracle a learned concept is
compared with). Each stage's time, and the VAE's reconstruction PSNR, go into `world.json`.
Everything is seeded; the same command on the same machine gives the same model.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.training_utils import compute_snr
from safetensors.torch import save_file
from tqdm import tqdm
from transformers import CLIPTextModel

from ..builtin import text_config, word_tokenizer
from ..templates import OBJECT_TEMPLATES, STYLE_TEMPLATES
from . import checker as attribute_checker
from . import world
from .measure import HIDDEN_FILE

MODEL_DIR = Path(__file__).parent / "model"


@dataclass
class BuildConfig:
    seed: int = 0
    scenes: int = 50_000
    vae_steps: int = 4000
    vae_batch: int = 16
    vae_lr: float = 1e-3
    unet_steps: int = 9000
    unet_batch: int = 32
    unet_lr: float = 1e-3
    ema_decay: float = 0.999
    checker_steps: int = 1500
    checker_batch: int = 64
    save_minutes: float = 3.0


# -- the parts ---------------------------------------------------------------------------------


def make_tokenizer(hidden: bool = False):
    """Every caption word, and every word of our and the reference script's templates, is one token.
    `hidden`: the training tokenizer, which also has the hidden words, as ids after the shipped
    tokenizer's last one (so dropping them at export leaves every other id as it was)."""
    template_words = " ".join(OBJECT_TEMPLATES + STYLE_TEMPLATES).replace("{}", " ").replace(",", " ").split()
    tokenizer = word_tokenizer(world.caption_words() + template_words)
    if hidden:
        tokenizer.add_tokens(world.hidden_words())
    return tokenizer


def make_vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(16, 32, 64),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=world.SIZE,
    )


def make_text_encoder(tokenizer) -> CLIPTextModel:
    return CLIPTextModel(text_config(tokenizer, 128, layers=3))


def make_unet() -> UNet2DConditionModel:
    """Three levels (16, 8, 4 latent px), cross-attention at the lower two and in the middle."""
    return UNet2DConditionModel(
        sample_size=world.SIZE // 4,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 128),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=128,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def scheduler_config() -> dict:
    return dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                prediction_type="epsilon", steps_offset=1)


# -- resumable state ---------------------------------------------------------------------------


class Stage:
    """One stage's saved state in the work folder: `done` marks it finished."""

    def __init__(self, work: Path, name: str, save_minutes: float):
        self.path = work / f"{name}.pt"
        self.done_path = work / f"{name}.done"
        self.interval = save_minutes * 60
        self.last = time.monotonic()

    @property
    def done(self) -> bool:
        return self.done_path.exists()

    def load(self) -> dict | None:
        return torch.load(self.path, weights_only=False) if self.path.exists() else None

    def maybe_save(self, make_state) -> None:
        if time.monotonic() - self.last >= self.interval:
            self.save(make_state())

    def save(self, state: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.path)
        self.last = time.monotonic()

    def finish(self, state: dict) -> None:
        self.save(state)
        self.done_path.touch()


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def optimizer_step(loss: torch.Tensor, opt, sched, clip: list | None = None) -> None:
    """Backward, an optional gradient-norm clip at 1, then one step of the optimizer and its schedule."""
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(clip, 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)


# -- stages ------------------------------------------------------------------------------------


def build_data(cfg: BuildConfig, work: Path) -> None:
    if (work / "scenes.json").exists():
        return
    found = world.scenes(cfg.seed, cfg.scenes)
    images = world.to_array([world.render(s) for s in tqdm(found, desc="data: rendering scenes")])
    np.save(work / "images.npy", images)
    (work / "scenes.json").write_text(json.dumps([s.as_dict() for s in found]))


def load_data(work: Path) -> tuple[np.ndarray, list[world.Scene]]:
    images = np.load(work / "images.npy", mmap_mode="r")
    return images, [world.Scene(**s) for s in json.loads((work / "scenes.json").read_text())]


def _pixels(images: np.ndarray, index: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images[np.sort(index)])).permute(0, 3, 1, 2).float() / 127.5 - 1


def train_vae(cfg: BuildConfig, work: Path) -> None:
    stage = Stage(work, "vae", cfg.save_minutes)
    if stage.done:
        return
    images, _ = load_data(work)
    torch.manual_seed(cfg.seed)
    vae = make_vae()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.vae_lr, total_steps=cfg.vae_steps, pct_start=0.05)
    step, rng = 0, np.random.default_rng(cfg.seed)
    if saved := stage.load():
        vae.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        step, rng = saved["step"], saved["rng"]
        _set_rng_state(saved["rng_state"])
    state = lambda: {"model": vae.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),  # noqa: E731
                     "step": step, "rng": rng, "rng_state": _rng_state()}
    bar = tqdm(total=cfg.vae_steps, initial=step, desc="vae")
    while step < cfg.vae_steps:
        x = _pixels(images, rng.choice(len(images), cfg.vae_batch, replace=False))
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        kl = posterior.kl().mean() / x[0].numel()
        loss = F.l1_loss(recon, x) + F.mse_loss(recon, x) + 1e-4 * kl
        optimizer_step(loss, opt, sched)
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        stage.maybe_save(state)
    stage.finish(state())
    add_to_report(work, vae_psnr_db=round(vae_psnr(vae.eval(), cfg.seed), 2))


def encode_latents(cfg: BuildConfig, work: Path) -> None:
    """Every picture's latent distribution (mean, std), and the scale that makes latents unit-variance."""
    out = work / "latents.pt"
    if out.exists():
        return
    images, _ = load_data(work)
    vae = make_vae()
    vae.load_state_dict(Stage(work, "vae", 0).load()["model"])
    vae.eval()
    means, stds = [], []
    with torch.no_grad():
        for start in tqdm(range(0, len(images), 256), desc="latents"):
            dist = vae.encode(_pixels(images, np.arange(start, min(start + 256, len(images))))).latent_dist
            means.append(dist.mean.half())
            stds.append(dist.std.half())
    mean, std = torch.cat(means), torch.cat(stds)
    scale = 1.0 / mean.float().std().item()
    torch.save({"mean": mean, "std": std, "scale": scale}, out)


class CaptionDrawer:
    """Fresh captions for a batch of scenes: a new wording every time a scene is drawn."""

    def __init__(self, scenes: list[world.Scene], tokenizer, seed: int):
        self.scenes, self.tokenizer = scenes, tokenizer
        self.rng = random.Random(seed)

    def __call__(self, index: np.ndarray, empty_share: float = 0.1) -> torch.Tensor:
        texts = ["" if self.rng.random() < empty_share else world.caption(self.scenes[i], self.rng, hidden=True)
                 for i in index]
        return self.tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


def train_unet(cfg: BuildConfig, work: Path) -> None:
    stage = Stage(work, "unet", cfg.save_minutes)
    if stage.done:
        return
    _, scenes = load_data(work)
    latents = torch.load(work / "latents.pt")
    tokenizer = make_tokenizer(hidden=True)
    torch.manual_seed(cfg.seed + 1)
    text_encoder, unet = make_text_encoder(tokenizer), make_unet()
    params = list(text_encoder.parameters()) + list(unet.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.unet_lr, total_steps=cfg.unet_steps, pct_start=0.03,
                                                final_div_factor=20)
    noise_scheduler = DDPMScheduler(**scheduler_config())
    step, rng, captions = 0, np.random.default_rng(cfg.seed + 1), CaptionDrawer(scenes, tokenizer, cfg.seed + 1)
    if saved := stage.load():
        text_encoder.load_state_dict(saved["text_encoder"])
        unet.load_state_dict(saved["unet"])
        for e, s in zip(ema, saved["ema"]):
            e.copy_(s)
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        step, rng, captions.rng = saved["step"], saved["rng"], saved["caption_rng"]
        _set_rng_state(saved["rng_state"])

    def state() -> dict:
        return {"text_encoder": text_encoder.state_dict(), "unet": unet.state_dict(), "ema": ema,
                "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step, "rng": rng,
                "caption_rng": captions.rng, "rng_state": _rng_state()}

    bar, mean_loss = tqdm(total=cfg.unet_steps, initial=step, desc="unet"), None
    while step < cfg.unet_steps:
        index = rng.choice(len(scenes), cfg.unet_batch, replace=False)
        idx = torch.from_numpy(index)
        x0 = (latents["mean"][idx].float() + latents["std"][idx].float() * torch.randn(cfg.unet_batch, 4, 16, 16))
        x0 = x0 * latents["scale"]
        noise = torch.randn_like(x0)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (cfg.unet_batch,))
        cond = text_encoder(captions(index)).last_hidden_state
        pred = unet(noise_scheduler.add_noise(x0, noise, t), t, cond).sample
        snr = compute_snr(noise_scheduler, t)
        weight = torch.clamp(snr, max=5.0) / snr
        loss = (F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3)) * weight).mean()
        optimizer_step(loss, opt, sched, clip=params)
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        step += 1
        mean_loss = loss.item() if mean_loss is None else 0.98 * mean_loss + 0.02 * loss.item()
        bar.update()
        bar.set_postfix(loss=f"{mean_loss:.4f}")
        stage.maybe_save(state)
    stage.finish(state())


def train_checker(cfg: BuildConfig, work: Path) -> None:
    """Trained on pictures the U-Net never saw (another seed), slightly blurred and noised now and
    then, since generated pictures are a little softer than rendered ones."""
    stage = Stage(work, "checker", cfg.save_minutes)
    if stage.done:
        return
    torch.manual_seed(cfg.seed + 2)
    model = attribute_checker.AttributeChecker()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=cfg.checker_steps, pct_start=0.05)
    step = 0
    if saved := stage.load():
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        step = saved["step"]
        _set_rng_state(saved["rng_state"])
    state = lambda: {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),  # noqa: E731
                     "step": step, "rng_state": _rng_state()}
    bar = tqdm(total=cfg.checker_steps, initial=step, desc="checker")
    while step < cfg.checker_steps:
        batch = world.scenes(cfg.seed + 7, cfg.checker_batch, start=step * cfg.checker_batch)
        x = attribute_checker.to_pixels(world.to_array([world.render(s) for s in batch]))
        x = soften(x)
        logits = model(x)
        loss = sum(
            F.cross_entropy(logits[name], torch.tensor([values.index(getattr(s, name)) for s in batch]))
            for name, values in attribute_checker.HEADS.items()
        )
        optimizer_step(loss, opt, sched)
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        stage.maybe_save(state)
    stage.finish(state())


def soften(x: torch.Tensor) -> torch.Tensor:
    """Half the batch blurred a little, and a little noise on all of it."""
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mix = (torch.rand(len(x), 1, 1, 1) < 0.5).float() * torch.rand(len(x), 1, 1, 1)
    return (x * (1 - mix) + blurred * mix + 0.03 * torch.randn_like(x)).clamp(-1, 1)


# -- export ------------------------------------------------------------------------------------


def vae_psnr(vae: AutoencoderKL, seed: int, count: int = 256) -> float:
    """Mean reconstruction PSNR (dB) of scenes the VAE never saw: how sharp pictures can come out."""
    x = _pixels(world.to_array([world.render(s) for s in world.scenes(seed + 9, count)]), np.arange(count))
    with torch.no_grad():
        recon = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    mse = ((recon - x) / 2).pow(2).mean(dim=(1, 2, 3))
    return float((-10 * torch.log10(mse)).mean())


def shipped_text_encoder(trained: CLIPTextModel, shipped_tokenizer) -> tuple[CLIPTextModel, dict[str, torch.Tensor]]:
    """The text encoder without its hidden words' rows, and those rows by word: the hidden ids are
    the last ones of the training tokenizer, so every other row keeps its id."""
    shipped = make_text_encoder(shipped_tokenizer)
    state = trained.state_dict()
    key = "embeddings.token_embedding.weight"
    table = state[key]
    state[key] = table[: len(shipped_tokenizer)].clone()
    shipped.load_state_dict(state)
    first_hidden = len(shipped_tokenizer)
    hidden = {word: table[first_hidden + i : first_hidden + i + 1].clone() for i, word in enumerate(world.hidden_words())}
    return shipped, hidden


def export(cfg: BuildConfig, work: Path, out: Path) -> None:
    tokenizer, training_tokenizer = make_tokenizer(), make_tokenizer(hidden=True)
    vae = make_vae()
    vae.load_state_dict(Stage(work, "vae", 0).load()["model"])
    vae.register_to_config(scaling_factor=torch.load(work / "latents.pt")["scale"])
    saved = Stage(work, "unet", 0).load()
    trained_text_encoder, unet = make_text_encoder(training_tokenizer), make_unet()
    params = list(trained_text_encoder.parameters()) + list(unet.parameters())
    with torch.no_grad():
        for p, e in zip(params, saved["ema"]):
            p.copy_(e)
    text_encoder, hidden = shipped_text_encoder(trained_text_encoder, tokenizer)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(**scheduler_config()),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out)
    save_file(hidden, str(out / HIDDEN_FILE))
    checker = attribute_checker.AttributeChecker()
    checker.load_state_dict(Stage(work, "checker", 0).load()["model"])
    attribute_checker.save(checker, out)
    vocab = world.vocabulary() | {"build": asdict(cfg) | read_report(work)}
    (out / "world.json").write_text(json.dumps(vocab, indent=2) + "\n")
    for path in out.rglob("*"):
        if path.is_file():
            path.chmod(0o644)


def read_report(work: Path) -> dict:
    """What the build measured of itself: seconds per stage (over all its runs) and the VAE's PSNR."""
    path = work / "report.json"
    return json.loads(path.read_text()) if path.exists() else {"seconds": {}}


def add_to_report(work: Path, **values) -> None:
    report = read_report(work)
    for name, value in values.items():
        if name == "seconds":
            for stage, seconds in value.items():
                report["seconds"][stage] = round(report["seconds"].get(stage, 0) + seconds, 1)
        else:
            report[name] = value
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")


STAGES = {"data": build_data, "vae": train_vae, "latents": encode_latents, "unet": train_unet, "checker": train_checker}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m textinv_core.toyworld.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("toyworld-work"), help="resumable state (not committed)")
    parser.add_argument("--out", type=Path, default=MODEL_DIR, help="where the pipeline folder goes")
    parser.add_argument("--stage", choices=[*STAGES, "export", "all"], default="all")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    for name, value in asdict(BuildConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = BuildConfig(**{name: getattr(args, name) for name in asdict(BuildConfig())})
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    for name, run in STAGES.items():
        if args.stage in (name, "all"):
            t0 = time.time()
            run(cfg, args.work)
            add_to_report(args.work, seconds={name: time.time() - t0})
            print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    if args.stage in ("export", "all"):
        export(cfg, args.work, args.out)
        print(f"exported to {args.out} ({time.time() - started:.0f} s in this run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
