"""Hugging Face dataset cards: the README.md of a prepared folder (``datasets.load_dataset(<dir>)`` works alone,
with class names and one configuration per fold) and of an ``export-hf`` folder.

The dataset's facts (title, description, homepage, licence, citation) come from the registry
(:mod:`polypbench.datasets`), the class names from :mod:`polypbench.sizes`, the columns from :mod:`polypbench.schema`;
this module only lays them out. It imports neither ``datasets`` nor ``huggingface_hub`` (prepare runs without them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from polypbench import datasets as registry
from polypbench import schema
from polypbench.sizes import CLASS_SCHEMES

HF_DIR = "hf"
CLASS_NAMES: dict[str, tuple[str, ...]] = {"size_class3": CLASS_SCHEMES["triclass"],
                                           "size_class2": CLASS_SCHEMES["binary10"]}
"""Columns declared as ``ClassLabel`` features, with their names in label order."""
_DTYPES = {pa.string(): "string", pa.int8(): "int8", pa.int32(): "int32", pa.int64(): "int64",
           pa.float32(): "float32", pa.float64(): "float64"}

Feature = str | tuple[str, ...] | dict[str, Any]
"""A feature: a ``Value`` dtype (``"int32"``) or ``"image"``, class names (a ``ClassLabel``), or a fixed-length
list as its YAML entry (``{"list": "float32", "length": 4}``)."""


def feature_types(table: pa.Schema = schema.FRAMES) -> dict[str, Feature]:
    """Column -> feature of a manifest table: Arrow types as ``Value`` dtypes, :data:`CLASS_NAMES` as class names."""
    return {f.name: CLASS_NAMES.get(f.name, _DTYPES[f.type]) for f in table}


def features_yaml(types: Mapping[str, Feature]) -> list[dict[str, Any]]:
    """The ``dataset_info: features:`` list of a card (the form ``datasets.Features`` reads from YAML)."""
    out: list[dict[str, Any]] = []
    for name, kind in types.items():
        if isinstance(kind, tuple):
            out.append({"name": name, "dtype": {"class_label": {"names": {str(i): c for i, c in enumerate(kind)}}}})
        elif isinstance(kind, dict):
            out.append({"name": name, **kind})
        else:
            out.append({"name": name, "dtype": kind})
    return out


def fold_file(fold: int) -> str:
    """The prepared folder's Parquet file of the non-test rows of public fold ``fold``."""
    return f"{HF_DIR}/fold{fold}.parquet"


def fold_configs(folds: Sequence[int], files: Mapping[int, str | list[str]], test: str | list[str]) -> list[dict]:
    """``fold<k>`` configurations: validation = fold k, train = the other folds, test = ``test`` (the public
    cross-validation of ``load_split(..., fold=k)``). ``files``: fold -> its data file(s) or glob."""

    def listed(value: str | list[str]) -> list[str]:
        return [value] if isinstance(value, str) else list(value)

    configs = []
    for k in folds:
        train = [path for j in folds if j != k for path in listed(files[j])]
        configs.append({"config_name": f"fold{k}", "data_files": [
            {"split": "train", "path": train}, {"split": "validation", "path": files[k]},
            {"split": "test", "path": test}]})
    return configs


def licence_yaml(spec: registry.DatasetSpec) -> dict[str, str]:
    """``license`` (plus ``license_name`` and ``license_link`` for the owners' own terms) of a card."""
    if spec.licence != "other":
        return {"license": spec.licence}
    return {"license": "other", "license_name": f"{spec.name}-terms", "license_link": spec.homepage}


class _NoAliases(yaml.SafeDumper):
    """Repeated values written out in full (no ``&id001`` anchors: not every YAML reader of the Hub takes them)."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 - yaml's hook: no value is ever an alias
        return True


def front_matter(meta: Mapping[str, Any]) -> str:
    """The YAML header of a card."""
    text = yaml.dump(dict(meta), Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{text}---\n"


def facts(spec: registry.DatasetSpec) -> str:
    """The Markdown sections every card of ``spec`` carries: description, homepage, licence, citation."""
    return f"""{spec.description}

- Homepage: {spec.homepage}
- Licence: `{spec.licence}`. {spec.licence_terms}

