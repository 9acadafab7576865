#!/usr/bin/env python3
"""Generate the example concept image sets shipped with textinv.

Everything here is drawn procedurally with Pillow (no downloaded images) and
is fully deterministic: every random choice comes from a seeded
``random.Random``, so running

    python examples/make_examples.py

regenerates byte-identical PNG and JSON files (for a given Pillow/zlib build).

Sets written next to this script (or under ``--out DIR``):

* ``red-robot/``  5 views of one toy robot (object concept)
* ``blue-mug/``   4 views of one blue mug with a white star logo (object concept)
* ``dot-style/``  5 different subjects in one warm pointillist style (style concept)

Each set also gets a ``concept.json`` describing the token to learn.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps

SIZE = 256          # final image size
SS = 2              # supersampling factor for anti-aliased drawing
W = SIZE * SS       # working canvas size
N_COLORS = 160      # palette size for the object sets (keeps PNGs small)


# ---------------------------------------------------------------------------
# generic helpers
# ---------------------------------------------------------------------------

def lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def mix(c1, c2, t: float):
    return tuple(int(round(lerp(a, b, t))) for a, b in zip(c1, c2))


def scale_rgb(c, f: float):
    return tuple(max(0, min(255, int(round(v * f)))) for v in c)


def vgradient(size, top, bottom, y0: int = 0, y1: int | None = None) -> Image.Image:
    """Vertical gradient image of ``size`` going top->bottom between y0..y1."""
    w, h = size
    y1 = h if y1 is None else y1
    img = Image.new("RGB", size, top)
    d = ImageDraw.Draw(img)
    for y in range(h):
        t = 0.0 if y <= y0 else 1.0 if y >= y1 else (y - y0) / max(1, y1 - y0)
        d.line([(0, y), (w, y)], fill=mix(top, bottom, t))
    return img


def radial_backdrop(size, inner, outer) -> Image.Image:
    """Soft radial gradient (bright centre) using Pillow's built-in gradient."""
    g = Image.radial_gradient("L").resize(size, Image.BILINEAR)
    g = g.point(lambda v: (v * v) // 255)   # widen the bright centre
    return ImageOps.colorize(g, black=inner, white=outer)


def finish(img: Image.Image, colors: int = N_COLORS) -> Image.Image:
    """Downsample the supersampled canvas and reduce to a compact palette."""
    img = img.convert("RGB")
    if img.size != (SIZE, SIZE):
        img = img.resize((SIZE, SIZE), Image.LANCZOS)
    return img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                        dither=Image.Dither.NONE)


def save_png(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=True)


def write_concept(folder: Path, token: str, init_word: str, concept: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"token": token, "init_word": init_word, "concept": concept}
    (folder / "concept.json").write_text(json.dumps(data, indent=2) + "\n",
                                         encoding="utf-8")


def ground_shadow(canvas: Image.Image, cx: float, cy: float, rx: float, ry: float,
                  strength: int = 110) -> None:
    """Blurred elliptical contact shadow composited onto ``canvas`` in place."""
    mask = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(mask).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=strength)
    mask = mask.filter(ImageFilter.GaussianBlur(ry * 0.6 + 2))
    dark = Image.new("RGB", canvas.size, (25, 20, 25))
    canvas.paste(dark, (0, 0), mask)


