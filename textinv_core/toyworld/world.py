"""The toy world: a seeded generator of small captioned scenes that `builtin:toyworld` learns to draw.

A scene is one object (a kind, in a colour, at a size and place) in front of a background, drawn in
a style. Captions name those attributes in plain words ("a red robot on the beach, dotted style").
Some things in the world have no word: two object kinds (a rocket and a duck) are only ever called
"toy", one colour (teal) is never named, and one style (blocky pixels) is captioned as if the
picture had no style. No prompt of plain words can ask for them; that is what a learned concept is
for, just as a real model can draw a particular thing that no word in its vocabulary names.

While the model trains, though, each of them has a hidden word of its own, used in most of their
captions (`HIDDEN_SHARE`): so the model learns to draw a rocket *for some input*, as a real model
can draw a thing its vocabulary has no word for, and the hidden word's vector is the point of the
embedding space that draws it. The shipped tokenizer cannot produce those words, and their
vectors are kept apart, for measuring only (`build.export`).

Everything is drawn with Pillow on a 2x canvas and downsampled, from one `random.Random` per scene,
so scene `i` of seed `s` is the same picture on every machine with the same Pillow.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

SIZE = 64  # the model's image size
_SS = 2  # supersampling: drawn at 128 px, then downsampled with antialiasing
_W = SIZE * _SS

OBJECTS = ("robot", "mug", "ball", "house", "car", "fish")
HIDDEN_OBJECTS = ("rocket", "duck")  # captioned as the generic word below, never by name
GENERIC_OBJECT = "toy"
COLORS = {
    "red": (210, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (240, 210, 40),
    "green": (60, 170, 60),
    "blue": (40, 90, 210),
    "purple": (130, 60, 180),
    "pink": (240, 130, 180),
    "brown": (130, 80, 40),
    "white": (245, 245, 245),
    "black": (30, 30, 30),
}
HIDDEN_COLORS = {"teal": (0, 150, 150)}  # never named in a caption
BACKGROUNDS = {  # word -> the phrase captions use
    "beach": "on the beach",
    "forest": "in the forest",
    "snow": "in the snow",
    "night": "at night",
    "city": "in the city",
    "room": "in a room",
}
STYLES = ("dotted", "striped", "sketch")
HIDDEN_STYLES = ("blocky",)  # captioned like a plain picture
PLAIN = "plain"  # the style of a picture that has none
HIDDEN_SHARE = 0.7  # how often a training caption names an unnamed thing by its hidden word

# The reference training script's own templates, so its prompts are made of words the model knows
# (CLIP splits "close-up" at the hyphen).
_REFERENCE_WORDS = (
    "a photo of the rendering cropped clean dirty dark my cool close up bright good one rendition nice "
    "small weird large painting in style picture"
)


@dataclass(frozen=True)
class Scene:
    kind: str  # one of OBJECTS or HIDDEN_OBJECTS
    color: str  # one of COLORS or HIDDEN_COLORS
    background: str  # one of BACKGROUNDS
    style: str  # PLAIN, one of STYLES or HIDDEN_STYLES
    size: float  # object height as a share of the picture
    x: float  # object centre, shares of the picture
    y: float
    mirrored: bool
    seed: int  # for the details (stars, trees, colour jitter)

    def as_dict(self) -> dict:
        return asdict(self)


# -- vocabulary -------------------------------------------------------------------------------


def all_kinds() -> tuple[str, ...]:
    return OBJECTS + HIDDEN_OBJECTS


def all_colors() -> tuple[str, ...]:
    return tuple(COLORS) + tuple(HIDDEN_COLORS)


def all_styles() -> tuple[str, ...]:
    return (PLAIN,) + STYLES + HIDDEN_STYLES


def vocabulary() -> dict:
    """What `world.json` holds: the words captions use, and what exists without a word."""
    return {
        "size": SIZE,
        "objects": list(OBJECTS) + [GENERIC_OBJECT],
        "colors": list(COLORS),
        "backgrounds": list(BACKGROUNDS),
        "background_phrases": dict(BACKGROUNDS),
        "styles": list(STYLES),
        "style_phrase": "{} style",
        "unnamed": {
            "objects": list(HIDDEN_OBJECTS),
            "colors": list(HIDDEN_COLORS),
            "styles": list(HIDDEN_STYLES),
            "generic_object_word": GENERIC_OBJECT,
            "hidden_share": HIDDEN_SHARE,
        },
        "example_prompts": [
            "a red robot on the beach",
            "a yellow mug in the snow",
            "a blue car at night, dotted style",
            "a green fish in the city, striped style",
            "a pink house in the forest, sketch style",
        ],
    }


def hidden_words() -> list[str]:
    """The words only the model's training knew: one per unnamed thing."""
    return [*HIDDEN_OBJECTS, *HIDDEN_COLORS, *HIDDEN_STYLES]