## Citation
Cite the dataset's own paper(s) whenever you use it:
```bibtex
{spec.citation.strip()}
```
"""


def dataset_card(spec: registry.DatasetSpec, provenance: Mapping[str, str], split_rows: dict[str, int],
                 fold_rows: Mapping[int, int] | None = None, raw_root: str | Path | None = None) -> str:
    """README.md of a prepared folder: YAML ``configs:`` (``default``: the published split's files under ``hf/``;
    ``fold<k>``: the public cross-validation folds of ``fold_rows`` with rows), ``dataset_info`` features with
    class names, the licence; then the dataset's facts, how to find each row's frame, and the counts.
    ``provenance``: the manifest's :meth:`~polypbench.manifest.Manifest.provenance`."""
    fold_rows = dict(fold_rows or {})
    folds = sorted(k for k, n in fold_rows.items() if n > 0)
    default = {"config_name": "default", "default": True, "data_files": [
        {"split": split, "path": f"{HF_DIR}/{split}.parquet"} for split, n in split_rows.items() if n > 0]}
    test = f"{HF_DIR}/test.parquet"
    configs = [default, *fold_configs(folds, {k: fold_file(k) for k in folds}, test if split_rows.get("test") else [])]
    for config in configs:  # a config never names an empty file (no rows: no split)
        config["data_files"] = [f for f in config["data_files"] if f["path"]]
    features = features_yaml(feature_types())
    meta = {
        "pretty_name": f"{spec.title} (polypbench manifest)",
        **licence_yaml(spec),
        "tags": ["medical", "colonoscopy", "polyp-size"],
        "configs": configs,
        "dataset_info": [{"config_name": c["config_name"], "features": features} for c in configs],
    }
    counts = ", ".join(f"{split} {n}" for split, n in split_rows.items())
    fold_counts = ", ".join(f"fold{k} {fold_rows[k]}" for k in folds) or "none"
    root = f"`{raw_root}` on the machine that prepared it" if raw_root else "recorded in `frames.parquet`"
    version = provenance["polypbench_version"]
    return front_matter(meta) + f"""# {spec.title}: polypbench manifest

{facts(spec)}
## What is here
One row per annotated polyp box (a frame with two polyps has two rows), written by `polypbench prepare`
{version}; columns and their meaning: polypbench docs/manifest.md. `size_class3` is a `ClassLabel`
({", ".join(CLASS_NAMES["size_class3"])}), `size_class2` one of ({", ".join(CLASS_NAMES["size_class2"])}).

- Split: polypbench public split {provenance["split_version"]} (sha256 {provenance["split_sha256"]}), assigned per
  patient; the paper's per-object folds: sha256 {provenance["paper_split_sha256"]}.
- Rows per split: {counts}. Non-test rows per fold: {fold_counts}.
- Configurations: `default` (the published train / validation / test) and `fold0`..`fold{max(folds, default=0)}`:
  validation is fold k, train the other non-test folds, test unchanged (the public cross-validation).
- Files: `frames.parquet` (every row), `polyps.parquet` (one row per polyp), `hf/<split>.parquet` and
  `hf/fold<k>.parquet` (the same rows by split and by fold, for `datasets.load_dataset`).

## Finding the images
The frames are not in this folder. `frame_path` is relative to the root of the raw {spec.title} dump as its
owners distribute it ({root}; the Parquet key `polypbench.raw_root` holds it too). The box is `xmin, ymin, xmax,
ymax` in frame pixels, `xmax` and `ymax` exclusive.
```python
from pathlib import Path
import datasets
from PIL import Image

ds = datasets.load_dataset("<this folder>")                    # or "<this folder>", "fold0"; no polypbench needed
row = ds["train"][0]
frame = Image.open(Path("<raw root>") / row["frame_path"])
polyp = frame.crop((row["xmin"], row["ymin"], row["xmax"], row["ymax"]))
label = ds["train"].features["size_class3"].int2str(row["size_class3"])   # "diminutive", "small" or "large"
```
With polypbench, `polypbench.load_split("<this folder>", "train", raw_root="<raw root>")` (torch) and
`polypbench.load_hf(..., raw_root=...)` (Hugging Face) hand out the crops the models see; `polypbench export-hf`
writes a dataset with the crops embedded, where the licence allows it.
"""
