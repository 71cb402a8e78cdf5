"""Figures that let a person judge a multi-label model and its corpus, written as PNG files.

Rendered with matplotlib's Agg canvas through the object-oriented API
(``matplotlib.figure.Figure``), never pyplot: no display, no global state, safe
to call from any process. Every function writes one PNG and returns its path.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from sklearn import metrics as skm

# Caption colours: readable on white and distinguishable without red-green vision.
CORRECT = "#2b8a3e"
FALSE_POSITIVE = "#d9480f"
MISSED = "#1864ab"
NEUTRAL = "#495057"
DPI = 110


def _figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
  fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
  FigureCanvasAgg(fig)
  return fig


def _save(fig: Figure, path: str) -> str:
  fig.savefig(path, bbox_inches="tight", facecolor="white")
  return path


def training_curves(history: pd.DataFrame, path: str, monitor: str = "val_micro_f1") -> str:
  """Plots one panel per metric logged for both splits (train vs validation), plus validation-only
  metrics.

  A gap that opens between the two curves of a panel is over-fitting; the
  dotted line marks the epoch with the best ``monitor`` (the weights kept).
  """
  epochs = (history["epoch"] + 1 if "epoch" in history
            else pd.Series(range(1, len(history) + 1))).to_numpy()
  pairs = [
      c for c in history.columns
      if c != "epoch" and not c.startswith("val_") and f"val_{c}" in history
  ]
  pairs.sort(key=lambda c: (c != "loss", c))
  val_only = [c for c in history.columns if c.startswith("val_") and c[4:] not in history]
  panels = [[(c, "train"), (f"val_{c}", "validation")] for c in pairs]
  if val_only:
    panels.append([(c, c[4:]) for c in val_only])
  best = int(epochs[int(np.nanargmax(history[monitor].to_numpy()))]) if monitor in history else None
  fig = _figure(4.2 * len(panels), 3.4)
  for k, series in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), k + 1)
    for column, legend in series:
      ax.plot(epochs, history[column].to_numpy(), marker="o", markersize=3, label=legend)
    ax.set_title(series[0][0] if k < len(pairs) else "validation only (calibrated thresholds)",
                 fontsize=10)
    ax.set_xlabel("epoch")
    if best is not None:
      ax.axvline(best, color=NEUTRAL, linestyle=":", linewidth=1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  if best is not None:
    fig.suptitle(f"Training curves (dotted: best {monitor}, epoch {best})", fontsize=11)
  return _save(fig, path)


def pr_curves(y_true: np.ndarray, probs: np.ndarray, label_names: list[str], path: str,
              thresholds: np.ndarray | None = None, columns: int = 4) -> str:
  """Plots per-label precision-recall curves with AP, the base rate, and the operating points at 0.5
  and calibrated.

  Args:
    y_true: 0/1 targets [N, L].
    probs: probabilities [N, L].
    label_names: the labels, in column order; one panel each.
    path: the PNG file to write.
    thresholds: the calibrated thresholds [L], marked on each curve; none by default.
    columns: panels per row.

  Returns:
    ``path``.
  """
  y_true, probs = np.asarray(y_true), np.asarray(probs)
  rows = math.ceil(len(label_names) / columns)
  fig = _figure(3.0 * columns, 2.8 * rows)
  for k, name in enumerate(label_names):
    ax = fig.add_subplot(rows, columns, k + 1)
    positives = int(y_true[:, k].sum())
    if positives == 0:
      ax.text(0.5, 0.5, "no positive image", ha="center", va="center", transform=ax.transAxes,
              color=NEUTRAL)
      ax.set_title(name, fontsize=10)
    else:
      precision, recall, _ = skm.precision_recall_curve(y_true[:, k], probs[:, k])
      ap = skm.average_precision_score(y_true[:, k], probs[:, k])
      ax.step(recall, precision, where="post", color=MISSED)
      ax.axhline(positives / len(y_true), color=NEUTRAL, linestyle="--", linewidth=0.8)
      points = [(0.5, "o", "at 0.5")]
      if thresholds is not None:
        points.append((float(thresholds[k]), "*", f"calibrated {float(thresholds[k]):.2f}"))
      for threshold, marker, legend in points:
        predicted = probs[:, k] >= threshold
        tp = int((predicted & (y_true[:, k] == 1)).sum())
        ax.plot(tp / positives, tp / predicted.sum() if predicted.any() else 1.0, marker,
                color=FALSE_POSITIVE, markersize=9 if marker == "*" else 5, label=legend)
      ax.set_title(f"{name}  AP {ap:.2f}  n={positives}", fontsize=10)
      ax.legend(fontsize=7, loc="lower left")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if k % columns == 0:
      ax.set_ylabel("precision")
    if k >= len(label_names) - columns:
      ax.set_xlabel("recall")
  fig.suptitle("Precision-recall per label (dashed: base rate)", fontsize=11)
  return _save(fig, path)


def predicted_vs_true_counts(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str],
                             path: str, title: str = "Images per label: true vs predicted") -> str:
  """Plots grouped bars, one pair per label (most frequent first): how often the model says a label
  vs the truth.

  Args:
    y_true: 0/1 targets [N, L].
    y_pred: 0/1 decisions [N, L].
    label_names: the labels, in column order.
    path: the PNG file to write.
    title: the figure's title.

  Returns:
    ``path``.
  """
  true_counts, pred_counts = np.asarray(y_true).sum(axis=0), np.asarray(y_pred).sum(axis=0)
  order = np.argsort(-true_counts, kind="stable")
  x = np.arange(len(label_names))
  fig = _figure(max(6.0, 0.7 * len(label_names) + 2), 4.0)
  ax = fig.add_subplot()
  for offset, counts, legend, color in ((-0.2, true_counts, "true", NEUTRAL),
                                        (0.2, pred_counts, "predicted", MISSED)):
    bars = ax.bar(x + offset, counts[order], width=0.4, label=legend, color=color)
    ax.bar_label(bars, fontsize=7, padding=1)
  ax.set_xticks(x, [label_names[i] for i in order], rotation=45, ha="right")
  ax.set_ylabel("images")
  ax.set_title(title, fontsize=11)
  ax.legend()
  ax.grid(axis="y", alpha=0.3)
  return _save(fig, path)


def label_count_bars(counts: pd.Series, path: str, title: str = "Images per label",
                     muted: tuple[str, ...] = ()) -> str:
  """Plots horizontal bars of a {label: count} series, largest on top, labelled with counts;
  ``muted`` bars in grey."""
  counts = counts.sort_values()
  fig = _figure(6.5, 0.32 * len(counts) + 1.2)
  ax = fig.add_subplot()
  colors = [NEUTRAL if name in muted else MISSED for name in counts.index]
  bars = ax.barh(counts.index.astype(str), counts.to_numpy(), color=colors)
  ax.bar_label(bars, fontsize=8, padding=2)
  ax.set_xlabel("images")
  ax.set_title(title, fontsize=11)
  ax.grid(axis="x", alpha=0.3)
  ax.set_xlim(0, counts.max() * 1.15 if counts.max() else 1)
  return _save(fig, path)


def cooccurrence_heatmap(counts: pd.DataFrame, path: str) -> str:
  """Plots label co-occurrence: cell (row, column) = images with both; colour = share of the row
  label's images.

  The colour normalises by the row's count, so a rare label's dependence on a
  frequent one ("baby" -> "people") stands out instead of drowning in raw counts.
  """
  matrix = counts.to_numpy().astype(float)
  diagonal = np.diag(matrix)
  share = np.divide(matrix, diagonal[:, None], out=np.zeros_like(matrix), where=diagonal[:, None]
                    > 0)
  names = list(counts.index)
  size = 0.55 * len(names) + 2
  fig = _figure(size + 1, size)
  ax = fig.add_subplot()
  image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
  for i in range(len(names)):
    for j in range(len(names)):
      ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=7,
              color="white" if share[i, j] > 0.6 else "black",
              fontweight="bold" if i == j else "normal")
  ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
  ax.set_yticks(range(len(names)), names)
  ax.set_title("Label co-occurrence (images with both; colour: share of the row label's images)",
               fontsize=10)
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  return _save(fig, path)


def decision_caption(true_row: np.ndarray, pred_row: np.ndarray, label_names: list[str],
                     probs_row: np.ndarray | None = None) -> list[tuple[str, str]]:
  """Returns caption lines for one image: ``✓ label`` right, ``+ label`` false positive,
  ``− label`` missed."""
  lines = []
  for k, name in enumerate(label_names):
    if not (true_row[k] or pred_row[k]):
      continue
    mark, color = (("✓", CORRECT) if true_row[k] and pred_row[k] else
                   ("+", FALSE_POSITIVE) if pred_row[k] else ("−", MISSED))
    prob = f" {probs_row[k]:.2f}" if probs_row is not None else ""
    lines.append((f"{mark} {name}{prob}", color))
  return lines or [("(no label, none predicted)", NEUTRAL)]


def image_grid(images: list[str | bytes], captions: list[list[tuple[str, str]]], path: str,
               title: str, columns: int = 6, max_lines: int = 6) -> str:
  """Draws a contact sheet: thumbnails (image files or encoded bytes) with coloured caption lines.

  Args:
    images: image file paths or encoded image bytes; an unreadable one is shown as such.
    captions: per image, its caption lines ``(text, colour)``.
    path: the PNG file to write.
    title: the sheet's title.
    columns: thumbnails per row.
    max_lines: caption lines per image; more are summed up in the last one.

  Returns:
    ``path``.

  Raises:
    ValueError: ``images`` is empty.
  """
  if not images:
    raise ValueError("no images for the grid")
  rows = math.ceil(len(images) / columns)
  cell_w, image_h, line_h, title_h = 1.9, 1.9, 0.16, 0.45  # inches
  caption_h = line_h * (max_lines + 0.5)
  height = rows * (image_h + caption_h) + title_h
  fig = _figure(cell_w * columns, height, layout=None)
  grid = fig.add_gridspec(rows, columns, top=1 - title_h / height, bottom=caption_h / height,
                          left=0.01, right=0.99, hspace=caption_h / image_h, wspace=0.08)
  for k, (source, caption) in enumerate(zip(images, captions)):
    ax = fig.add_subplot(grid[k // columns, k % columns])
    try:
      with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        ax.imshow(np.asarray(image.convert("RGB")))
    except OSError:
      ax.text(0.5, 0.5, "unreadable", ha="center", va="center", transform=ax.transAxes,
              color=FALSE_POSITIVE)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(caption) > max_lines:
      caption = caption[:max_lines - 1] + [(f"… {len(caption) - max_lines + 1} more", NEUTRAL)]
    for line, (text, color) in enumerate(caption):
      ax.text(0.0, -0.03 - line * line_h / image_h, text, transform=ax.transAxes, va="top",
              ha="left", fontsize=7.5, color=color)
  fig.suptitle(title, fontsize=11, y=1 - 0.1 / height)
  return _save(fig, path)
