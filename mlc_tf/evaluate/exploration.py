"""What a corpus holds before training: label counts, empty label sets, co-occurrence, image
formats, rule violations; and, given out-of-fold predictions, how noisy each label looks.

Image statistics come from each file's header (PIL opens lazily, no pixel
decoding), once, up front: this is an audit, not the training pipeline. A
source without image files (TFDS records) gets the label statistics only.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os

import numpy as np
import pandas as pd
from PIL import Image

from mlc_tf import atomic_files, markdown
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.evaluate import label_health, plots

# PIL modes of single-channel files (8/16/32-bit gray, 1-bit, gray with alpha).
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


@dataclasses.dataclass
class Exploration:
  """Corpus statistics; ``to_dict`` is the JSON form, ``to_markdown`` the tables."""

  num_images: int
  label_counts: pd.Series           # label -> images carrying it, most frequent first
  labels_per_image: pd.Series       # number of labels -> images
  cooccurrence: pd.DataFrame        # label x label -> images carrying both (diagonal: label counts)
  grayscale_images: int | None     # None: the source has no image files to look at
  image_sizes: pd.Series            # "WxH" -> images, most frequent first
  unreadable: list[str]             # files whose header could not be read
  rule_violations: dict[str, list[int]]  # "baby=>people" -> ids with baby but not people
  # label_health.label_health of out-of-fold predictions, and how many images they cover; None
  # when none were given
  label_health: pd.DataFrame | None = None
  health_images: int = 0

  @property
  def no_label_images(self) -> int:
    """Counts the images with no label."""
    return int(self.labels_per_image.get(0, 0))

  def to_dict(self) -> dict:
    """Returns the statistics as a JSON-ready dict."""
    return {
        "num_images": self.num_images,
        "no_label_images": self.no_label_images,
        "label_counts": {k: int(v) for k, v in self.label_counts.items()},
        "labels_per_image": {int(k): int(v) for k, v in self.labels_per_image.items()},
        "cooccurrence": {row: {col: int(v) for col, v in values.items()}
                         for row, values in self.cooccurrence.to_dict(orient="index").items()},
        "grayscale_images": self.grayscale_images,
        "image_sizes": {k: int(v) for k, v in self.image_sizes.items()},
        "unreadable": self.unreadable,
        "rule_violations": self.rule_violations,
        "label_health": None if self.label_health is None else {
            "images": self.health_images,
            "labels": json.loads(self.label_health.to_json(orient="records"))},
    }

  def to_markdown(self) -> str:
    """Formats the statistics as Markdown tables."""
    n = self.num_images

    def share(count: int) -> str:
      return f"{100 * count / n:.1f} %"

    files = (
        "image files: not available from this source" if self.grayscale_images is None else
        f"grayscale (single-channel): {self.grayscale_images} ({share(self.grayscale_images)}); "
        f"unreadable: {len(self.unreadable)}")
    lines = [
        f"Images: {n}; with no label: {self.no_label_images} "
        f"({share(self.no_label_images)}); {files}",
        "", *markdown.table(
            ["label", "images", "share"],
            [[label, count, share(count)] for label, count in self.label_counts.items()])
    ]
    lines += [
        "",
        *markdown.table(["labels per image", "images"], self.labels_per_image.items(), align="rr")
    ]
    names = list(self.cooccurrence.index)
    lines += [
        "", "Co-occurrence (images carrying both labels):", "", *markdown.table(
            ["", *names], [[row, *(int(v) for v in self.cooccurrence.loc[row])] for row in names])
    ]
    if len(self.image_sizes):
      sizes = ", ".join(f"{size}: {count}" for size, count in self.image_sizes.head(5).items())
      lines += ["", f"Image sizes (most frequent of {len(self.image_sizes)}): {sizes}"]
    if self.rule_violations:
      lines += ["", *markdown.table(["rule", "violations", "example ids"],
                                    [[rule, len(ids), ", ".join(map(str, ids[:10]))]
                                     for rule, ids in self.rule_violations.items()], align="lrl")]
    if self.unreadable:
      lines += ["", f"Unreadable files: {', '.join(self.unreadable[:10])}"]
    if self.label_health is not None:
      lines += ["", *label_health.health_markdown(self.label_health, self.health_images)]
    return "\n".join(lines)


def _header(path: str) -> tuple[str, tuple[int, int]] | None:
  """(PIL mode, (width, height)) from the file header, or None when it is not a readable image."""
  try:
    with Image.open(path) as image:
      return image.mode, image.size
  except OSError:
    return None


def explore(frame: pd.DataFrame, rules: list[tuple[str, str]] = (),
            oof: pd.DataFrame | None = None) -> Exploration:
  """Computes statistics of a label frame (``mlc_tf.data.corpus`` layout) and of its image files.

  ``rules``: label implications (``label_rules.parse_implications``) whose violations are counted.
  ``oof``: out-of-fold predictions of this corpus (``crossval.read_oof``) for the label health
  table; it judges the labels as cross-validation saw them (the frame's own columns).
  """
  names = corpus_lib.label_columns(frame)
  for rule in rules:
    unknown = [label for label in rule if label not in names]
    if unknown:
      raise ValueError(
          f"rule {rule[0]}=>{rule[1]} names label(s) {unknown} that the corpus does not have")
  targets = frame[names].to_numpy().astype(np.int64)
  counts = pd.Series(targets.sum(axis=0), index=names).sort_values(ascending=False, kind="stable")
  per_image = pd.Series(targets.sum(axis=1)).value_counts().sort_index()
  cooccurrence = pd.DataFrame(targets.T @ targets, index=names, columns=names)
  has_files = corpus_lib.PATH_COLUMN in frame
  grayscale, sizes, unreadable = (0 if has_files else None), collections.Counter(), []
  for path in frame[corpus_lib.PATH_COLUMN] if has_files else []:
    header = _header(path)
    if header is None:
      unreadable.append(os.path.basename(path))
      continue
    mode, (width, height) = header
    grayscale += mode in GRAYSCALE_MODES
    sizes[f"{width}x{height}"] += 1
  violations = {f"{a}=>{b}": [int(i) for i in frame.index[(frame[a] == 1) & (frame[b] == 0)]]
                for a, b in rules}
  return Exploration(len(frame), counts, per_image, cooccurrence, grayscale,
                     pd.Series(dict(sizes.most_common()), dtype=int), unreadable, violations,
                     None if oof is None else _label_health(oof, frame, names),
                     0 if oof is None else len(oof))


def _label_health(oof: pd.DataFrame, frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
  """The health table of out-of-fold predictions, once they are known to be of this corpus."""
  oof_names = label_health.oof_labels(oof)
  if not oof_names:
    raise ValueError("the out-of-fold predictions have no prob_<label> column: not an "
                     "oof_predictions.csv that mlc-cv wrote")
  foreign = [name for name in oof_names if name not in names]
  unknown = oof.index.difference(frame.index)
  if foreign or len(unknown):
    raise ValueError(
        "the out-of-fold predictions are not of this corpus: "
        + "; ".join(([f"label(s) {foreign} it does not have"] if foreign else [])
                    + ([f"{len(unknown)} image id(s) it does not have, e.g. {list(unknown[:5])}"]
                       if len(unknown) else [])))
  return label_health.label_health(oof, oof_names)


def write_exploration(result: Exploration, output_dir: str) -> list[str]:
  """Writes explore.md, explore.json and the label-count and co-occurrence figures; returns their
  paths."""
  os.makedirs(output_dir, exist_ok=True)
  paths = atomic_files.write_report(output_dir, "explore", result.to_markdown(), result.to_dict())
  counts = result.label_counts.copy()
  counts["(no label)"] = result.no_label_images
  paths.append(
      plots.label_count_bars(counts, os.path.join(output_dir, "label_counts.png"),
                             f"Images per label ({result.num_images} images)",
                             muted=("(no label)",)))
  paths.append(
      plots.cooccurrence_heatmap(result.cooccurrence, os.path.join(output_dir, "cooccurrence.png")))
  return paths
