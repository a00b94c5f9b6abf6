"""Cheap, endoscopy-looking frames in which a polyp's size in mm can be learned.

What a frame shows: a black-cornered field of view (an octagon for Olympus, a clipped circle for Fujifilm),
pinkish-red mucosa lit from the camera (bright near the light, a dark lumen, folds around it), a pit pattern
and a vessel network, a few specular glints, and one raised, shaded, differently tinted polyp dome with its own
highlight per requested box.

How size is made learnable: every frame has a camera distance ``d`` (log-uniform over ``DISTANCE_RANGE``)
and a scale ``S = px_per_mm / d`` pixels per millimetre. The polyp's diameter is ``size_mm * S`` pixels, and
the mucosa texture (pit period ``PIT_MM``, vessel period ``VESSEL_MM``, fold period ``FOLD_MM``) is drawn at
the same ``S``. A crop around the box that is resized to a fixed size loses the absolute pixel size, but keeps
the ratio of polyp diameter to texture period, which is ``size_mm / PIT_MM`` whatever the distance.

How it stays cheap (about 10 ms of CPU a 1.4 MP frame, JPEG encoding included): the texture is a periodic
tile built once per process (with a 3-level area-averaged pyramid) and sampled with two ``np.take`` calls;
lighting is computed at 1/8 resolution and upscaled by Pillow; luminance becomes colour through a per-video
256-entry palette; the polyp and glints touch only their local patches. No per-pixel Python loops.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

PIT_MM = 0.5
"""Period of the pit (crypt) lattice, in mm of mucosa."""
VESSEL_MM = 3.0
"""Typical spacing of the vessel network, in mm."""
FOLD_MM = 10.0
"""Spacing of the folds around the lumen, in mm."""
PX_PER_MM_1080 = 20.0
"""Pixels per mm at distance 1 in a 1080-line frame (scaled by frame height and a per-video factor)."""
DISTANCE_RANGE = (0.5, 2.0)
"""Per-frame camera distance factor, log-uniform (narrowed only where a polyp would not fit, see below)."""
MIN_DIAMETER_PX = 12
"""Smallest polyp diameter drawn; the distance is narrowed so that no polyp is smaller."""
MAX_DIAMETER_FRACTION = 0.55
"""Largest polyp diameter as a fraction of the frame's shorter side; the distance is narrowed to respect it."""
JPEG_QUALITY = 90

_TILE = 480  # tile side in pixels at level 0; a multiple of 4 so the pyramid stays periodic
_TILE_PX_PER_MM = 32.0
_TILE_SEED = 20240228  # the texture family is fixed; frames vary by offset, orientation and scale


# --------------------------------------------------------------------------------------------------- texture
def _band_noise(rng: np.random.Generator, size: int, cycles: float, width: float) -> np.ndarray:
    """Periodic noise whose spectrum is a ring at ``cycles`` per tile, normalised to unit variance."""
    spectrum = np.fft.fft2(rng.normal(size=(size, size)))
    k = np.fft.fftfreq(size) * size
    radius = np.hypot(k[:, None], k[None, :])
    noise = np.fft.ifft2(spectrum * np.exp(-0.5 * ((radius - cycles) / width) ** 2)).real
    return noise / noise.std()


