"""Draw the sample images and write the sample manifests. Deterministic: run it again and
the same files come out (for one Pillow version).

    python sample_manifests/make_images.py

Models are simple standing figures on a studio backdrop, garments are flat-lay shapes on a
pale board, all 768x1024 (3:4, as the vendor recommends). Also written: `logo.png` (a small
custom mark), `tiny-01.jpg` (too small for the service: ImageResolutionExceed) and
`broken-01.jpg` (a cut-off JPEG: ImageDecodeFailed), for tests and failure demos.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
SIZE = (768, 1024)
JPEG_QUALITY = 85
SEED = 20221229

Colour = tuple[int, int, int]
Polygon = list[tuple[float, float]]

SKIN: list[Colour] = [(241, 204, 170), (224, 172, 130), (198, 134, 90), (141, 85, 54)]
HAIR: list[Colour] = [(40, 30, 25), (90, 60, 35), (20, 20, 20), (150, 110, 60)]
BASE_TOPS: list[Colour] = [(235, 235, 230), (200, 200, 205), (220, 215, 200)]
BASE_BOTTOMS: list[Colour] = [(60, 70, 90), (80, 80, 80), (110, 95, 80)]
BACKDROPS: list[Colour] = [(214, 220, 228), (228, 220, 210), (220, 228, 218), (230, 222, 230)]
GARMENT_BOARD: Colour = (246, 244, 240)


def _gradient(top: Colour, bottom: Colour) -> Image.Image:
    image = Image.new("RGB", SIZE)
    draw = ImageDraw.Draw(image)
    width, height = SIZE
    for y in range(height):
        t = y / (height - 1)
        r, g, b = (round(lo + (hi - lo) * t) for lo, hi in zip(top, bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=(r, g, b))
    return image


def _shade(colour: Colour, factor: float) -> Colour:
    r, g, b = (max(0, min(255, round(c * factor))) for c in colour)
    return (r, g, b)


def draw_model(rng: random.Random) -> Image.Image:
    """A front-facing figure: head, torso in a plain top, legs in plain trousers."""
    backdrop = rng.choice(BACKDROPS)
    image = _gradient(_shade(backdrop, 1.05), _shade(backdrop, 0.85))
    draw = ImageDraw.Draw(image)
    width, height = SIZE
    cx = width / 2 + rng.uniform(-12, 12)
    skin, hair = rng.choice(SKIN), rng.choice(HAIR)
    top, bottom = rng.choice(BASE_TOPS), rng.choice(BASE_BOTTOMS)
    shoulders = rng.uniform(0.19, 0.23) * width
    hips = shoulders * rng.uniform(0.78, 0.9)

    # floor shadow
    draw.ellipse([cx - 150, 0.93 * height, cx + 150, 0.97 * height], fill=_shade(backdrop, 0.7))
    # legs and shoes
    for side in (-1, 1):
        leg: Polygon = [
            (cx + side * 8, 0.53 * height),
            (cx + side * hips, 0.53 * height),
            (cx + side * hips * 0.62, 0.93 * height),
            (cx + side * 14, 0.93 * height),
        ]
        draw.polygon(leg, fill=bottom)
        draw.ellipse(
            [cx + side * 70 - 48, 0.915 * height, cx + side * 70 + 48, 0.955 * height],
            fill=(35, 35, 35),
        )
    # arms
    for side in (-1, 1):
        arm: Polygon = [
            (cx + side * shoulders, 0.215 * height),
            (cx + side * (shoulders + 38), 0.235 * height),
            (cx + side * (shoulders + 52), 0.52 * height),
            (cx + side * (shoulders + 14), 0.52 * height),
        ]
        draw.polygon(arm, fill=skin)
        draw.ellipse(
            [
                cx + side * (shoulders + 33) - 22,
                0.51 * height,
                cx + side * (shoulders + 33) + 22,
                0.56 * height,
            ],
            fill=skin,
        )
    # torso
    torso: Polygon = [
        (cx - shoulders, 0.2 * height),
        (cx + shoulders, 0.2 * height),
        (cx + hips, 0.55 * height),
        (cx - hips, 0.55 * height),
    ]
    draw.polygon(torso, fill=top)
    draw.line(
        [(cx - hips, 0.55 * height), (cx + hips, 0.55 * height)], fill=_shade(top, 0.8), width=6
    )
    # neck and head
    draw.rectangle([cx - 26, 0.16 * height, cx + 26, 0.205 * height], fill=_shade(skin, 0.92))
    draw.ellipse([cx - 62, 0.055 * height, cx + 62, 0.18 * height], fill=skin)
    draw.chord([cx - 66, 0.045 * height, cx + 66, 0.15 * height], 180, 360, fill=hair)
    for side in (-1, 1):
        draw.ellipse(
            [cx + side * 24 - 6, 0.115 * height - 6, cx + side * 24 + 6, 0.115 * height + 6],
            fill=(40, 40, 40),
        )
    return image


def _tshirt(w: float, h: float, long_sleeves: bool) -> Polygon:
    sleeve_end = 0.62 if long_sleeves else 0.34
    return [
        (0.36 * w, 0.16 * h), (0.64 * w, 0.16 * h),  # neckline
        (0.86 * w, 0.22 * h), (0.97 * w, sleeve_end * h), (0.84 * w, (sleeve_end + 0.04) * h),
        (0.78 * w, 0.36 * h), (0.78 * w, 0.86 * h), (0.22 * w, 0.86 * h), (0.22 * w, 0.36 * h),
        (0.16 * w, (sleeve_end + 0.04) * h), (0.03 * w, sleeve_end * h), (0.14 * w, 0.22 * h),
    ]  # fmt: skip


def _trousers(w: float, h: float, length: float) -> Polygon:
    bottom = (0.12 + length) * h
    return [
        (0.24 * w, 0.12 * h), (0.76 * w, 0.12 * h), (0.82 * w, bottom), (0.56 * w, bottom),
        (0.5 * w, 0.3 * h), (0.44 * w, bottom), (0.18 * w, bottom),
    ]  # fmt: skip


def _skirt(w: float, h: float) -> Polygon:
    return [(0.3 * w, 0.2 * h), (0.7 * w, 0.2 * h), (0.88 * w, 0.78 * h), (0.12 * w, 0.78 * h)]


def _dress(w: float, h: float) -> Polygon:
    return [
        (0.38 * w, 0.08 * h), (0.44 * w, 0.08 * h), (0.46 * w, 0.16 * h), (0.54 * w, 0.16 * h),
        (0.56 * w, 0.08 * h), (0.62 * w, 0.08 * h), (0.66 * w, 0.4 * h), (0.86 * w, 0.92 * h),
        (0.14 * w, 0.92 * h), (0.34 * w, 0.4 * h),
    ]  # fmt: skip


GARMENTS: list[tuple[str, Callable[[float, float], Polygon]]] = [
    ("Upper-body", lambda w, h: _tshirt(w, h, long_sleeves=False)),
    ("Upper-body", lambda w, h: _tshirt(w, h, long_sleeves=True)),
    ("Upper-body", lambda w, h: _tshirt(w, h, long_sleeves=False)),
    ("Upper-body", lambda w, h: _tshirt(w, h, long_sleeves=True)),
    ("Upper-body", lambda w, h: _tshirt(w, h, long_sleeves=False)),
    ("Lower-body", lambda w, h: _trousers(w, h, 0.78)),
    ("Lower-body", lambda w, h: _trousers(w, h, 0.36)),
    ("Lower-body", _skirt),
    ("Lower-body", lambda w, h: _trousers(w, h, 0.78)),
    ("Dress", _dress),
    ("Dress", _dress),
    ("Dress", _dress),
]
GARMENT_COLOURS: list[Colour] = [
    (200, 40, 50), (30, 90, 170), (240, 190, 40), (40, 140, 90), (120, 60, 150),
    (30, 40, 70), (150, 110, 70), (210, 100, 140), (70, 70, 75), (180, 30, 90),
    (40, 150, 170), (230, 120, 40),
]  # fmt: skip


def draw_garment(
    rng: random.Random, shape: Callable[[float, float], Polygon], colour: Colour
) -> Image.Image:
    """A flat-lay garment: one shape, sometimes striped or dotted, on a plain board."""
    width, height = SIZE
    image = Image.new("RGB", SIZE, GARMENT_BOARD)
    outline = shape(width, height)
    mask = Image.new("L", SIZE, 0)
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    fabric = Image.new("RGB", SIZE, colour)
    fabric_draw = ImageDraw.Draw(fabric)
    pattern = rng.choice(["plain", "stripes", "dots"])
    accent = _shade(colour, 0.6) if sum(colour) > 300 else _shade(colour, 1.6)
    if pattern == "stripes":
        step = rng.randrange(40, 80)
        for y in range(0, height, step):
            fabric_draw.rectangle([0, y, width, y + step // 3], fill=accent)
    elif pattern == "dots":
        step = rng.randrange(50, 90)
        for y in range(step // 2, height, step):
            for x in range(step // 2, width, step):
                fabric_draw.ellipse([x - 9, y - 9, x + 9, y + 9], fill=accent)
    image.paste(fabric, (0, 0), mask)
    ImageDraw.Draw(image).polygon(outline, outline=_shade(colour, 0.5), width=4)
    return image


def draw_logo() -> Image.Image:
    logo = Image.new("RGBA", (240, 80), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.rounded_rectangle([0, 0, 239, 79], radius=16, fill=(0, 120, 255, 230))
    draw.text(
        (120, 40),
        "SAMPLE",
        font=ImageFont.load_default(size=34),
        fill=(255, 255, 255, 255),
        anchor="mm",
    )
    return logo


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


MODELS = 6
CATALOG: list[tuple[int, int, int]] = [  # (model, garment, logo_add)
    (1, 1, 1), (2, 2, 1), (3, 3, 1), (4, 4, 0), (5, 5, 1),
    (1, 6, 1), (2, 7, 1), (3, 8, 0), (6, 9, 1),
    (4, 10, 1), (5, 11, 1), (6, 12, 0),
    (2, 1, 1), (6, 3, 1),
]  # fmt: skip


def catalog_rows() -> list[dict[str, str | int]]:
    rows: list[dict[str, str | int]] = []
    for n, (model, garment, logo_add) in enumerate(CATALOG, start=1):
        rows.append(
            {
                "id": f"look-{n:03d}",
                "model_url": f"images/model-{model:02d}.jpg",
                "clothes_url": f"images/clothes-{garment:02d}.jpg",
                "clothes_type": GARMENTS[garment - 1][0],
                "logo_add": logo_add,
            }
        )
    return rows


BAD_ROWS: list[dict[str, str]] = [
    {"id": "ok-001", "model_url": "images/model-01.jpg", "clothes_url": "images/clothes-01.jpg",
     "clothes_type": "Upper-body", "logo_add": "1"},
    {"id": "bad-type", "model_url": "images/model-02.jpg", "clothes_url": "images/clothes-02.jpg",
     "clothes_type": "Shoes", "logo_add": "1"},
    {"id": "no-model", "model_url": "", "clothes_url": "images/clothes-03.jpg",
     "clothes_type": "Upper-body", "logo_add": "1"},
    {"id": "ftp-url", "model_url": "ftp://example.com/model-04.jpg",
     "clothes_url": "images/clothes-04.jpg", "clothes_type": "Upper-body", "logo_add": "1"},
    {"id": "ok-001", "model_url": "images/model-05.jpg", "clothes_url": "images/clothes-05.jpg",
     "clothes_type": "Upper-body", "logo_add": "1"},
    {"id": "shirts/red", "model_url": "images/model-01.jpg",
     "clothes_url": "images/clothes-06.jpg", "clothes_type": "Lower-body", "logo_add": "1"},
    {"id": "bad-logo-add", "model_url": "images/model-02.jpg",
     "clothes_url": "images/clothes-07.jpg", "clothes_type": "Lower-body", "logo_add": "yes"},
    {"id": "no-type", "model_url": "images/model-03.jpg", "clothes_url": "images/clothes-10.jpg",
     "clothes_type": "", "logo_add": "1"},
    {"id": "no-clothes", "model_url": "images/model-04.jpg", "clothes_url": "",
     "clothes_type": "Dress", "logo_add": "0"},
]  # fmt: skip


def write_manifests() -> None:
    fields = ["id", "model_url", "clothes_url", "clothes_type", "logo_add"]
    rows = catalog_rows()
    with (HERE / "catalog.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with (HERE / "catalog.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    with (HERE / "bad.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(BAD_ROWS)


def write_images() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    for n in range(1, MODELS + 1):
        (IMAGES / f"model-{n:02d}.jpg").write_bytes(_jpeg(draw_model(rng)))
    for n, ((_, shape), colour) in enumerate(zip(GARMENTS, GARMENT_COLOURS, strict=True), 1):
        (IMAGES / f"clothes-{n:02d}.jpg").write_bytes(_jpeg(draw_garment(rng, shape, colour)))
    logo = io.BytesIO()
    draw_logo().save(logo, "PNG", optimize=True)
    (IMAGES / "logo.png").write_bytes(logo.getvalue())
    tiny = draw_model(random.Random(SEED)).resize((480, 640), Image.Resampling.BILINEAR)
    (IMAGES / "tiny-01.jpg").write_bytes(_jpeg(tiny))
    whole = _jpeg(draw_model(random.Random(SEED + 1)))
    (IMAGES / "broken-01.jpg").write_bytes(whole[: len(whole) // 3])


def main() -> None:
    write_images()
    write_manifests()
    total = sum(p.stat().st_size for p in IMAGES.iterdir())
    print(f"wrote {len(list(IMAGES.iterdir()))} images ({total / 1e6:.1f} MB) and 3 manifests")


if __name__ == "__main__":
    main()
