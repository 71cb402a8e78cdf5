"""Compares mlc-suspects' ranking (margin past the fold model's threshold) with cleanlab's
confident learning on the same out-of-fold predictions (issue 41, item 4).

  python tools/compare_label_issues.py --oof=workdirs/cv_flickr14_small \
      --output_dir=workdirs/compare_label_issues

Writes comparison.md / comparison.json (top-K overlap, rank correlation, per-label agreement) and
sample_only_ours.csv, sample_only_cleanlab.csv, sample_both.csv: pairs drawn at random for a
person to judge (fill in the ``verdict`` column: ``wrong`` when the given label is indeed wrong,
``right`` when it is right, ``unsure``). Within each ranking's top ``--sample_top``: "only ours"
are pairs cleanlab does not flag at all, "only cleanlab" pairs whose margin is under
``--min_margin`` (mlc-suspects would not list them), "both" pairs in both top lists.

With ``--flips=N`` it also flips N given labels (N/2 given positives to 0, N/2 negatives to 1, at
random) in a copy of the predictions and measures each ranking's precision at K at finding them:
labels known to be wrong, with the probabilities unchanged (the models were trained on the
unflipped labels, so this is kinder to both rankings than a real error would be).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# isort: split

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from absl import app, flags  # noqa: E402
from scipy import stats  # noqa: E402

from mlc_tf import atomic_files, markdown  # noqa: E402
from mlc_tf.evaluate import label_health, suspects  # noqa: E402
from mlc_tf.experiments import crossval  # noqa: E402

_OOF = flags.DEFINE_string("oof", None, "An mlc-cv workdir or its oof_predictions.csv.",
                           required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "workdirs/compare_label_issues",
                                  "Where the comparison and the samples go.")
_TOP = flags.DEFINE_list("top", ["50", "100", "200"], "The K of the top-K overlaps.")
_MIN_MARGIN = flags.DEFINE_float("min_margin", 2.0, "mlc-suspects' --min_margin.")
_SAMPLE_TOP = flags.DEFINE_integer("sample_top", 200, "Draw the samples from each top list.")
_SAMPLES = flags.DEFINE_list("samples", ["30", "30", "20"],
                             "Pairs to draw: only ours, only cleanlab, both.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the samples and the flips.")
_FLIPS = flags.DEFINE_integer("flips", 0, "Labels to flip for the known-errors test (0: none).")


def pair_frame(oof: pd.DataFrame, names: list[str]) -> pd.DataFrame:
  """Every (image, label) pair with both rankers' views: margin (ours), quality and flagged
  (cleanlab), and each ranking's 1-based rank (cleanlab's: among the pairs it flags)."""
  margins = suspects.margins(oof, names)
  flagged, quality = label_health.find_issues(oof, names)
  given, probabilities = label_health.given_and_probabilities(oof, names)
  rows, cols = np.indices(given.shape)
  pairs = pd.DataFrame({
      "image_id": oof.index.to_numpy()[rows.ravel()],
      "label": np.asarray(names, dtype=object)[cols.ravel()], "given": given.ravel(),
      "action": np.where(given.ravel() == 1, "remove", "add"),
      "probability": probabilities.ravel(),
      "threshold": oof[[f"threshold_{n}" for n in names]].to_numpy().ravel(),
      "margin": margins.ravel(), "quality": quality.ravel(), "cleanlab": flagged.ravel()})
  if "path" in oof:
    pairs["path"] = oof["path"].to_numpy()[rows.ravel()]
  # ties broken by image id and label, as rank_suspects and rank_label_issues break them
  ours = pairs.sort_values(["margin", "image_id", "label"], ascending=[False, True, True],
                           kind="stable")
  pairs.loc[ours.index, "rank_ours"] = np.arange(1, len(pairs) + 1)
  theirs = pairs[pairs["cleanlab"]].sort_values(["quality", "image_id", "label"], kind="stable")
  pairs.loc[theirs.index, "rank_cleanlab"] = np.arange(1, len(theirs) + 1)
  return pairs


def compare(pairs: pd.DataFrame, names: list[str], tops: list[int], min_margin: float) -> dict:
  """The agreement figures of ``pair_frame``'s rankings."""
  ours = pairs["margin"] >= min_margin
  overlaps = []
  for k in tops:
    top_ours = set(pairs.index[pairs["rank_ours"] <= k])
    top_theirs = set(pairs.index[pairs["rank_cleanlab"] <= k])
    both = len(top_ours & top_theirs)
    overlaps.append({
        "k": k, "cleanlab_listed": len(top_theirs), "both": both,
        "jaccard": both / max(len(top_ours | top_theirs), 1),
        "ours_flagged_by_cleanlab": float(pairs.loc[list(top_ours), "cleanlab"].mean()),
        "cleanlab_over_our_margin": float(ours[list(top_theirs)].mean()) if top_theirs else 0.0})
  correlation = {
      "all_pairs": stats.spearmanr(pairs["margin"], -pairs["quality"]).statistic,
      "either_flagged": stats.spearmanr(pairs.loc[ours | pairs["cleanlab"], "margin"],
                                        -pairs.loc[ours | pairs["cleanlab"], "quality"]).statistic}
  per_label = []
  for name in names:
    mine = pairs["label"] == name
    a, b = ours & mine, pairs["cleanlab"] & mine
    per_label.append({
        "label": name, "given": int(pairs.loc[mine, "given"].sum()),
        "ours": int(a.sum()), "ours_remove": int((a & (pairs["given"] == 1)).sum()),
        "cleanlab": int(b.sum()), "cleanlab_remove": int((b & (pairs["given"] == 1)).sum()),
        "both": int((a & b).sum()), "jaccard": float((a & b).sum() / max((a | b).sum(), 1))})
  return {"pairs": len(pairs), "ours_flagged": int(ours.sum()),
          "cleanlab_flagged": int(pairs["cleanlab"].sum()),
          "both_flagged": int((ours & pairs["cleanlab"]).sum()), "min_margin": min_margin,
          "overlaps": overlaps, "spearman": {k: float(v) for k, v in correlation.items()},
          "per_label": per_label}