def _pit_lattice(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Periodic jittered lattice of soft dark crypt openings (1 at a pit centre, 0 between pits)."""
    n = size // cell
    jitter = rng.uniform(-0.2, 0.2, size=(n, n, 2)) * cell
    grid = np.arange(size) + 0.5
    ci = (grid // cell).astype(int)
    best = np.full((size, size), np.inf)
    for di in (-1, 0, 1):
        ni = (ci + di) % n
        cy = (ci + di + 0.5) * cell
        for dj in (-1, 0, 1):
            nj = (ci + dj) % n
            cx = (ci + dj + 0.5) * cell
            py = cy[:, None] + jitter[ni[:, None], nj[None, :], 0]
            px = cx[None, :] + jitter[ni[:, None], nj[None, :], 1]
            best = np.minimum(best, (grid[:, None] - py) ** 2 + (grid[None, :] - px) ** 2)
    return np.exp(-best / (2 * (0.2 * cell) ** 2))


@functools.lru_cache(maxsize=1)
def texture_pyramid() -> tuple[np.ndarray, ...]:
    """The mucosa modulation tile (uint8, 255 = unchanged) at ``_TILE_PX_PER_MM / 2**level`` px per mm."""
    rng = np.random.default_rng(_TILE_SEED)
    size = _TILE
    mm = size / _TILE_PX_PER_MM  # the tile spans this many mm: a period of p mm is mm / p cycles per tile
    pits = _pit_lattice(rng, size, round(PIT_MM * _TILE_PX_PER_MM))
    vessels = np.exp(-((_band_noise(rng, size, mm / VESSEL_MM, 1.2) / 0.18) ** 2))
    capillaries = np.exp(-((_band_noise(rng, size, 2.2 * mm / VESSEL_MM, 2.0) / 0.3) ** 2))
    grain = _band_noise(rng, size, 3 * mm / PIT_MM, 6.0)
    level = 1.0 - 0.36 * pits - 0.14 * vessels - 0.05 * capillaries + 0.02 * grain
    levels = [level]
    for _ in range(2):
        a = levels[-1]
        levels.append(0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]))
    return tuple(np.clip(lv * 255, 0, 255).astype(np.uint8) for lv in levels)


def _sample_texture(rng: np.random.Generator, width: int, height: int, px_per_mm: float) -> np.ndarray:
    """The texture at ``px_per_mm`` frame pixels per mm: an (height, width) uint8 array, random offset/orientation."""
    step = _TILE_PX_PER_MM / px_per_mm  # tile pixels per frame pixel at level 0
    level = min(max(0, int(math.floor(math.log2(step)))), 2) if step >= 1 else 0
    tile = texture_pyramid()[level]
    step /= 2**level
    if rng.random() < 0.5:
        tile = tile.T
    size = tile.shape[0]
    oy, ox = rng.uniform(0, size, 2)
    sy, sx = rng.choice((-1.0, 1.0), 2) * step
    iy = (np.floor(oy + sy * np.arange(height)).astype(np.intp)) % size
    ix = (np.floor(ox + sx * np.arange(width)).astype(np.intp)) % size
    return np.take(np.take(tile, iy, axis=0), ix, axis=1)


# ------------------------------------------------------------------------------------------- field of view
@dataclass(frozen=True)
class FieldOfView:
    """The visible region of a frame: ``octagon`` (Olympus) or ``circle`` (Fujifilm, clipped by the frame)."""

    width: int
    height: int
    kind: str

    @property
    def center(self) -> tuple[float, float]:
        return self.width / 2, self.height / 2

    def _extent(self) -> tuple[float, float, float]:
        """(half width, half height, corner limit on |dx|+|dy|) of the octagon, or (radius, half height, inf)."""
        w, h = self.width / 2 - 2, self.height / 2 - 2
        if self.kind == "circle":
            return min(self.width, self.height) * 0.59, h, math.inf
        return w, h, 0.78 * (w + h)

    def contains_disc(self, x: float, y: float, radius: float) -> bool:
        """True if a disc of ``radius`` pixels centred at (x, y) lies wholly inside the field of view."""
        cx, cy = self.center
        dx, dy = abs(x - cx), abs(y - cy)
        a, b, c = self._extent()
        if self.kind == "circle":
            return math.hypot(dx, dy) <= a - radius and dy <= b - radius and dx <= self.width / 2 - 2 - radius
        return dx <= a - radius and dy <= b - radius and dx + dy <= c - radius * math.sqrt(2)

    def inner_radius(self) -> float:
        """Radius of the largest disc centred in the field of view."""
        a, b, c = self._extent()
        if self.kind == "circle":
            return min(a, b, self.width / 2 - 2)
        return min(a, b, c / math.sqrt(2))


@functools.lru_cache(maxsize=16)
def fov_mask(fov: FieldOfView) -> np.ndarray:
    """uint8 mask of the field of view (255 inside, 0 outside, a soft 2-pixel rim), cached per geometry."""
    cx, cy = fov.center
    ys = np.abs(np.arange(fov.height, dtype=np.float32) + 0.5 - cy)
    xs = np.abs(np.arange(fov.width, dtype=np.float32) + 0.5 - cx)
    a, b, c = fov._extent()
    if fov.kind == "circle":
        inside = a - np.hypot(xs[None, :], ys[:, None])
        inside = np.minimum(inside, b - ys[:, None])
    else:
        inside = np.minimum(a - xs[None, :], b - ys[:, None])
        inside = np.minimum(inside, (c - xs[None, :] - ys[:, None]) / math.sqrt(2))
    return (np.clip(inside / 2.0, 0, 1) * 255).astype(np.uint8)


# -------------------------------------------------------------------------------------------------- styles
@dataclass(frozen=True)
class VideoStyle:
    """What stays fixed within one video: geometry, optics and the mucosa's colour ramp."""

    fov: FieldOfView
    px_per_mm: float
    palette: tuple[int, ...] = field(repr=False)


def video_style(rng: np.random.Generator, width: int, height: int, fov_kind: str) -> VideoStyle:
    """Draw a video's style: optics within 10% of ``PX_PER_MM_1080`` (scaled to the height) and a tissue tone."""
    px_per_mm = PX_PER_MM_1080 * height / 1080 * rng.uniform(0.9, 1.1)
    base = np.array([0.93, 0.44, 0.37]) * rng.uniform(0.92, 1.05, 3)
    if fov_kind == "circle":
        base = base * np.array([1.0, 1.06, 0.95])  # a slightly more orange processor
    v = np.linspace(0, 1, 256)[:, None]
    ramp = v**1.1 * base + np.clip(v - 0.72, 0, None) ** 2 * (np.array([1.0, 0.92, 0.82]) - base) * 5
    palette = np.clip(ramp * 255, 0, 255).astype(np.uint8)
    return VideoStyle(FieldOfView(width, height, fov_kind), px_per_mm, tuple(int(x) for x in palette.ravel()))


# --------------------------------------------------------------------------------------------------- frames
@dataclass
class Rendered:
    """A rendered frame: the image, one tight box and one mask per polyp, and the frame's scale."""

    image: Image.Image
    boxes: list[tuple[int, int, int, int]]  # xmin, ymin, xmax, ymax; xmax/ymax exclusive
    masks: list[tuple[int, int, np.ndarray]]  # (x0, y0, boolean patch) per polyp, in frame coordinates
    px_per_mm: float  # pixels per mm in this frame (distance included)


def _distance(rng: np.random.Generator, sizes_mm: list[float], px_per_mm: float, max_diameter: float) -> float:
    """Log-uniform distance in DISTANCE_RANGE, narrowed so every polyp is between MIN_DIAMETER_PX and max_diameter."""
    lo, hi = DISTANCE_RANGE
    if sizes_mm:
        lo = max(lo, max(sizes_mm) * px_per_mm / max_diameter)
        hi = min(hi, min(sizes_mm) * px_per_mm / MIN_DIAMETER_PX)
        hi = max(hi, lo)  # a frame with a 1 mm and a 17 mm polyp: fitting the large one wins
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _place(rng: np.random.Generator, fov: FieldOfView, radii: list[float]) -> list[tuple[float, float]] | None:
    """Centres for non-overlapping discs wholly inside the field of view, or None after 60 tries each."""
    centres: list[tuple[float, float]] = []
    for r in radii:
        reach = r * 1.25 + 3  # the polyp plus its shadow rim
        for _ in range(60):
            x, y = rng.uniform(0, fov.width), rng.uniform(0, fov.height)
            if fov.contains_disc(x, y, reach) and all(
                math.hypot(x - px, y - py) > reach + pr * 1.25 + 6
                for (px, py), pr in zip(centres, radii, strict=False)  # only the discs placed so far
            ):
                centres.append((x, y))
                break
        else:
            return None
    return centres


def _lighting(
    rng: np.random.Generator, style: VideoStyle, scale: float, avoid: list[tuple[float, float]]
) -> np.ndarray:
    """Low-frequency luminance (lamp falloff, dark lumen, folds around it) computed at 1/8 size, upscaled
    bilinearly to 1/2 and by pixel doubling to the frame: an (height, width) uint8 array."""
    fov = style.fov
    f = 8
    w, h = math.ceil(fov.width / f), math.ceil(fov.height / f)
    xs = (np.arange(w, dtype=np.float32) + 0.5) * f
    ys = (np.arange(h, dtype=np.float32) + 0.5) * f
    cx, cy = fov.center
    reach = fov.inner_radius()
    candidates = [(cx + rng.uniform(-0.75, 0.75) * reach, cy + rng.uniform(-0.75, 0.75) * reach) for _ in range(6)]
    lumen = max(candidates, key=lambda p: min((math.hypot(p[0] - a, p[1] - b) for a, b in avoid), default=0.0))
    lx, ly = cx + rng.uniform(-0.3, 0.3) * reach, cy + rng.uniform(-0.3, 0.3) * reach
    lamp = 0.45 + 0.55 * np.exp(-(((xs[None, :] - lx) ** 2 + (ys[:, None] - ly) ** 2) / (2 * (0.75 * reach) ** 2)))
    dx, dy = xs[None, :] - lumen[0], ys[:, None] - lumen[1]
    dist = np.hypot(dx, dy)
    lumen_r = rng.uniform(0.16, 0.3) * reach
    dark = 1 - 0.9 * np.exp(-((dist / lumen_r) ** 2))
    angle = np.arctan2(dy, dx)
    warp = 0.35 * np.sin(3 * angle + rng.uniform(0, 2 * np.pi)) + 0.2 * np.sin(5 * angle + rng.uniform(0, 2 * np.pi))
    phase = dist / (FOLD_MM * scale) + warp + rng.uniform(0, 1)
    folds = 1 - 0.16 * (0.5 + 0.5 * np.cos(2 * np.pi * phase)) ** 3
    light = lamp * dark * folds * rng.uniform(0.9, 1.05)
    small = Image.fromarray(np.clip(light * 255, 0, 255).astype(np.uint8), mode="L")
    half = small.resize((math.ceil(fov.width / 2), math.ceil(fov.height / 2)), Image.Resampling.BILINEAR)
    full = half.resize((2 * half.width, 2 * half.height), Image.Resampling.NEAREST)
    return np.asarray(full)[: fov.height, : fov.width]


def _patch(img: Image.Image, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Pixels of ``img`` in [x0, x1) x [y0, y1) as float32 (height, width, 3)."""
    return np.asarray(img.crop((x0, y0, x1, y1)), dtype=np.float32)


def _put(img: Image.Image, x0: int, y0: int, pixels: np.ndarray) -> None:
    img.paste(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), (x0, y0))


def _draw_polyp(
    img: Image.Image, rng: np.random.Generator, cx: float, cy: float, radius: float
) -> tuple[int, int, np.ndarray]:
    """Shade one polyp dome into ``img``; return (x0, y0, mask patch), the mask being exactly the polyp
    (the pixels whose edge weight is at least one half)."""
    reach = radius * 1.25 + 3
    x0, x1 = max(0, int(cx - reach)), min(img.width, int(math.ceil(cx + reach)) + 1)
    y0, y1 = max(0, int(cy - reach)), min(img.height, int(math.ceil(cy + reach)) + 1)
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
    theta, aspect = rng.uniform(0, np.pi), rng.uniform(0.78, 1.0)
    u = (xs * math.cos(theta) + ys * math.sin(theta)) / radius
    v = (-xs * math.sin(theta) + ys * math.cos(theta)) / (radius * aspect)
    phi = np.arctan2(v, u)
    phase3, phase5 = rng.uniform(0, 2 * np.pi, 2)
    lobes = 1 + 0.045 * np.sin(3 * phi + phase3) + 0.025 * np.sin(5 * phi + phase5)
    rho = np.hypot(u, v) / lobes
    mask = rho < 1
    flat = rng.uniform(0.55, 1.0)  # 1: hemispherical (Is), lower: flatter (IIa)
    nx, ny, nz = u * flat, v * flat, np.sqrt(np.clip(1 - rho**2, 0, 1)) + 1e-3
    norm = np.sqrt(nx**2 + ny**2 + nz**2)
    light = np.array([rng.uniform(-0.35, 0.35), rng.uniform(-0.35, 0.35), 1.0])
    light /= np.linalg.norm(light)
    lambert = np.clip((nx * light[0] + ny * light[1] + nz * light[2]) / norm, 0, 1)
    half = light + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip((nx * half[0] + ny * half[1] + nz * half[2]) / norm, 0, 1) ** rng.uniform(80, 220)
    edge = np.clip((1 - rho) * radius / 1.2 + 0.5, 0, 1)  # anti-aliased outline, about one pixel wide
    rim = np.exp(-(((rho - 1) * radius / max(2.0, 0.08 * radius)) ** 2))  # contact shadow, darkest on the outline
    tint = np.array([1.03, rng.uniform(0.72, 0.92), rng.uniform(0.76, 0.95)], dtype=np.float32)
    if rng.random() < 0.25:  # a paler, hyperplastic-looking lesion
        tint = np.array([1.05, 1.02, 0.98], dtype=np.float32)
    patch = _patch(img, x0, y0, x1, y1)
    dome = patch * tint * (0.45 + 0.75 * lambert)[..., None] + (255 * 0.95 * spec)[..., None]
    around = patch * (1 - 0.4 * rim)[..., None]
    _put(img, x0, y0, around + edge[..., None] * (dome - around))
    return x0, y0, mask


def _glints(img: Image.Image, rng: np.random.Generator, fov: FieldOfView, count: int) -> None:
    """A few small specular reflections of the wet mucosa, added inside the field of view."""
    for _ in range(count):
        x, y = rng.uniform(0, img.width), rng.uniform(0, img.height)
        sx, sy = rng.uniform(1.5, 7), rng.uniform(1.0, 3.5)
        if rng.random() < 0.5:
            sx, sy = sy, sx
        reach = 3 * max(sx, sy)
        if not fov.contains_disc(x, y, reach):
            continue
        x0, x1, y0, y1 = int(x - reach), int(x + reach) + 1, int(y - reach), int(y + reach) + 1
        gx = np.arange(x0, x1, dtype=np.float32)[None, :] - x
        gy = np.arange(y0, y1, dtype=np.float32)[:, None] - y
        glow = 255 * np.exp(-0.5 * ((gx / sx) ** 2 + (gy / sy) ** 2))
        _put(img, x0, y0, _patch(img, x0, y0, x1, y1) + glow[..., None] * np.array([1.0, 0.97, 0.92], dtype=np.float32))


def render_frame(rng: np.random.Generator, style: VideoStyle, sizes_mm: list[float]) -> Rendered:
    """Render one frame of a video with one polyp per entry of ``sizes_mm`` (none: a negative frame)."""
    fov = style.fov
    max_diameter = MAX_DIAMETER_FRACTION * min(fov.width, fov.height)
    distance = _distance(rng, sizes_mm, style.px_per_mm, max_diameter)
    for _ in range(12):  # if the polyps do not fit side by side, step back a little
        scale = style.px_per_mm / distance
        radii = [s * scale / 2 for s in sizes_mm]
        centres = _place(rng, fov, radii)
        if centres is not None:
            break
        distance *= 1.2
    else:
        raise RuntimeError(f"cannot place polyps of {sizes_mm} mm in a {fov.width}x{fov.height} frame")
    luminance = _lighting(rng, style, scale, centres).astype(np.uint16)
    luminance *= _sample_texture(rng, fov.width, fov.height, scale)
    luminance >>= 8
    luminance *= fov_mask(fov)
    luminance >>= 8
    indexed = Image.frombuffer("P", (fov.width, fov.height), luminance.astype(np.uint8), "raw", "P", 0, 1)
    indexed.putpalette(style.palette)
    img = indexed.convert("RGB")
    masks, boxes = [], []
    for (cx, cy), radius in zip(centres, radii, strict=True):
        x0, y0, mask = _draw_polyp(img, rng, cx, cy, radius)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes.append((x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1))
        masks.append((x0, y0, mask))
    _glints(img, rng, fov, int(rng.integers(3, 10)))
    return Rendered(img, boxes, masks, scale)
