"""The dataset registry: every fact about a supported dataset lives in its one :class:`DatasetSpec` entry.

The CLI's choices, ``prepare``, ``synth``, the split files, ``splits show``/``generate``, the demo, the Hugging Face
dataset card and the tests all read this table. Adding a dataset is a converter, a synthetic writer and one entry
here (docs/adding_a_dataset.md).

Code is named by ``"module:attribute"`` strings and imported on first use, so that reading the registry (``--help``,
a worker process) imports neither the converters nor scikit-learn.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polypbench.errors import choice_error

if TYPE_CHECKING:
    import pandas as pd

    from polypbench.prepare.base import Converter
    from polypbench.synth.common import Writer


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: where its code lives, which split file it uses, and what a user must know to use it."""

    name: str
    """The name on the command line, in manifests' ``dataset`` column and as the prefix of ``polyp_id``."""
    title: str
    description: str
    homepage: str
    licence: str
    """The licence's Hugging Face identifier (``other``: the owners' own terms, in ``licence_terms``)."""
    licence_terms: str
    """What the licence allows, in one sentence (dataset cards state it)."""
    citation: str
    """BibTeX of the paper(s) to cite."""
    redistribute_frames: bool
    """Whether the licence allows redistributing the frames (an export with embedded images)."""
    converter: str
    """``module:Class`` of the :class:`~polypbench.prepare.base.Converter`."""
    synth: str | None
    """``module:function`` writing a synthetic dump in the exact raw layout (``None``: no generator)."""
    split_file: str
    """Folder of its published split under ``split_manifests/`` (datasets over the same patients share one)."""
    split_generator: str | None = None
    """``module:function`` generating the split file; only the dataset that owns the file names one."""
    catalog: str | None = None
    """``module:function`` returning the public metadata's polyps (``patient_id``, ``size_mm``) for split counts."""
    same_polyps_as: str | None = None
    """The dataset whose polyps this one re-annotates (SUN-SEG: SUN): never pooled with it."""
    aliases: tuple[str, ...] = field(default=())
    """Other names of the same dataset (``misawa``: SUN cited through its journal paper)."""

    def converter_class(self) -> type[Converter]:
        cls: type[Converter] = _resolve(self.converter)
        return cls

    def synth_writer(self) -> Writer:
        if self.synth is None:
            raise choice_error("dataset with a synthetic generator", self.name, synth_names())
        writer: Writer = _resolve(self.synth)
        return writer

    def generate_split(self) -> pd.DataFrame:
        """Generate this dataset's published split table (``patient_id``, ``split``, ``fold``) from public ids."""
        if self.split_generator is None:
            raise choice_error("dataset that owns a split file", self.name, [s.name for s in split_owners()])
        table: pd.DataFrame = _resolve(self.split_generator)()
        return table

    def catalog_polyps(self) -> pd.DataFrame:
        """The polyps of the shipped public metadata: ``patient_id``, ``size_mm`` (one row per polyp)."""
        owner = get(self.same_polyps_as) if self.same_polyps_as else self
        if owner.catalog is None:
            raise choice_error("dataset with shipped metadata", self.name, [s.name for s in SPECS if s.catalog])
        frame: pd.DataFrame = _resolve(owner.catalog)()
        return frame


_BIB_REAL_COLON = """@article{biffi2024realcolon,
  title   = {{REAL-Colon}: A dataset for developing real-world {AI} applications in colonoscopy},
  author  = {Biffi, Carlo and Antonelli, Giulio and Bernhofer, Sebastian and Hassan, Cesare and Hirata, Daizen
             and Iwatate, Mineo and Maieron, Andreas and Salvagnini, Pietro and Cherubini, Andrea},
  journal = {Scientific Data},
  volume  = {11},
  pages   = {539},
  year    = {2024},
  doi     = {10.1038/s41597-024-03359-0}
}"""

_BIB_SUN = """@article{misawa2021sun,
  title   = {Development of a computer-aided detection system for colonoscopy and a publicly accessible large
             colonoscopy video database (with video)},
  author  = {Misawa, Masashi and Kudo, Shin-ei and Mori, Yuichi and others},
  journal = {Gastrointestinal Endoscopy},
  volume  = {93},
  number  = {4},
  pages   = {960--967.e3},
  year    = {2021},
  doi     = {10.1016/j.gie.2020.07.060}
}"""