def to_markdown(result: dict) -> str:
  """The comparison as markdown tables."""
  lines = [
      f"{result['pairs']} (image, label) pairs; flagged by mlc-suspects (margin ≥ "
      f"{result['min_margin']}): {result['ours_flagged']}, by cleanlab: "
      f"{result['cleanlab_flagged']}, by both: {result['both_flagged']}.", "",
      f"Spearman correlation of margin and cleanlab's 1 − quality: "
      f"{result['spearman']['all_pairs']:.3f} over all pairs, "
      f"{result['spearman']['either_flagged']:.3f} over the pairs either flags.", "",
      *markdown.table(["top K", "cleanlab lists", "in both top K", "Jaccard",
                       "ours' top K cleanlab flags", "cleanlab's top K past our margin"],
                      [[o["k"], o["cleanlab_listed"], o["both"], f"{o['jaccard']:.3f}",
                        f"{100 * o['ours_flagged_by_cleanlab']:.0f} %",
                        f"{100 * o['cleanlab_over_our_margin']:.0f} %"]
                       for o in result["overlaps"]]), "",
      *markdown.table(["label", "given", "ours (remove)", "cleanlab (remove)", "both", "Jaccard"],
                      [[r["label"], r["given"], f"{r['ours']} ({r['ours_remove']})",
                        f"{r['cleanlab']} ({r['cleanlab_remove']})", r["both"],
                        f"{r['jaccard']:.2f}"] for r in result["per_label"]])]
  return "\n".join(lines)