def caption_words() -> list[str]:
    """Every plain word a caption or a training template can use: each must be one token of the
    shipped tokenizer."""
    phrases = " ".join(BACKGROUNDS.values())
    words = [*OBJECTS, GENERIC_OBJECT, *COLORS, *BACKGROUNDS, *STYLES, *phrases.split(), *_REFERENCE_WORDS.split()]
    return sorted(set(words))


# -- sampling scenes and captions -------------------------------------------------------------


def sample_scene(rng: random.Random, **fixed) -> Scene:
    """A random scene; any attribute given in `fixed` is kept as given."""
    choose = {
        "kind": lambda: rng.choice(HIDDEN_OBJECTS) if rng.random() < 0.2 else rng.choice(OBJECTS),
        "color": lambda: "teal" if rng.random() < 0.09 else rng.choice(list(COLORS)),
        "background": lambda: rng.choice(list(BACKGROUNDS)),
        "style": lambda: rng.choices(all_styles(), weights=(44, 14, 14, 14, 14))[0],
        "size": lambda: rng.uniform(0.45, 0.75),
        "x": lambda: rng.uniform(0.38, 0.62),
        "y": lambda: rng.uniform(0.42, 0.6),
        "mirrored": lambda: rng.random() < 0.5,
        "seed": lambda: rng.randrange(2**31),
    }
    values = {name: fixed[name] if name in fixed else pick() for name, pick in choose.items()}
    return Scene(**values)


def _named(word: str, named: tuple, rng: random.Random, hidden: bool) -> bool:
    """Whether a caption says `word`: always if it is a plain word, else (a hidden one) only in
    training captions, and then in `HIDDEN_SHARE` of them."""
    return word in named or (hidden and rng.random() < HIDDEN_SHARE)


def describe(scene: Scene, rng: random.Random, drop: float = 0.15, hidden: bool = False) -> str:
    """The object and background in words, as a caption would say them; a named colour or the
    background phrase is left out now and then (`drop`), so shorter prompts also work. `hidden`:
    a training caption, which may name an unnamed thing by its hidden word."""
    words = []
    if _named(scene.color, tuple(COLORS), rng, hidden) and rng.random() >= drop:
        words.append(scene.color)
    words.append(scene.kind if _named(scene.kind, OBJECTS, rng, hidden) else GENERIC_OBJECT)
    if rng.random() >= drop:
        words.append(BACKGROUNDS[scene.background])
    return " ".join(words)


_WRAPS = ("a {}", "a photo of a {}", "a picture of a {}", "a rendering of a {}", "a good photo of the {}",
          "a close-up photo of a {}", "a cropped photo of the {}", "a photo of my {}", "the {}",
          "a small {}", "a large {}", "a bright photo of a {}", "a dark photo of the {}")


def caption(scene: Scene, rng: random.Random, hidden: bool = False) -> str:
    """One caption of many for a scene: the same scene is described in several wordings.
    `hidden`: a training caption, which may name an unnamed thing by its hidden word."""
    text = rng.choice(_WRAPS).format(describe(scene, rng, hidden=hidden))
    if scene.style == PLAIN or not _named(scene.style, STYLES, rng, hidden):
        return text
    form = rng.random()
    if form < 0.6:
        return f"{text}, {scene.style} style"
    if form < 0.85:
        return f"{text} in {scene.style} style"
    return f"a picture in the style of {scene.style}" if form < 0.93 else f"a painting in {scene.style} style"


