"""Surveillance intervals: the one file that holds the guidelines' rule tables (docs/scoring.md, "Surveillance").

A guideline maps the polyps found at a colonoscopy (their number, histology and whether they are >= 10 mm) to the
interval until the next one. polypbench assigns each patient the interval once from the true sizes and once from
the predicted sizes (the same polyps, the same histology) and scores how often they agree, and how often the
predicted interval is *later* (longer: the patient would come back too late, the unsafe error) or *earlier*.

Rule tables, each row as written in its guideline (the text in :attr:`Rule.finding`):

- **USMSTF 2020**: Gupta S, Lieberman D, Anderson JC, et al. Recommendations for follow-up after colonoscopy and
  polypectomy: a consensus update by the US Multi-Society Task Force on Colorectal Cancer. Gastroenterology
  2020;158:1131-1153.e5, doi:10.1053/j.gastro.2019.10.026 (also Gastrointest Endosc 2020;91:463-485 and Am J
  Gastroenterol 2020;115:415-434): the table of recommendations for normal colonoscopy and adenomas, and the table
  for serrated polyps. "Favoring the shortest indicated interval": a patient's interval is the shortest of the rows
  that match.
- **ESGE 2020**: Hassan C, Antonelli G, Dumonceau JM, et al. Post-polypectomy colonoscopy surveillance: European
  Society of Gastrointestinal Endoscopy (ESGE) Guideline - Update 2020. Endoscopy 2020;52:687-700,
  doi:10.1055/a-1185-3109: main recommendations 1 (1-4 adenomas < 10 mm with low-grade dysplasia irrespective of
  villous components, or serrated polyps < 10 mm without dysplasia: no surveillance, back to screening, or
  colonoscopy at 10 years without organised screening; written here as 10 years) and 2 (3 years after at least one
  adenoma >= 10 mm or with high-grade dysplasia, >= 5 adenomas, or any serrated polyp >= 10 mm or with dysplasia).
  ESGE's "serrated polyp" covers hyperplastic polyps, sessile serrated lesions and traditional serrated adenomas.

Not applied: the rows for piecemeal resection of lesions >= 20 mm (USMSTF 6 months, ESGE 3-6 months): the
datasets do not record how a polyp was resected. Outside both tables (the patient is not scored, and counted):
cancer (USMSTF: "do not apply to ... malignant polyp"), and a patient no row covers (e.g. more than 20 small
hyperplastic polyps under USMSTF, serrated polyposis).

Histology comes from the manifest's ``histology`` column (:data:`HISTOLOGY`). **Assumption** where it is missing
or not in that vocabulary: the polyp is a tubular adenoma with low-grade dysplasia (the commonest neoplastic polyp,
and one whose interval depends on its size); the patients with such a polyp are counted in the result.
A benchmark's patient has only the polyps its dataset annotated, so the interval is that of those polyps alone.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from polypbench.sizes import size_class2


class Kind(str, enum.Enum):
    """A polyp's histology as the guidelines' rows distinguish it."""

    ADENOMA = "adenoma"
    """Tubular adenoma with low-grade dysplasia."""
    ADENOMA_VILLOUS = "adenoma_villous"
    """Tubulovillous or villous adenoma (USMSTF: advanced; ESGE 2020: counted as a low-grade adenoma)."""
    ADENOMA_HGD = "adenoma_hgd"
    """Adenoma with high-grade dysplasia."""
    SSL = "ssl"
    """Sessile serrated lesion (polyp, adenoma) without dysplasia."""
    SSL_DYSPLASIA = "ssl_dysplasia"
    """Sessile serrated lesion with dysplasia."""
    TSA = "tsa"
    """Traditional serrated adenoma (dysplastic by definition: ESGE's 'serrated polyp with dysplasia')."""
    HP = "hp"
    """Hyperplastic polyp."""
    NON_NEOPLASTIC = "non_neoplastic"
    """Not an adenoma or a serrated polyp (normal or regenerating mucosa, a fibrous anal polyp): no row counts it."""
    CANCER = "cancer"
    """Invasive cancer: outside both tables, the patient is not scored."""

    def __str__(self) -> str:
        return self.value


ADENOMAS = frozenset({Kind.ADENOMA, Kind.ADENOMA_VILLOUS, Kind.ADENOMA_HGD})
SSLS = frozenset({Kind.SSL, Kind.SSL_DYSPLASIA})
SERRATED = frozenset({*SSLS, Kind.TSA, Kind.HP})
ADENOMA_OR_SERRATED = frozenset({*ADENOMAS, *SERRATED})

ASSUMED = Kind.ADENOMA
"""The kind given to a polyp whose histology is missing or not in :data:`HISTOLOGY`."""
ASSUMPTION = ("histology missing or not in the vocabulary: assumed a tubular adenoma with low-grade dysplasia "
              "(the commonest neoplastic polyp, one whose interval depends on its size)")

HISTOLOGY: dict[str, Kind] = {
    # REAL-Colon's histology_class
    "ad": Kind.ADENOMA, "hp": Kind.HP, "ssl": Kind.SSL, "tsa": Kind.TSA, "no polyp": Kind.NON_NEOPLASTIC,
    "other": Kind.NON_NEOPLASTIC,  # REAL-Colon's OTHER: a fibrous anal polyp in the shipped lesion table
    # SUN's pathology (Table 2 of the SUN database)
    "low-grade adenoma": Kind.ADENOMA, "high-grade adenoma": Kind.ADENOMA_HGD, "hyperplastic polyp": Kind.HP,
    "sessile serrated lesion": Kind.SSL, "traditional serrated adenoma": Kind.TSA,
    "invasive cancer (t1b)": Kind.CANCER,
    # plain names
    "adenoma": Kind.ADENOMA, "tubular adenoma": Kind.ADENOMA, "tubulovillous adenoma": Kind.ADENOMA_VILLOUS,
    "villous adenoma": Kind.ADENOMA_VILLOUS, "adenoma with high-grade dysplasia": Kind.ADENOMA_HGD,
    "sessile serrated adenoma": Kind.SSL, "sessile serrated polyp": Kind.SSL,
    "sessile serrated lesion with dysplasia": Kind.SSL_DYSPLASIA, "cancer": Kind.CANCER,
    "adenocarcinoma": Kind.CANCER,
}
"""The manifest's ``histology`` text (lower case, spaces collapsed) -> its :class:`Kind`."""


def kind_of(histology: object) -> Kind | None:
    """The :class:`Kind` of a manifest histology text; None where it is missing or unknown (then :data:`ASSUMED`)."""
    if histology is None or (isinstance(histology, float) and math.isnan(histology)):
        return None
    return HISTOLOGY.get(" ".join(str(histology).lower().split()))


@dataclass(frozen=True, order=True)
class Interval:
    """A recommended interval in years, ``low`` to ``high`` (equal for a single value). Intervals are ordered by
    (low, high): 1 < 3 < 3-5 < 5-10 < 7-10 < 10 years, so 'later' and 'earlier' are well defined."""

    low: float
    high: float

    @property
    def label(self) -> str:
        """``3 y``, ``7-10 y``."""
        return f"{self.low:g} y" if self.low == self.high else f"{self.low:g}-{self.high:g} y"


def years(low: float, high: float | None = None) -> Interval:
    return Interval(low, low if high is None else high)


@dataclass(frozen=True)
class Rule:
    """One row of a guideline: it matches a patient when the number of polyps of the ``counted`` kinds lies in
    ``count`` (inclusive; None: no upper bound) and ``size`` holds for them (``"<10"``: every one < 10 mm; ``">=10"``:
    at least one >= 10 mm; None: no condition)."""

    finding: str
    counted: frozenset[Kind]
    count: tuple[int, int | None]
    size: str | None
    interval: Interval

    def matches(self, kinds: Sequence[Kind], large: Sequence[bool] | np.ndarray) -> bool:
        sel = [big for k, big in zip(kinds, large, strict=True) if k in self.counted]
        lo, hi = self.count
        if len(sel) < lo or (hi is not None and len(sel) > hi):
            return False
        if self.size == "<10":
            return not any(sel)
        if self.size == ">=10":
            return any(sel)
        return True


@dataclass(frozen=True)
class Guideline:
    """A rule table: its key (part of the metric names), title, citation and rows."""

    key: str
    title: str
    citation: str
    rows: tuple[Rule, ...]

    @property
    def intervals(self) -> tuple[Interval, ...]:
        """Its distinct intervals, shortest first."""
        return tuple(sorted({r.interval for r in self.rows}))

    def assign(self, kinds: Sequence[Kind], large: Sequence[bool] | np.ndarray) -> Rule | None:
        """The deciding row for one patient's polyps: the matching row with the shortest interval (the first
        such row in table order), None when no row matches or a polyp is a cancer (outside the table)."""
        if Kind.CANCER in kinds:
            return None
        found = [r for r in self.rows if r.matches(kinds, large)]
        return min(found, key=lambda r: r.interval) if found else None


_ANY = (1, None)
USMSTF_2020 = Guideline(
    "usmstf2020", "USMSTF 2020",
    "Gupta S, et al. Recommendations for follow-up after colonoscopy and polypectomy: a consensus update by the US "
    "Multi-Society Task Force on Colorectal Cancer. Gastroenterology 2020;158:1131-1153. "
    "doi:10.1053/j.gastro.2019.10.026",
    (
        Rule("normal colonoscopy (no adenoma or serrated polyp)", ADENOMA_OR_SERRATED, (0, 0), None, years(10)),
        Rule("1-2 tubular adenomas < 10 mm", ADENOMAS, (1, 2), "<10", years(7, 10)),
        Rule("3-4 tubular adenomas < 10 mm", ADENOMAS, (3, 4), "<10", years(3, 5)),
        Rule("5-10 tubular adenomas < 10 mm", ADENOMAS, (5, 10), "<10", years(3)),
        Rule("adenoma >= 10 mm", ADENOMAS, _ANY, ">=10", years(3)),
        Rule("adenoma with tubulovillous or villous histology", frozenset({Kind.ADENOMA_VILLOUS}), _ANY, None,
             years(3)),
        Rule("adenoma with high-grade dysplasia", frozenset({Kind.ADENOMA_HGD}), _ANY, None, years(3)),
        Rule("> 10 adenomas", ADENOMAS, (11, None), None, years(1)),
        Rule("<= 20 hyperplastic polyps < 10 mm (rectosigmoid or proximal)", frozenset({Kind.HP}), (1, 20), "<10",
             years(10)),
        Rule("hyperplastic polyp >= 10 mm", frozenset({Kind.HP}), _ANY, ">=10", years(3, 5)),
        Rule("1-2 sessile serrated lesions < 10 mm", SSLS, (1, 2), "<10", years(5, 10)),
        Rule("3-4 sessile serrated lesions < 10 mm", SSLS, (3, 4), "<10", years(3, 5)),
        # the table's row is 5-10; above 10 it is applied too (serrated polyposis is outside the benchmark)
        Rule("5-10 sessile serrated lesions < 10 mm", SSLS, (5, None), "<10", years(3)),
        Rule("sessile serrated lesion >= 10 mm", SSLS, _ANY, ">=10", years(3)),
        Rule("sessile serrated lesion with dysplasia", frozenset({Kind.SSL_DYSPLASIA}), _ANY, None, years(3)),
        Rule("traditional serrated adenoma", frozenset({Kind.TSA}), _ANY, None, years(3)),
    ),
)
"""USMSTF 2020 (module docstring)."""

ESGE_2020 = Guideline(
    "esge2020", "ESGE 2020",
    "Hassan C, et al. Post-polypectomy colonoscopy surveillance: European Society of Gastrointestinal Endoscopy "
    "(ESGE) Guideline - Update 2020. Endoscopy 2020;52:687-700. doi:10.1055/a-1185-3109",
    (
        Rule("no adenoma or serrated polyp: screening (10 y)", ADENOMA_OR_SERRATED, (0, 0), None, years(10)),
        Rule("1-4 adenomas < 10 mm with low-grade dysplasia, irrespective of villous components: back to "
             "screening (10 y)", ADENOMAS, (1, 4), "<10", years(10)),
        Rule("serrated polyps < 10 mm without dysplasia: back to screening (10 y)", SERRATED, _ANY, "<10",
             years(10)),
        Rule("adenoma >= 10 mm", ADENOMAS, _ANY, ">=10", years(3)),
        Rule("adenoma with high-grade dysplasia", frozenset({Kind.ADENOMA_HGD}), _ANY, None, years(3)),
        Rule(">= 5 adenomas", ADENOMAS, (5, None), None, years(3)),
        Rule("serrated polyp >= 10 mm", SERRATED, _ANY, ">=10", years(3)),
        Rule("serrated polyp with dysplasia", frozenset({Kind.SSL_DYSPLASIA, Kind.TSA}), _ANY, None, years(3)),
    ),
)
"""ESGE 2020 (module docstring)."""

GUIDELINES: tuple[Guideline, ...] = (USMSTF_2020, ESGE_2020)
"""The rule sets scored, in display order (the first is the board's)."""

OUTCOMES = ("agreement", "later", "earlier")
"""Per guideline, the share of scored patients whose predicted interval equals the true one, is longer (later:
the unsafe error) or shorter."""
SURVEILLANCE_METRICS = tuple(f"{g.key}_{o}" for g in GUIDELINES for o in OUTCOMES)
"""The metric names under task ``surveillance``: ``usmstf2020_agreement``, ``usmstf2020_later``, ..."""


@dataclass(frozen=True)
class Assigned:
    """Per patient (P,): the interval's rank among the guideline's :attr:`~Guideline.intervals` from the true and
    from the predicted sizes (-1: not scored), and whether the interval depends on size at all."""

    true: np.ndarray
    pred: np.ndarray
    size_sensitive: np.ndarray

    @property
    def scored(self) -> np.ndarray:
        return self.true >= 0


def _rank(guideline: Guideline, rule: Rule | None) -> int:
    return -1 if rule is None else guideline.intervals.index(rule.interval)


def assign(guideline: Guideline, patient: np.ndarray, kinds: Sequence[Kind], true_mm: np.ndarray,
           pred_large: np.ndarray, n_patients: int) -> Assigned:
    """Each patient's interval from the true sizes and from the predicted size classes (``pred_large``: the
    polyp predicted >= 10 mm), polyps given by their ``patient`` code (0..n_patients-1) and :class:`Kind`."""
    true_large = size_class2(true_mm).astype(bool)
    pred_large = np.asarray(pred_large, dtype=bool)
    order = np.argsort(patient, kind="stable")
    bounds = np.searchsorted(patient[order], np.arange(n_patients + 1))
    out = np.full((3, n_patients), -1, dtype=np.int64)
    sensitive = np.zeros(n_patients, dtype=bool)
    for p in range(n_patients):
        idx = order[bounds[p]:bounds[p + 1]]
        k = [kinds[i] for i in idx]
        out[0, p] = _rank(guideline, guideline.assign(k, true_large[idx]))
        out[1, p] = _rank(guideline, guideline.assign(k, pred_large[idx]))
        none, every = (guideline.assign(k, np.full(len(k), v)) for v in (False, True))
        sensitive[p] = none is not None and every is not None and none.interval != every.interval
    if (out[0] < 0).any() or (out[1] < 0).any():  # not scored is the same on both sides (histology decides it)
        out[:, (out[0] < 0) | (out[1] < 0)] = -1
    return Assigned(out[0], out[1], sensitive)


def outcomes(a: Assigned) -> dict[str, np.ndarray]:
    """Per patient 0/1: ``agreement``, ``later``, ``earlier`` (0 where not scored) and ``scored``."""
    scored = a.scored
    return {"agreement": (scored & (a.pred == a.true)).astype(np.float64),
            "later": (scored & (a.pred > a.true)).astype(np.float64),
            "earlier": (scored & (a.pred < a.true)).astype(np.float64),
            "scored": scored.astype(np.float64)}