def draw_samples(pairs: pd.DataFrame, sample_top: int, sizes: list[int], min_margin: float,
                 seed: int) -> dict[str, pd.DataFrame]:
  """The pairs for a person to judge: only ours, only cleanlab, both (see the module doc)."""
  top_ours = pairs["rank_ours"] <= sample_top
  top_theirs = pairs["rank_cleanlab"] <= sample_top
  groups = {"only_ours": top_ours & ~pairs["cleanlab"],
            "only_cleanlab": top_theirs & (pairs["margin"] < min_margin),
            "both": top_ours & top_theirs}
  rng = np.random.default_rng(seed)
  samples = {}
  for (name, members), size in zip(groups.items(), sizes):
    chosen = pairs[members]
    chosen = chosen.iloc[np.sort(rng.choice(len(chosen), min(size, len(chosen)), replace=False))]
    samples[name] = chosen.assign(verdict="").drop(columns="cleanlab")
  return samples


def flip_labels(oof: pd.DataFrame, names: list[str], count: int,
                seed: int) -> tuple[pd.DataFrame, set[tuple[int, str]]]:
  """A copy of ``oof`` with ``count`` given labels flipped (half positives, half negatives), and
  the flipped (image_id, label) pairs."""
  rng = np.random.default_rng(seed)
  given = oof[names].to_numpy()
  flipped = oof.copy()
  pairs = set()
  for value, n in ((1, count // 2), (0, count - count // 2)):
    rows, cols = np.nonzero(given == value)
    for i in rng.choice(len(rows), n, replace=False):
      flipped.iat[rows[i], flipped.columns.get_loc(names[cols[i]])] = 1 - value
      pairs.add((int(oof.index[rows[i]]), names[cols[i]]))
  return flipped, pairs


def find_flips(oof: pd.DataFrame, names: list[str], count: int, seed: int, tops: list[int],
               min_margin: float) -> dict:
  """Each ranking's precision at K (and the share it flags) on ``count`` injected flips."""
  flipped, truth = flip_labels(oof, names, count, seed)
  pairs = pair_frame(flipped, names)
  known = pd.Series([(int(i), label) in truth for i, label in zip(pairs["image_id"],
                                                                  pairs["label"])])
  rows = []
  for ranker, rank, flagged in (("mlc-suspects", "rank_ours", pairs["margin"] >= min_margin),
                                ("cleanlab", "rank_cleanlab", pairs["cleanlab"])):
    rows.append({"ranker": ranker, "flagged": int(flagged.sum()),
                 "flips_flagged": float(known[flagged].sum() / count),
                 "precision_at": {k: float(known[pairs[rank] <= k].sum() / k) for k in tops}})
  return {"flips": count, "rows": rows}


def flips_markdown(result: dict) -> str:
  """The known-errors test as a markdown table."""
  tops = list(result["rows"][0]["precision_at"])
  return "\n".join([
      f"{result['flips']} labels flipped at random (half given to 0, half missing to 1):", "",
      *markdown.table(["ranking", "pairs flagged", "flips among them",
                       *(f"precision @{k}" for k in tops)],
                      [[r["ranker"], r["flagged"], f"{100 * r['flips_flagged']:.0f} %",
                        *(f"{100 * r['precision_at'][k]:.0f} %" for k in tops)]
                       for r in result["rows"]])])


def main(argv):
  del argv
  oof = crossval.read_oof(_OOF.value)
  names = label_health.oof_labels(oof)
  pairs = pair_frame(oof, names)
  tops = [int(k) for k in _TOP.value]
  result = compare(pairs, names, tops, _MIN_MARGIN.value)
  text = to_markdown(result)
  if _FLIPS.value:
    result["known_errors"] = find_flips(oof, names, _FLIPS.value, _SEED.value, tops,
                                        _MIN_MARGIN.value)
    text += "\n\n" + flips_markdown(result["known_errors"])
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  paths = atomic_files.write_report(_OUTPUT_DIR.value, "comparison", text, result)
  samples = draw_samples(pairs, _SAMPLE_TOP.value, [int(n) for n in _SAMPLES.value],
                         _MIN_MARGIN.value, _SEED.value)
  for name, sample in samples.items():
    path = os.path.join(_OUTPUT_DIR.value, f"sample_{name}.csv")
    sample.to_csv(path, index=False)
    paths.append(path)
  print(text)
  for path in paths:
    print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