def apply_lighting(layer: Image.Image, brightness: float, tint, light_from_left: bool,
                   falloff: float) -> Image.Image:
    """Mild lighting variation on an RGBA sprite: brightness, colour tint and a
    left/right directional falloff. Alpha is preserved."""
    rgb = layer.convert("RGB")
    alpha = layer.getchannel("A")
    rgb = ImageEnhance.Brightness(rgb).enhance(brightness)
    tint_img = Image.new("RGB", rgb.size, tint)
    rgb = ImageChops.multiply(rgb, tint_img)
    w, h = rgb.size
    grad = Image.linear_gradient("L").rotate(90 if light_from_left else -90)
    grad = grad.resize((w, h), Image.BILINEAR)
    # grad: 255 on the lit side -> 0 on the far side; map to 255..(255-falloff)
    lo = int(255 - falloff)
    grad = grad.point(lambda v: lo + (255 - lo) * v // 255)
    rgb = ImageChops.multiply(rgb, Image.merge("RGB", (grad, grad, grad)))
    out = rgb.convert("RGBA")
    out.putalpha(alpha)
    return out


def place_sprite(canvas: Image.Image, sprite: Image.Image, height: float,
                 foot_x: float, foot_y: float, angle: float = 0.0,
                 mirror: bool = False) -> None:
    """Scale ``sprite`` to ``height`` px tall and paste it so that the bottom
    centre of the sprite lands on (foot_x, foot_y)."""
    if mirror:
        sprite = ImageOps.mirror(sprite)
    f = height / sprite.height
    sw, sh = max(1, int(round(sprite.width * f))), max(1, int(round(height)))
    s = sprite.resize((sw, sh), Image.LANCZOS)
    if angle:
        # rotate around the feet so the object still stands on the ground
        pad = Image.new("RGBA", (sw, sh * 2), (0, 0, 0, 0))
        pad.paste(s, (0, 0))
        pad = pad.rotate(angle, resample=Image.BICUBIC, center=(sw / 2, sh),
                         expand=False)
        s = pad
    x = int(round(foot_x - sw / 2))
    y = int(round(foot_y - sh))
    canvas.alpha_composite(s, (x, y)) if canvas.mode == "RGBA" else \
        canvas.paste(s, (x, y), s)


# ---------------------------------------------------------------------------
# backgrounds (all drawn at W x W)
# ---------------------------------------------------------------------------

def bg_table_edge(rng: random.Random) -> tuple[Image.Image, int]:
    """Wall + wooden table seen from the front. Returns (image, table-top y)."""
    img = vgradient((W, W), (236, 224, 200), (206, 190, 166))
    d = ImageDraw.Draw(img)
    top, edge, front = 300, 420, 452
    # table top with a slight perspective (wider at the front)
    d.polygon([(-40, top), (W + 40, top), (W + 120, edge), (-120, edge)],
              fill=(164, 112, 68))
    for i in range(14):  # wood grain
        y = rng.randint(top + 6, edge - 6)
        col = scale_rgb((164, 112, 68), rng.uniform(0.82, 0.93))
        x0 = rng.randint(-40, W // 2)
        d.line([(x0, y), (x0 + rng.randint(150, 380), y + rng.randint(-3, 3))],
               fill=col, width=rng.randint(2, 4))
    d.rectangle([0, edge, W, front], fill=(118, 76, 44))        # front edge
    d.line([(0, edge), (W, edge)], fill=(196, 146, 98), width=3)  # highlight
    img.paste(vgradient((W, W - front), (70, 56, 50), (96, 82, 74)), (0, front))
    # a picture frame on the wall for context
    d.rectangle([360, 60, 470, 170], fill=(120, 86, 60))
    d.rectangle([372, 72, 458, 158], fill=(178, 204, 214))
    d.polygon([(372, 158), (405, 110), (430, 140), (445, 122), (458, 158)],
              fill=(110, 150, 110))
    return img, top + 70


def bg_sky(rng: random.Random) -> tuple[Image.Image, int]:
    """Gradient sky, sun, clouds and a grassy hill. Returns (image, ground y)."""
    img = vgradient((W, W), (92, 150, 222), (196, 226, 246), 0, 380)
    d = ImageDraw.Draw(img)
    d.ellipse([400, 40, 470, 110], fill=(255, 236, 150))
    for _ in range(3):
        cx, cy = rng.randint(40, 470), rng.randint(50, 200)
        for _ in range(5):
            r = rng.randint(18, 34)
            ox, oy = rng.randint(-50, 50), rng.randint(-10, 10)
            d.ellipse([cx + ox - r * 1.4, cy + oy - r, cx + ox + r * 1.4, cy + oy + r],
                      fill=(250, 252, 255))
    d.ellipse([-300, 360, W + 300, 1100], fill=(104, 170, 84))
    d.ellipse([-200, 395, W + 200, 1100], fill=(92, 156, 74))
    for _ in range(40):  # grass tufts
        x, y = rng.randint(0, W), rng.randint(410, W)
        d.line([(x, y), (x + rng.randint(-4, 4), y - rng.randint(6, 12))],
               fill=(70, 128, 56), width=2)
    return img, 440


def bg_checker(rng: random.Random) -> tuple[Image.Image, int]:
    """Perspective checkerboard floor under a plain wall. Returns (image, y)."""
    horizon = 250
    img = vgradient((W, W), (214, 208, 226), (186, 180, 204), 0, horizon)
    d = ImageDraw.Draw(img)
    f, cam_h, cx = 260.0, 1.6, W / 2 + rng.randint(-30, 30)
    zs = [1.0 + 0.55 * i for i in range(30)]

    def proj(x, z):
        return cx + x * f / z, horizon + cam_h * f / z

    # floor base so the far distance is filled
    d.rectangle([0, horizon, W, W], fill=(150, 150, 160))
    for j in range(len(zs) - 1, 0, -1):
        z0, z1 = zs[j - 1], zs[j]
        for i in range(-16, 16):
            x0, x1 = i * 0.55, (i + 1) * 0.55
            col = (238, 236, 230) if (i + j) % 2 else (52, 58, 74)
            pts = [proj(x0, z0), proj(x1, z0), proj(x1, z1), proj(x0, z1)]
            d.polygon(pts, fill=col)
    d.rectangle([0, horizon - 8, W, horizon], fill=(160, 150, 172))  # skirting
    return img, 420


def bg_studio(rng: random.Random) -> tuple[Image.Image, int]:
    """Seamless photo-studio backdrop with a soft vignette."""
    inner = (60 + rng.randint(0, 10), 110, 118)
    img = radial_backdrop((W, W), (206, 232, 230), inner)
    floor = Image.new("L", (W, W), 0)
    ImageDraw.Draw(floor).ellipse([-200, 380, W + 200, 900], fill=45)
    floor = floor.filter(ImageFilter.GaussianBlur(40))
    img.paste(Image.new("RGB", (W, W), (40, 70, 80)), (0, 0), floor)
    return img, 470


def bg_wallpaper(rng: random.Random) -> tuple[Image.Image, int]:
    """Striped wallpaper and wooden floorboards."""
    img = Image.new("RGB", (W, W), (242, 226, 178))
    d = ImageDraw.Draw(img)
    floor_y = 360
    for x in range(0, W, 48):
        d.rectangle([x, 0, x + 20, floor_y], fill=(226, 200, 142))
        d.line([(x + 34, 0), (x + 34, floor_y)], fill=(204, 120, 96), width=3)
    d.rectangle([0, floor_y - 18, W, floor_y], fill=(250, 246, 236))   # skirting
    d.line([(0, floor_y - 18), (W, floor_y - 18)], fill=(200, 190, 170), width=3)
    boards = [(150, 104, 70), (140, 96, 62), (160, 112, 76)]
    y, k = floor_y, 0
    while y < W:
        h = 18 + k * 6
        d.rectangle([0, y, W, y + h], fill=boards[k % 3])
        off = rng.randint(0, 200)
        for x in range(off - 400, W, 260 + k * 20):
            d.line([(x, y), (x, y + h)], fill=(96, 62, 40), width=2)
        d.line([(0, y), (W, y)], fill=(100, 66, 42), width=2)
        y += h
        k += 1
    return img, 440


def bg_counter(rng: random.Random) -> tuple[Image.Image, int]:
    """Kitchen counter with a tiled backsplash."""
    img = Image.new("RGB", (W, W), (222, 232, 236))
    d = ImageDraw.Draw(img)
    top = 330
    tile = 64
    for yy in range(0, top, tile):
        for xx in range(-(yy // tile % 2) * tile // 2, W, tile):
            shade = rng.choice([(232, 240, 242), (220, 230, 234), (228, 236, 240)])
            d.rectangle([xx + 2, yy + 2, xx + tile - 2, yy + tile - 2], fill=shade)
    d.rectangle([0, top, W, W], fill=(88, 90, 98))             # counter top
    for _ in range(120):                                      # speckled granite
        x, y = rng.randint(0, W), rng.randint(top + 4, W)
        r = rng.randint(1, 3)
        d.ellipse([x - r, y - r, x + r, y + r],
                  fill=rng.choice([(120, 122, 130), (66, 68, 76), (150, 150, 156)]))
    d.line([(0, top), (W, top)], fill=(150, 154, 162), width=4)
    return img, 430


def bg_gingham(rng: random.Random) -> tuple[Image.Image, int]:
    """Red/white gingham tablecloth seen from above at an angle."""
    img = vgradient((W, W), (250, 240, 232), (236, 222, 214))
    step = 44
    off = rng.randint(0, step)
    angle = rng.uniform(8, 16)
    big = 2 * W   # draw oversized, rotate, then crop so no corner is left bare
    for vertical in (True, False):   # separate layers so the crossings darken
        over = Image.new("RGBA", (big, big), (0, 0, 0, 0))
        d = ImageDraw.Draw(over)
        for k in range(0, big, step * 2):
            box = ([k + off, 0, k + off + step, big] if vertical
                   else [0, k + off, big, k + off + step])
            d.rectangle(box, fill=(200, 40, 50, 100))
        over = over.rotate(angle, resample=Image.BICUBIC)
        over = over.crop((W // 2, W // 2, W // 2 + W, W // 2 + W))
        img.paste(over, (0, 0), over)
    return img, 430


def bg_shelf(rng: random.Random) -> tuple[Image.Image, int]:
    """Warm wall with a wooden shelf and a potted plant."""
    img = vgradient((W, W), (246, 214, 170), (214, 170, 130))
    d = ImageDraw.Draw(img)
    shelf = 400
    d.rectangle([0, shelf, W, shelf + 26], fill=(120, 78, 48))
    d.rectangle([0, shelf, W, shelf + 6], fill=(170, 118, 78))
    img.paste(vgradient((W, W - shelf - 26), (150, 110, 80), (200, 150, 110)),
              (0, shelf + 26))
    # plant on the left of the shelf
    px = 70 + rng.randint(0, 20)
    d.polygon([(px - 36, shelf - 60), (px + 36, shelf - 60), (px + 26, shelf),
               (px - 26, shelf)], fill=(190, 96, 60))
    for a in range(-70, 80, 22):
        ang = math.radians(a - 90)
        ex, ey = px + 90 * math.cos(ang), shelf - 60 + 90 * math.sin(ang)
        d.line([(px, shelf - 60), (ex, ey)], fill=(70, 130, 70), width=10)
        d.ellipse([ex - 14, ey - 9, ex + 14, ey + 9], fill=(86, 150, 80))
    return img, shelf + 4


# ---------------------------------------------------------------------------
# the toy robot
# ---------------------------------------------------------------------------

ROBOT_RED = (204, 36, 38)
ROBOT_RED_DARK = (128, 16, 20)
ROBOT_RED_LIGHT = (238, 96, 88)
METAL = (156, 160, 172)
METAL_DARK = (88, 92, 104)


def _arm(d: ImageDraw.ImageDraw, shoulder, side: int, up_deg: float, bend_deg: float):
    """Two-segment arm. ``up_deg`` is how far the upper arm is raised from
    hanging straight down (0 = down, 90 = horizontal, 160 = overhead);
    ``side`` is -1 for the robot's right (image left) and +1 for image right."""
    sx, sy = shoulder
    a1 = math.radians(up_deg)
    ex = sx + side * 62 * math.sin(a1)
    ey = sy + 62 * math.cos(a1)
    a2 = math.radians(up_deg + bend_deg)
    hx = ex + side * 58 * math.sin(a2)
    hy = ey + 58 * math.cos(a2)
    d.line([(sx, sy), (ex, ey), (hx, hy)], fill=METAL_DARK, width=30, joint="curve")
    d.line([(sx, sy), (ex, ey), (hx, hy)], fill=METAL, width=20, joint="curve")
    d.ellipse([ex - 13, ey - 13, ex + 13, ey + 13], fill=METAL_DARK)  # elbow
    # claw hand: a dark ring open away from the arm
    ang = math.degrees(math.atan2(hy - ey, hx - ex))
    d.arc([hx - 18, hy - 18, hx + 18, hy + 18], ang + 45, ang + 315,
          fill=(50, 52, 60), width=10)


def draw_robot(arm_l: float, arm_r: float, bend_l: float, bend_r: float,
               gaze: tuple[float, float], head_tilt: float) -> Image.Image:
    """The robot on a transparent 400x480 RGBA canvas (feet at the bottom)."""
    cw, ch = 400, 480
    img = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)

    # arms first so the body hides the shoulder joints
    _arm(d, (128, 220), -1, arm_l, bend_l)
    _arm(d, (272, 220), +1, arm_r, bend_r)

    # legs + feet
    for lx in (150, 220):
        d.rectangle([lx, 360, lx + 30, 440], fill=METAL)
        d.rectangle([lx, 360, lx + 8, 440], fill=METAL_DARK)
        d.rounded_rectangle([lx - 18, 432, lx + 48, 478], radius=12, fill=(44, 44, 52))

    # boxy body
    d.rounded_rectangle([118, 190, 282, 368], radius=20, fill=ROBOT_RED_DARK)
    d.rounded_rectangle([124, 196, 276, 362], radius=16, fill=ROBOT_RED)
    d.rounded_rectangle([132, 202, 168, 352], radius=10, fill=ROBOT_RED_LIGHT)  # sheen
    d.rounded_rectangle([140, 202, 270, 356], radius=12, fill=ROBOT_RED)
    # chest panel with buttons and a speaker grille
    d.rounded_rectangle([158, 228, 246, 318], radius=8, fill=(214, 216, 222))
    d.rounded_rectangle([158, 228, 246, 318], radius=8, outline=METAL_DARK, width=4)
    for i, col in enumerate([(250, 206, 40), (60, 190, 90), (60, 130, 230)]):
        bx = 180 + i * 22
        d.ellipse([bx - 8, 244, bx + 8, 260], fill=col)
    for i in range(4):
        d.line([(174, 276 + i * 10), (230, 276 + i * 10)], fill=METAL_DARK, width=4)
    # shoulder caps
    for sx in (128, 272):
        d.ellipse([sx - 20, 200, sx + 20, 240], fill=ROBOT_RED_DARK)
        d.ellipse([sx - 14, 206, sx + 14, 234], fill=ROBOT_RED)

    # neck
    d.rectangle([184, 172, 216, 198], fill=METAL_DARK)

    # head on its own layer so it can tilt
    head = Image.new("RGBA", (cw, 200), (0, 0, 0, 0))
    hd = ImageDraw.Draw(head)
    hx, hy, r = 200, 120, 60
    hd.line([(hx, hy - r + 4), (hx, 22)], fill=(60, 62, 70), width=8)   # antenna
    hd.ellipse([hx - 15, 8, hx + 15, 38], fill=(250, 200, 30))
    hd.ellipse([hx - 7, 13, hx + 1, 21], fill=(255, 246, 190))
    hd.ellipse([hx - r, hy - r, hx + r, hy + r], fill=ROBOT_RED_DARK)
    hd.ellipse([hx - r + 6, hy - r + 6, hx + r - 6, hy + r - 6], fill=ROBOT_RED)
    hd.ellipse([hx - 40, hy - 46, hx - 14, hy - 28], fill=ROBOT_RED_LIGHT)  # sheen
    gx, gy = gaze
    for ex in (hx - 24, hx + 24):
        hd.ellipse([ex - 17, hy - 20, ex + 17, hy + 14], fill=(252, 252, 252))
        px, py = ex + gx * 6, hy - 3 + gy * 5
        hd.ellipse([px - 8, py - 8, px + 8, py + 8], fill=(20, 20, 28))
        hd.ellipse([px - 4, py - 6, px, py - 2], fill=(255, 255, 255))
    hd.rounded_rectangle([hx - 20, hy + 26, hx + 20, hy + 36], radius=5,
                         fill=(60, 62, 70))
    if head_tilt:
        head = head.rotate(head_tilt, resample=Image.BICUBIC, center=(hx, hy + 50))
    img.alpha_composite(head, (0, 0))
    return img


def make_robot_set(out: Path) -> list[Path]:
    rng = random.Random(1234)
    folder = out / "red-robot"
    # (background, robot height, foot x, pose..., lighting, tilt, mirror)
    shots = [
        dict(bg=bg_table_edge, h=300, x=250, arms=(20, 25, 10, 15), gaze=(0, 0),
             tilt=0, head=0, light=(1.00, (255, 246, 232), True, 40)),
        dict(bg=bg_sky, h=250, x=170, arms=(150, 35, 20, 10), gaze=(1, -1),
             tilt=-6, head=8, light=(1.08, (255, 250, 240), False, 30)),
        dict(bg=bg_checker, h=220, x=310, arms=(95, 95, -30, -30), gaze=(-1, 0),
             tilt=0, head=-6, light=(0.96, (240, 244, 255), True, 55)),
        dict(bg=bg_studio, h=400, x=256, arms=(40, 130, 30, 40), gaze=(0, 1),
             tilt=4, head=0, light=(1.04, (255, 255, 255), False, 70)),
        dict(bg=bg_wallpaper, h=180, x=200, arms=(60, 10, 80, 0), gaze=(1, 0),
             tilt=0, head=10, light=(0.92, (255, 232, 200), True, 35)),
    ]
    paths = []
    for i, s in enumerate(shots, 1):
        bg, ground = s["bg"](rng)
        canvas = bg.convert("RGBA")
        robot = draw_robot(*s["arms"], gaze=s["gaze"], head_tilt=s["head"])
        robot = apply_lighting(robot, *s["light"])
        foot_x = s["x"] + rng.randint(-10, 10)
        ground_shadow(canvas, foot_x, ground - 4, s["h"] * 0.36, s["h"] * 0.05)
        place_sprite(canvas, robot, s["h"], foot_x, ground, angle=s["tilt"])
        p = folder / f"red-robot_{i:02d}.png"
        save_png(finish(canvas), p)
        paths.append(p)
    write_concept(folder, "<red-robot>", "robot", "object")
    return paths


# ---------------------------------------------------------------------------
# the blue mug
# ---------------------------------------------------------------------------

MUG_BLUE = (36, 84, 188)


def _star(cx, cy, r_out, r_in, rot=-90.0):
    pts = []
    for k in range(10):
        r = r_out if k % 2 == 0 else r_in
        a = math.radians(rot + k * 36)
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def draw_mug(handle_right: bool = True) -> Image.Image:
    """The mug on a transparent 420x380 RGBA canvas (base at the bottom)."""
    cw, ch = 420, 380
    img = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    x0, x1, top, bot, ery = 80, 300, 70, 378, 26

    # handle (drawn first; the body covers its inner end)
    d.ellipse([250, 130, 380, 300], outline=(20, 50, 130), width=36)
    d.ellipse([256, 136, 374, 294], outline=MUG_BLUE, width=24)

    # body with cylindrical shading built column by column
    mask = Image.new("L", (cw, ch), 0)
    md = ImageDraw.Draw(mask)
    md.rectangle([x0, top, x1, bot - ery], fill=255)
    md.ellipse([x0, bot - 2 * ery, x1, bot], fill=255)
    shade = Image.new("RGB", (cw, ch), MUG_BLUE)
    sd = ImageDraw.Draw(shade)
    for x in range(x0, x1 + 1):
        t = (x - x0) / (x1 - x0)           # 0..1 across the body
        lum = 0.62 + 0.55 * math.sin(math.pi * (0.15 + 0.85 * t)) ** 1.5
        if 0.22 < t < 0.30:                 # specular highlight stripe
            lum += 0.35
        sd.line([(x, 0), (x, ch)], fill=scale_rgb(MUG_BLUE, lum))
    img.paste(shade, (0, 0), mask)

    # rim + inside
    d.ellipse([x0, top - ery, x1, top + ery], fill=(70, 120, 214))
    d.ellipse([x0 + 12, top - ery + 8, x1 - 12, top + ery - 6], fill=(16, 36, 96))
    d.chord([x0 + 12, top - ery + 8, x1 - 12, top + ery - 6], 0, 180,
            fill=(28, 56, 130))

    # white star logo, squashed horizontally so it sits on the curved surface
    cx = 190
    star = [(cx + (x - cx) * 0.86, y) for x, y in _star(cx, 222, 62, 25)]
    d.polygon(star, fill=(250, 250, 252))
    if not handle_right:
        img = ImageOps.mirror(img)
    return img


def make_mug_set(out: Path) -> list[Path]:
    rng = random.Random(5678)
    folder = out / "blue-mug"
    shots = [
        dict(bg=bg_counter, h=240, x=230, right=True,
             light=(1.00, (255, 255, 255), True, 40)),
        dict(bg=bg_gingham, h=300, x=280, right=False,
             light=(1.05, (255, 244, 232), False, 45)),
        dict(bg=bg_studio, h=200, x=256, right=True,
             light=(0.97, (236, 246, 255), False, 30)),
        dict(bg=bg_shelf, h=170, x=330, right=True,
             light=(1.02, (255, 236, 210), True, 55)),
    ]
    paths = []
    for i, s in enumerate(shots, 1):
        bg, ground = s["bg"](rng)
        canvas = bg.convert("RGBA")
        mug = apply_lighting(draw_mug(s["right"]), *s["light"])
        x = s["x"] + rng.randint(-8, 8)
        body_off = s["h"] * (-20 / 380 if s["right"] else 20 / 380)
        ground_shadow(canvas, x + body_off, ground - 4, s["h"] * 0.34, s["h"] * 0.06)
        place_sprite(canvas, mug, s["h"], x, ground)
        p = folder / f"blue-mug_{i:02d}.png"
        save_png(finish(canvas), p)
        paths.append(p)
    write_concept(folder, "<blue-mug>", "mug", "object")
    return paths


# ---------------------------------------------------------------------------
# the pointillist "dot style"
# ---------------------------------------------------------------------------

PAL = {
    "cream": (246, 230, 196),
    "sand": (236, 198, 136),
    "ochre": (214, 156, 58),
    "orange": (232, 118, 42),
    "vermilion": (204, 68, 40),
    "crimson": (156, 36, 52),
    "plum": (112, 44, 78),
    "lavender": (178, 138, 162),
    "olive": (136, 132, 52),
    "sage": (176, 170, 104),
    "brown": (112, 62, 32),
    "dark": (58, 28, 30),
}
PAPER = (250, 240, 220)


def _bands(d, colors, y0, y1):
    h = (y1 - y0) / len(colors)
    for i, c in enumerate(colors):
        d.rectangle([0, y0 + i * h, SIZE, y0 + (i + 1) * h + 1], fill=PAL[c])


def scene_house(d, rng):
    _bands(d, ["lavender", "sand", "cream"], 0, 170)
    d.ellipse([190, 26, 236, 72], fill=PAL["orange"])
    _bands(d, ["olive", "sage"], 170, SIZE)
    d.rectangle([60, 110, 190, 200], fill=PAL["ochre"])
    d.polygon([(44, 114), (125, 50), (206, 114)], fill=PAL["crimson"])
    d.rectangle([156, 58, 174, 96], fill=PAL["brown"])
    d.rectangle([112, 146, 140, 200], fill=PAL["brown"])
    for wx in (74, 154):
        d.rectangle([wx, 130, wx + 24, 154], fill=PAL["cream"])
    d.polygon([(112, 200), (140, 200), (150, SIZE), (100, SIZE)], fill=PAL["sand"])


def scene_tree(d, rng):
    _bands(d, ["sand", "cream", "sand"], 0, 190)
    _bands(d, ["sage", "olive"], 190, SIZE)
    d.polygon([(116, 200), (140, 200), (134, 120), (122, 120)], fill=PAL["brown"])
    d.line([(128, 150), (96, 110)], fill=PAL["brown"], width=8)
    d.line([(130, 140), (166, 104)], fill=PAL["brown"], width=8)
    d.ellipse([46, 30, 210, 150], fill=PAL["olive"])
    for _ in range(9):
        x, y = rng.randint(70, 180), rng.randint(45, 130)
        r = rng.randint(10, 20)
        d.ellipse([x - r, y - r, x + r, y + r],
                  fill=PAL[rng.choice(["orange", "ochre", "vermilion"])])
    d.ellipse([70, 196, 190, 214], fill=PAL["brown"])


def scene_boat(d, rng):
    _bands(d, ["crimson", "vermilion", "orange", "ochre"], 0, 160)
    d.ellipse([176, 112, 236, 172], fill=PAL["sand"])                 # low sun
    _bands(d, ["lavender", "plum", "lavender", "plum"], 160, SIZE)
    for y in (176, 196, 220):                                         # sun glitter
        d.line([(186, y), (226, y)], fill=PAL["ochre"], width=5)
    d.polygon([(34, 186), (190, 186), (166, 222), (58, 222)], fill=PAL["dark"])
    d.line([(108, 186), (108, 44)], fill=PAL["brown"], width=6)
    d.polygon([(114, 48), (114, 180), (176, 180)], fill=PAL["cream"])
    d.polygon([(102, 62), (102, 180), (50, 180)], fill=PAL["cream"])
    d.polygon([(108, 40), (108, 28), (128, 34)], fill=PAL["vermilion"])  # flag


def scene_face(d, rng):
    _bands(d, ["sage", "sand"], 0, SIZE)
    d.ellipse([46, 200, 210, 320], fill=PAL["vermilion"])           # shoulders
    d.rectangle([112, 170, 144, 215], fill=PAL["ochre"])            # neck
    d.ellipse([66, 26, 190, 120], fill=PAL["plum"])                  # hair
    d.ellipse([76, 50, 180, 190], fill=PAL["sand"])                  # face
    d.ellipse([70, 30, 186, 86], fill=PAL["plum"])                   # fringe
    for ex in (104, 152):
        d.ellipse([ex - 9, 106, ex + 9, 120], fill=PAL["dark"])
    for cx in (96, 160):
        d.ellipse([cx - 12, 132, cx + 12, 148], fill=PAL["orange"])  # cheeks
    d.polygon([(128, 118), (120, 144), (134, 144)], fill=PAL["ochre"])
    d.chord([108, 148, 148, 172], 0, 180, fill=PAL["crimson"])


def scene_mountain(d, rng):
    _bands(d, ["lavender", "sand", "cream"], 0, 150)
    d.ellipse([30, 30, 74, 74], fill=PAL["orange"])
    d.polygon([(-20, 190), (90, 60), (200, 190)], fill=PAL["plum"])
    d.polygon([(60, 190), (180, 40), (290, 190)], fill=PAL["brown"])
    d.polygon([(155, 71), (180, 40), (205, 71), (190, 64), (180, 74), (168, 62)],
              fill=PAL["cream"])
    d.polygon([(76, 77), (90, 60), (104, 77), (90, 72)], fill=PAL["cream"])
    _bands(d, ["olive", "ochre", "sage", "ochre"], 190, SIZE)


def _nearest(c, names):
    return sorted(names, key=lambda n: sum((a - b) ** 2 for a, b in zip(PAL[n], c)))


def pointillize(base: Image.Image, rng: random.Random) -> Image.Image:
    """Re-render ``base`` as overlapping palette dots on warm paper."""
    img = Image.new("RGB", (SIZE, SIZE), PAPER)
    d = ImageDraw.Draw(img)
    names = list(PAL)
    cache: dict[tuple, list[str]] = {}
    pts = []
    step = 5
    for y in range(0, SIZE + step, step):
        for x in range(0, SIZE + step, step):
            pts.append((x + rng.uniform(-2.5, 2.5), y + rng.uniform(-2.5, 2.5)))
    rng.shuffle(pts)
    for x, y in pts:
        sx, sy = min(SIZE - 1, max(0, int(x))), min(SIZE - 1, max(0, int(y)))
        c = base.getpixel((sx, sy))
        if c not in cache:
            cache[c] = _nearest(c, names)
        order = cache[c]
        roll = rng.random()
        name = order[0] if roll < 0.84 else order[1] if roll < 0.97 else order[2]
        r = rng.choice((2, 3, 3, 3, 4))
        d.ellipse([x - r, y - r, x + r, y + r], fill=PAL[name])
    return img


def make_dot_set(out: Path) -> list[Path]:
    rng = random.Random(9012)
    folder = out / "dot-style"
    scenes = [("house", scene_house), ("tree", scene_tree), ("boat", scene_boat),
              ("face", scene_face), ("mountain", scene_mountain)]
    pal_img = Image.new("P", (1, 1))
    flat = [v for c in list(PAL.values()) + [PAPER] for v in c]
    pal_img.putpalette(flat + [0] * (768 - len(flat)))
    paths = []
    for i, (name, fn) in enumerate(scenes, 1):
        base = Image.new("RGB", (SIZE, SIZE), PAL["cream"])
        fn(ImageDraw.Draw(base), rng)
        img = pointillize(base, rng)
        img = img.quantize(palette=pal_img, dither=Image.Dither.NONE)
        p = folder / f"dot-style_{i:02d}_{name}.png"
        save_png(img, p)
        paths.append(p)
    write_concept(folder, "<dot-style>", "painting", "style")
    return paths


# ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="output directory (default: the examples/ folder)")
    args = ap.parse_args(argv)
    paths = make_robot_set(args.out) + make_mug_set(args.out) + make_dot_set(args.out)
    total = 0
    for p in paths:
        n = p.stat().st_size
        total += n
        print(f"{p.relative_to(args.out)}  {n / 1024:.1f} KB")
    print(f"{len(paths)} images, {total / 1024:.1f} KB total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