# -- drawing ----------------------------------------------------------------------------------


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, round(c * factor))) for c in rgb)


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int = 12) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def _background(d: ImageDraw.ImageDraw, name: str, rng: random.Random) -> None:
    w = _W
    if name == "beach":
        d.rectangle([0, 0, w, w * 0.55], fill=_jitter((135, 195, 235), rng))
        d.rectangle([0, w * 0.55, w, w * 0.64], fill=_jitter((40, 110, 180), rng))
        d.rectangle([0, w * 0.64, w, w], fill=_jitter((230, 205, 140), rng))
        sx, sy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.06, 0.2) * w
        d.ellipse([sx - 9, sy - 9, sx + 9, sy + 9], fill=(255, 230, 90))
    elif name == "forest":
        d.rectangle([0, 0, w, w], fill=_jitter((170, 205, 165), rng))
        for _ in range(7):
            tx, base = rng.uniform(-0.05, 1.05) * w, rng.uniform(0.55, 0.7) * w
            d.rectangle([tx - 3, base - 4, tx + 3, base + 12], fill=(90, 60, 30))
            d.polygon([(tx - 18, base), (tx + 18, base), (tx, base - rng.uniform(45, 70))], fill=_jitter((30, 100, 40), rng))
        d.rectangle([0, w * 0.7, w, w], fill=_jitter((70, 140, 60), rng))
    elif name == "snow":
        d.rectangle([0, 0, w, w * 0.6], fill=_jitter((200, 215, 232), rng))
        d.rectangle([0, w * 0.6, w, w], fill=(246, 248, 252))
        for _ in range(25):
            fx, fy = rng.uniform(0, w), rng.uniform(0, w * 0.6)
            d.ellipse([fx - 1.5, fy - 1.5, fx + 1.5, fy + 1.5], fill=(255, 255, 255))
    elif name == "night":
        d.rectangle([0, 0, w, w], fill=_jitter((18, 22, 60), rng, 6))
        for _ in range(22):
            fx, fy = rng.uniform(0, w), rng.uniform(0, w * 0.7)
            d.ellipse([fx - 1.2, fy - 1.2, fx + 1.2, fy + 1.2], fill=(250, 250, 210))
        mx, my = rng.uniform(0.1, 0.9) * w, rng.uniform(0.08, 0.22) * w
        d.ellipse([mx - 10, my - 10, mx + 10, my + 10], fill=(240, 236, 200))
        d.rectangle([0, w * 0.75, w, w], fill=(32, 34, 50))
    elif name == "city":
        d.rectangle([0, 0, w, w], fill=_jitter((175, 180, 192), rng))
        x = -rng.uniform(0, 20)
        while x < w:
            bw, bh = rng.uniform(16, 30), rng.uniform(0.3, 0.65) * w
            tone = rng.randint(80, 120)
            d.rectangle([x, w * 0.78 - bh, x + bw, w * 0.78], fill=(tone, tone, tone + 8))
            for wy in np.arange(w * 0.78 - bh + 5, w * 0.78 - 6, 9):
                for wx in np.arange(x + 4, x + bw - 4, 8):
                    d.rectangle([wx, wy, wx + 3, wy + 4], fill=(235, 215, 120))
            x += bw + rng.uniform(1, 5)
        d.rectangle([0, w * 0.78, w, w], fill=(70, 70, 75))
    elif name == "room":
        d.rectangle([0, 0, w, w * 0.68], fill=_jitter((228, 212, 180), rng))
        d.rectangle([0, w * 0.68, w, w], fill=_jitter((150, 100, 60), rng))
        for fx in np.arange(rng.uniform(0, 20), w, 22):
            d.line([(fx, w * 0.68), (fx - 12, w)], fill=(120, 78, 45), width=2)
        wx = rng.uniform(0.1, 0.6) * w
        d.rectangle([wx, w * 0.12, wx + 34, w * 0.4], fill=(160, 200, 235), outline=(250, 250, 250), width=3)
    else:
        raise ValueError(f"unknown background {name!r}")


