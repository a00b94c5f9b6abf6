"""SUN image names and frame sizes, shared by the SUN and SUN-SEG writers so both dumps name the same frames
the same way for a given seed (SUN-SEG is a re-annotation of the SUN frames)."""

from __future__ import annotations

from dataclasses import dataclass

from polypbench.synth.common import rng_for

# Publicly quoted name prefixes (formats.md 2.2/2.3): reproduced for these cases, random for the others.
KNOWN_PREFIXES: dict[int, tuple[str, tuple[int, ...]]] = {
    1: ("case_M_20181001100941_0U62372100109341_1_005_001-1", (2, 10)),
    2: ("case_M_20181003094031_0U62363100354631_1_001_002-1", (1, 2)),
    15: ("case_M_20190131094104_0U62367013193703_1_003_001-1", (7, 8)),
}
WIDE_CASES = frozenset({7, 23, 46, 68, 91})
"""Cases written at 1240x1080 (an arbitrary, fixed few); every other case is 1158x1008 like case 1."""


@dataclass(frozen=True)
class CaseFrames:
    """The frames of one case: a shared name prefix, its size, and (segment, image number) per frame, where
    image numbers restart at 0001 in every acquisition segment as in the real archive."""

    case_id: int
    prefix: str
    width: int
    height: int
    frames: tuple[tuple[int, int], ...]

    def name(self, segment: int, number: int) -> str:
        """``case_M_<time>_<id>_1_<nnn>_<nnn>-1_a<segment>_ayy_image<NNNN>.jpg``."""
        return f"{self.prefix}_a{segment}_ayy_image{number:04d}.jpg"

    @property
    def names(self) -> list[str]:
        return [self.name(s, n) for s, n in self.frames]


def _random_prefix(case_id: int, seed: int, kind: str) -> tuple[str, tuple[int, ...]]:
    rng = rng_for(seed, "sun-names", kind, str(case_id))
    year = int(rng.integers(2018, 2020))
    stamp = (f"{year}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
             f"{int(rng.integers(8, 18)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}")
    scope = "0U6" + "".join(str(d) for d in rng.integers(0, 10, 13))
    prefix = f"case_M_{stamp}_{scope}_1_{int(rng.integers(1, 10)):03d}_{int(rng.integers(1, 4)):03d}-1"
    n_segments = int(rng.integers(2, 4))
    segments = tuple(sorted(int(s) for s in rng.choice(range(1, 13), size=n_segments, replace=False)))
    return prefix, segments


def case_frames(case_id: int, n_frames: int, seed: int, *, negative: bool = False) -> CaseFrames:
    """Names and size of ``n_frames`` frames of SUN case ``case_id``, spread round-robin over at least two
    segments (when there are two frames or more); ``negative`` names the SUN-Negative case of that number."""
    kind = "negative" if negative else "positive"
    if not negative and case_id in KNOWN_PREFIXES:
        prefix, segments = KNOWN_PREFIXES[case_id]
    else:
        prefix, segments = _random_prefix(case_id, seed, kind)
    counts = dict.fromkeys(segments, 0)
    frames = []
    for i in range(n_frames):
        segment = segments[i % len(segments)]
        counts[segment] += 1
        frames.append((segment, counts[segment]))
    frames.sort()
    width, height = (1240, 1080) if case_id in WIDE_CASES and not negative else (1158, 1008)
    return CaseFrames(case_id, prefix, width, height, tuple(frames))