_BIB_SUN_SEG = """@article{ji2022sunseg,
  title   = {Video Polyp Segmentation: A Deep Learning Perspective},
  author  = {Ji, Ge-Peng and Xiao, Guobao and Chou, Yu-Cheng and Fan, Deng-Ping and Zhao, Kai and Chen, Geng
             and Van Gool, Luc},
  journal = {Machine Intelligence Research},
  volume  = {19},
  number  = {6},
  pages   = {531--549},
  year    = {2022}
}
""" + _BIB_SUN

SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="real-colon",
        title="REAL-Colon",
        description="60 full colonoscopy videos from 4 studies (2.76 M frames, 351,264 boxes of 132 lesions) with "
                    "per-lesion size in mm, site and histology.",
        homepage="https://github.com/cosmoimd/real-colon-dataset",
        licence="cc-by-nc-sa-4.0",
        licence_terms="CC BY-NC-SA 4.0: attribution, non-commercial use only, derivatives under the same licence.",
        citation=_BIB_REAL_COLON,
        redistribute_frames=True,
        converter="polypbench.prepare.real_colon:RealColonConverter",
        synth="polypbench.synth.real_colon:write",
        split_file="real-colon",
        split_generator="polypbench.splits.public:real_colon_split",
        catalog="polypbench.catalog:real_colon_polyps",
    ),
    DatasetSpec(
        name="sun",
        title="SUN Colonoscopy Video Database",
        description="100 positive cases (one polyp each, 49,136 annotated frames) from Showa University Northern "
                    "Yokohama Hospital, with size, shape, location and pathology per case.",
        homepage="http://amed8k.sundatabase.org",
        licence="other",
        licence_terms="The SUN database's terms: non-commercial research use only; the frames may not be "
                      "redistributed.",
        citation=_BIB_SUN,
        redistribute_frames=False,
        converter="polypbench.prepare.sun:SunConverter",
        synth="polypbench.synth.sun:write",
        split_file="sun",
        split_generator="polypbench.splits.public:sun_split",
        catalog="polypbench.catalog:sun_polyps",
        aliases=("misawa",),
    ),
    DatasetSpec(
        name="sun-seg",
        title="SUN-SEG",
        description="The SUN database's 100 positive cases re-organized into 285 clips with boxes and masks; "
                    "sizes come from SUN's case table.",
        homepage="https://github.com/GewelsJI/VPS",
        licence="other",
        licence_terms="SUN-SEG re-annotates the SUN database, under SUN's terms: non-commercial research use only; "
                      "the frames may not be redistributed.",
        citation=_BIB_SUN_SEG,
        redistribute_frames=False,
        converter="polypbench.prepare.sun_seg:SunSegConverter",
        synth="polypbench.synth.sun_seg:write",
        split_file="sun",
        same_polyps_as="sun",
    ),
)
"""Every supported dataset, in the order the CLI lists them."""

_BY_NAME = {spec.name: spec for spec in SPECS}
ALIASES: dict[str, str] = {alias: spec.name for spec in SPECS for alias in spec.aliases}
"""Alias -> the registered name it stands for."""


def names(*, aliases: bool = True) -> tuple[str, ...]:
    """Dataset names accepted on the command line (registered names, then aliases)."""
    return tuple(_BY_NAME) + (tuple(ALIASES) if aliases else ())


def synth_names() -> tuple[str, ...]:
    """Datasets with a synthetic generator."""
    return tuple(spec.name for spec in SPECS if spec.synth is not None)


def canonical(name: str) -> str:
    """The registered name of ``name`` (an alias maps to its dataset); unknown names fail listing the valid ones."""
    if name in _BY_NAME:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise choice_error("dataset", name, names())


def get(name: str) -> DatasetSpec:
    """The spec of ``name`` (a registered name or an alias)."""
    return _BY_NAME[canonical(name)]


def spec_of(dataset: str | DatasetSpec) -> DatasetSpec:
    """``dataset`` itself when it is a spec already (resolved once by the caller and passed down), else its spec."""
    return dataset if isinstance(dataset, DatasetSpec) else get(dataset)


def split_owners() -> tuple[DatasetSpec, ...]:
    """The datasets that own a split file (and generate it)."""
    return tuple(spec for spec in SPECS if spec.split_generator is not None)


def independent_names() -> tuple[str, ...]:
    """Datasets with polyps of their own (pooling them never counts a polyp twice), e.g. for training together."""
    return tuple(spec.name for spec in SPECS if spec.same_polyps_as is None)