def _object(d: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, s: float, c: tuple[int, int, int]) -> None:
    """One object of height `s` centred at (cx, cy) in colour `c`, with dark outlines for shape."""
    dark, light = _shade(c, 0.55), _shade(c, 1.25)
    ow = max(2, round(s * 0.03))
    box = lambda x0, y0, x1, y1: [cx + x0 * s, cy + y0 * s, cx + x1 * s, cy + y1 * s]  # noqa: E731
    pts = lambda *xy: [(cx + x * s, cy + y * s) for x, y in xy]  # noqa: E731
    if kind == "robot":
        d.line(pts((0, -0.36), (0, -0.48)), fill=dark, width=ow)
        d.ellipse(box(-0.05, -0.53, 0.05, -0.43), fill=(230, 50, 50))
        d.rectangle(box(-0.12, 0.28, -0.04, 0.5), fill=(90, 90, 95))
        d.rectangle(box(0.04, 0.28, 0.12, 0.5), fill=(90, 90, 95))
        d.line(pts((-0.22, -0.05), (-0.36, 0.18)), fill=dark, width=2 * ow)
        d.line(pts((0.22, -0.05), (0.36, 0.18)), fill=dark, width=2 * ow)
        d.rectangle(box(-0.22, -0.12, 0.22, 0.3), fill=c, outline=dark, width=ow)
        d.rectangle(box(-0.18, -0.38, 0.18, -0.12), fill=c, outline=dark, width=ow)
        for ex in (-0.08, 0.08):
            d.ellipse(box(ex - 0.04, -0.3, ex + 0.04, -0.22), fill=(255, 255, 255), outline=dark)
    elif kind == "mug":
        d.ellipse(box(0.08, -0.2, 0.42, 0.18), outline=dark, width=3 * ow)
        d.rounded_rectangle(box(-0.3, -0.32, 0.2, 0.38), radius=s * 0.08, fill=c, outline=dark, width=ow)
        d.ellipse(box(-0.3, -0.38, 0.2, -0.26), fill=light, outline=dark, width=ow)
    elif kind == "ball":
        d.ellipse(box(-0.38, -0.38, 0.38, 0.38), fill=c, outline=dark, width=ow)
        d.arc(box(-0.3, -0.3, 0.3, 0.3), 200, 340, fill=dark, width=ow)
        d.ellipse(box(-0.22, -0.25, -0.08, -0.13), fill=(255, 255, 255))
    elif kind == "house":
        d.rectangle(box(-0.32, -0.08, 0.32, 0.42), fill=c, outline=dark, width=ow)
        d.polygon(pts((-0.42, -0.06), (0.42, -0.06), (0, -0.46)), fill=dark)
        d.rectangle(box(-0.08, 0.14, 0.08, 0.42), fill=_shade(c, 0.35))
        d.rectangle(box(0.14, 0.02, 0.26, 0.14), fill=(250, 250, 230), outline=dark)
    elif kind == "car":
        d.polygon(pts((-0.26, -0.04), (-0.16, -0.28), (0.18, -0.28), (0.3, -0.04)), fill=c, outline=dark)
        d.polygon(pts((-0.18, -0.06), (-0.12, -0.22), (0.14, -0.22), (0.22, -0.06)), fill=(190, 225, 245))
        d.rounded_rectangle(box(-0.48, -0.06, 0.48, 0.2), radius=s * 0.06, fill=c, outline=dark, width=ow)
        for wx in (-0.28, 0.28):
            d.ellipse(box(wx - 0.12, 0.1, wx + 0.12, 0.34), fill=(25, 25, 25))
            d.ellipse(box(wx - 0.05, 0.17, wx + 0.05, 0.27), fill=(170, 170, 170))
    elif kind == "fish":
        d.polygon(pts((0.16, 0), (0.46, -0.24), (0.46, 0.24)), fill=dark)
        d.ellipse(box(-0.42, -0.2, 0.26, 0.2), fill=c, outline=dark, width=ow)
        d.ellipse(box(-0.3, -0.08, -0.2, 0.02), fill=(255, 255, 255))
        d.ellipse(box(-0.27, -0.05, -0.23, -0.01), fill=(0, 0, 0))
    elif kind == "rocket":
        d.polygon(pts((-0.14, 0.2), (-0.3, 0.44), (-0.14, 0.38)), fill=dark)
        d.polygon(pts((0.14, 0.2), (0.3, 0.44), (0.14, 0.38)), fill=dark)
        d.rounded_rectangle(box(-0.14, -0.22, 0.14, 0.4), radius=s * 0.05, fill=c, outline=dark, width=ow)
        d.polygon(pts((-0.14, -0.2), (0.14, -0.2), (0, -0.5)), fill=dark)
        d.ellipse(box(-0.08, -0.1, 0.08, 0.06), fill=(190, 225, 245), outline=dark, width=ow)
        d.polygon(pts((-0.08, 0.4), (0.08, 0.4), (0, 0.5)), fill=(250, 160, 40))
    elif kind == "duck":
        d.ellipse(box(-0.4, -0.06, 0.3, 0.34), fill=c, outline=dark, width=ow)
        d.ellipse(box(0.04, -0.42, 0.38, -0.08), fill=c, outline=dark, width=ow)
        d.polygon(pts((0.34, -0.28), (0.5, -0.22), (0.34, -0.16)), fill=(250, 160, 40))
        d.ellipse(box(0.2, -0.3, 0.26, -0.24), fill=(0, 0, 0))
        d.arc(box(-0.26, 0.0, 0.12, 0.24), 20, 160, fill=dark, width=ow)
    else:
        raise ValueError(f"unknown object kind {kind!r}")


def _style(img: Image.Image, style: str) -> Image.Image:
    """A whole-picture style, on the 2x canvas: each keeps the scene's colours readable."""
    if style == PLAIN:
        return img
    if style == "dotted":  # colour dots on white paper, 4 px apart at 64 px
        small = img.resize((_W // 8, _W // 8), Image.BILINEAR)
        out = Image.new("RGB", img.size, (250, 250, 245))
        d = ImageDraw.Draw(out)
        for j in range(small.height):
            for i in range(small.width):
                cx, cy = i * 8 + 4, j * 8 + 4
                d.ellipse([cx - 3.4, cy - 3.4, cx + 3.4, cy + 3.4], fill=small.getpixel((i, j)))
        return out
    if style == "striped":  # diagonal pale stripes over the scene
        arr = np.asarray(img).astype(np.float32)
        yy, xx = np.mgrid[0 : _W, 0 : _W]
        band = ((xx + yy) % 14) < 5
        arr[band] = arr[band] * 0.35 + 255 * 0.65
        return Image.fromarray(arr.astype(np.uint8))
    if style == "sketch":  # dark pen lines on a pale wash of the colours
        edges = img.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 24 else 0)
        edges = edges.crop((2, 2, _W - 2, _W - 2)).filter(ImageFilter.MaxFilter(3))
        edges = ImageOps.expand(edges, 2, fill=0)  # no frame line where the picture ends
        wash = Image.blend(img, Image.new("RGB", img.size, (250, 248, 240)), 0.55)
        return Image.composite(Image.new("RGB", img.size, (40, 40, 50)), wash, edges)
    if style == "blocky":  # big square pixels, 4 px at 64 px, few colour levels
        small = img.resize((_W // 8, _W // 8), Image.BOX).quantize(colors=12).convert("RGB")
        return small.resize(img.size, Image.NEAREST)
    raise ValueError(f"unknown style {style!r}")


def render(scene: Scene, size: int = SIZE) -> Image.Image:
    """The scene as a `size` x `size` RGB picture (up to 128 px, the drawing canvas)."""
    rng = random.Random(scene.seed)
    img = Image.new("RGB", (_W, _W))
    d = ImageDraw.Draw(img)
    _background(d, scene.background, rng)
    rgb = _jitter({**COLORS, **HIDDEN_COLORS}[scene.color], rng)
    _object(d, scene.kind, scene.x * _W, scene.y * _W, scene.size * _W, rgb)
    if scene.mirrored:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = _style(img, scene.style)
    return img if size == _W else img.resize((size, size), Image.LANCZOS)


def scenes(seed: int, count: int, start: int = 0, **fixed) -> list[Scene]:
    """Scenes `start` .. `start + count` of the world with `seed`: each from its own generator, so
    any slice is the same whichever way it is cut."""
    return [sample_scene(random.Random(seed * 1_000_003 + i), **fixed) for i in range(start, start + count)]


def to_array(images: list[Image.Image]) -> np.ndarray:
    """Pictures as one uint8 array [N, SIZE, SIZE, 3]."""
    return np.stack([np.asarray(img, dtype=np.uint8) for img in images])
