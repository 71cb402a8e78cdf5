"""Operating points: per-label threshold policies, and adapting a model to a stream with another
label mix.

A policy says how one label's threshold is chosen on labelled images:
``f1`` (the F1-optimal one, as training calibrates), ``precision:0.9`` (the
lowest threshold whose precision reaches 0.9), ``recall:0.8`` (the highest
whose recall reaches 0.8), a fixed number such as ``0.35``, or, on a target
stream, ``share`` (the label is predicted on as many stream photos as its
prevalence). Specs are a default and ``label=policy`` overrides:
``("f1", "people=precision:0.9")``.

On a target stream (untagged photos with a known or estimated prevalence per
label) the probabilities are first adapted to the stream's priors
(``prior_shift``, the EM of Saerens, Latinne & Decaestecker 2002 estimates the
priors when they are not known). Thresholds are then chosen for the stream:
recall at a threshold is measured on the labelled positives (a positive looks
alike in both), while how many stream photos a threshold tags is counted on
the stream itself, so expected precision = prevalence x recall / tagged share.
That holds even when the stream has photos unlike any labelled one (e.g. with
no label at all), where the labelled negatives would mislead.
"""

from __future__ import annotations

import csv
import dataclasses
import warnings

import numpy as np

from mlc_tf import markdown
from mlc_tf.data import label_rules
from mlc_tf.evaluate import metrics, untagged

POLICY_KINDS = ("f1", "precision", "recall", "fixed", "share")
NO_LABEL = "(none)"  # prevalence-file row: the share of stream photos that carry none of the labels
PRIOR_EPSILON = 1e-6  # priors are kept inside (0, 1): the odds correction divides by p and 1 - p


@dataclasses.dataclass(frozen=True)
class Policy:
  kind: str            # one of POLICY_KINDS
  value: float | None  # the precision/recall target or the fixed threshold; None for f1 and share

  def __str__(self) -> str:
    if self.kind in ("f1", "share"):
      return self.kind
    return f"{self.value:g}" if self.kind == "fixed" else f"{self.kind}:{self.value:g}"


def parse_policy(spec: str) -> Policy:
  """Parses ``f1`` | ``share`` | ``precision:P`` | ``recall:R`` | a threshold in [0, 1]."""
  spec = spec.strip()
  if spec in ("f1", "share"):
    return Policy(spec, None)
  kind, _, value = spec.partition(":")
  try:
    number = float(value if value else kind)
  except ValueError:
    number = None
  if kind in ("precision", "recall") and value and number is not None and 0 < number <= 1:
    return Policy(kind, number)
  if not value and number is not None and 0 <= number <= 1:
    return Policy("fixed", number)
  raise ValueError(
      f"bad policy {spec!r}: expected f1, share, precision:P or recall:R with 0 < P, R <= 1, "
      "or a fixed threshold in [0, 1]")


def parse_policies(specs, label_names: list[str]) -> list[Policy]:
  """Returns one policy per label from a default spec and ``label=spec`` overrides (the last
  default wins)."""
  default, overrides = Policy("f1", None), {}
  for spec in specs:
    name, sep, policy = spec.partition("=")
    if not sep:
      default = parse_policy(spec)
    elif name.strip() not in label_names:
      raise ValueError(f"policy {spec!r} names an unknown label {name.strip()!r}; "
                       f"labels: {', '.join(label_names)}")
    else:
      overrides[name.strip()] = parse_policy(policy)
  return [overrides.get(name, default) for name in label_names]


def prior_shift(probs: np.ndarray, train_prior: np.ndarray, target_prior: np.ndarray) -> np.ndarray:
  """Adapts probabilities to ``target_prior`` (numpy twin of ``layers.PriorShift``)."""
  probs = np.asarray(probs, np.float64)
  positive = probs * (np.asarray(target_prior) / np.asarray(train_prior))
  negative = (1 - probs) * ((1 - np.asarray(target_prior)) / (1 - np.asarray(train_prior)))
  return positive / (positive + negative)


def estimate_prevalence(target_probs: np.ndarray, train_prior: np.ndarray,
                        max_iterations: int = 1000, tolerance: float = 1e-6,
                        weights: np.ndarray | None = None) -> tuple[np.ndarray, int]:
  """Estimates each label's prevalence on untagged photos by EM (Saerens et al. 2002); returns
  (prevalence, iterations).

  Alternates adapting the probabilities to the current prior estimate and
  taking their mean as the next estimate. Assumes calibrated probabilities and
  photos of a label that look alike in training and in the stream. With
  ``weights`` [N] (e.g. each photo's P(tagged | photo)) the mean is weighted:
  the prevalence among the part of the stream they weigh.
  """
  train_prior = np.asarray(train_prior, np.float64)
  prior = train_prior.copy()
  for iteration in range(1, max_iterations + 1):
    estimate = np.clip(
        np.average(prior_shift(target_probs, train_prior, prior), axis=0, weights=weights),
        PRIOR_EPSILON,
        1 - PRIOR_EPSILON)
    converged = np.max(np.abs(estimate - prior)) < tolerance
    prior = estimate
    if converged:
      break
  return prior, iteration


def training_prior(train_targets: np.ndarray) -> np.ndarray:
  """Returns each label's share of the training images, kept inside (0, 1)."""
  return np.clip(
      np.asarray(train_targets, np.float64).mean(axis=0), PRIOR_EPSILON, 1 - PRIOR_EPSILON)


@dataclasses.dataclass
class Prevalence:
  """A stream's label prevalences as read from a file: every label has one."""

  values: np.ndarray           # [L]
  missing: list[str]           # labels the file lacks, kept at the training prior
  no_label: float | None       # the file's NO_LABEL row, if any


def read_prevalence(path: str, label_names: list[str], train_prior: np.ndarray) -> Prevalence:
  """Reads a ``label,prevalence`` CSV (header optional): shares of the stream's photos, in (0, 1).

  Unknown labels, values outside (0, 1) and repeated labels are errors naming
  the line; labels the file lacks keep their training prior (listed in
  ``missing``, to be warned about).
  """
  values, no_label = {}, None
  # -sig: past a spreadsheet's byte order mark
  with open(path, newline="", encoding="utf-8-sig") as f:
    for line_number, row in enumerate(csv.reader(f), start=1):
      cells = [cell.strip() for cell in row]
      if not any(cells) or (line_number == 1 and cells == ["label", "prevalence"]):
        continue
      where = f"{path}:{line_number}"
      if len(cells) != 2:
        raise ValueError(f"{where}: expected 'label,prevalence', got {','.join(row)!r}")
      name, text = cells
      try:
        value = float(text)
      except ValueError:
        raise ValueError(f"{where}: prevalence {text!r} of {name!r} is not a number") from None
      if not 0 < value < 1:
        raise ValueError(f"{where}: prevalence {value:g} of {name!r} is outside (0, 1)")
      if name != NO_LABEL and name not in label_names:
        raise ValueError(
            f"{where}: unknown label {name!r}; the model's labels: {', '.join(label_names)}")
      if name in values or (name == NO_LABEL and no_label is not None):
        raise ValueError(f"{where}: {name!r} appears twice")
      if name == NO_LABEL:
        no_label = value
      else:
        values[name] = value
  if not values and no_label is None:
    raise ValueError(f"{path} holds no 'label,prevalence' row")
  missing = [name for name in label_names if name not in values]
  prevalence = np.array([values.get(name, p) for name, p in zip(label_names, train_prior)],
                        np.float64)
  return Prevalence(prevalence, missing, no_label)


def _curve(scores: np.ndarray, positives: np.ndarray, target_scores: np.ndarray | None,
           prevalence: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(thresholds, precision, recall, share tagged) at every distinct score, highest threshold first.

  Each threshold lies midway between a score and the next lower one (as
  ``metrics.f1_optimal_thresholds`` places them); a score of inf is always
  tagged (through a label rule). Without a target, precision and the tagged
  share are counted on the labelled images; with one, the share is counted on
  the target and precision = prevalence x recall / share.
  """
  pool = scores if target_scores is None else np.concatenate([scores[positives], target_scores])
  candidates = np.unique(pool[np.isfinite(pool)])[::-1]
  if not len(candidates):  # every image is tagged through a rule: any threshold does
    candidates = np.zeros(1)
  thresholds = (candidates + np.append(candidates[1:], 0.0)) / 2
  positive_scores = np.sort(scores[positives])
  recall = (len(positive_scores) - np.searchsorted(positive_scores, thresholds)) / max(
      len(positive_scores), 1)
  counted = np.sort(scores if target_scores is None else target_scores)
  share = (len(counted) - np.searchsorted(counted, thresholds)) / len(counted)
  if target_scores is None:
    tagged = share * len(counted)
    precision = np.divide(recall * len(positive_scores), tagged, out=np.zeros_like(tagged),
                          where=tagged > 0)
  else:
    precision = np.minimum(
        1.0, np.divide(prevalence * recall, share, out=np.ones_like(share), where=share > 0))
  return thresholds, precision, recall, share


def _pick(policy: Policy, thresholds, precision, recall, share,
          prevalence) -> tuple[float, str | None]:
  """(threshold, why the policy's target is not met or None) from one label's curve."""
  if policy.kind == "fixed":
    return policy.value, None
  if policy.kind == "f1":
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=(precision + recall) > 0)
    # ties: the lowest threshold
    return float(thresholds[len(f1) - 1 - int(np.argmax(f1[::-1]))]), None
  if policy.kind == "share":
    return float(thresholds[int(np.argmin(np.abs(share - prevalence)))]), None
  reached = np.flatnonzero((precision if policy.kind == "precision" else recall) >= policy.value)
  if policy.kind == "precision":
    if len(reached):
      return float(thresholds[reached[-1]]), None
    best = int(np.argmax(precision))
    return float(thresholds[best]), (f"precision {policy.value:g} not reached: "
                                     f"at most {precision[best]:.3f}")
  return float(thresholds[reached[0]]), None  # recall 1 at the lowest threshold: always reached


def _with_rules(scores: np.ndarray, tagged: np.ndarray, antecedents: np.ndarray) -> np.ndarray:
  """One label's scores, inf where a label that implies it is ``tagged``: above any threshold."""
  return np.where(tagged[:, antecedents].any(axis=1), np.inf, scores)


@dataclasses.dataclass
class OperatingPoints:
  label_names: list[str]
  policies: list[Policy]
  thresholds: np.ndarray       # [L] float32
  notes: dict[str, str]        # label -> why its policy's target is not met


def choose_thresholds(y_true: np.ndarray, probs: np.ndarray, policies: list[Policy],
                      label_names: list[str], target_probs: np.ndarray | None = None,
                      prevalence: np.ndarray | None = None, implications=()) -> OperatingPoints:
  """Chooses each label's threshold by its policy, on labelled images or, given ``target_probs``,
  for that stream.

  ``probs`` and ``target_probs`` are on the same scale (both adapted to the
  stream's priors, or neither). A label is judged on the decisions the model
  serves: tagged when its own probability reaches the threshold or when a
  label that implies it (``implications``) is tagged, so labels are chosen
  antecedents first. Without a target, ``f1`` ignores the rules and gives
  exactly ``metrics.f1_optimal_thresholds``, as training calibrates. A label
  without a positive example keeps 0.5 (fixed policies excepted) and is noted.

  Args:
    y_true: 0/1 targets [N, L] of the labelled images.
    probs: their probabilities [N, L].
    policies: one policy per label (``parse_policies``).
    label_names: the labels, in column order.
    target_probs: probabilities [M, L] on the target stream; None: choose on the labelled images.
    prevalence: the stream's prevalence per label [L]; needed with ``target_probs``.
    implications: the label rules (``a=>b`` pairs) the served decisions apply.

  Returns:
    The ``OperatingPoints``: policies, thresholds [L] float32 and notes on unmet targets.

  Raises:
    ValueError: a ``share`` policy without a target stream.
  """
  y_true, probs = np.asarray(y_true), np.asarray(probs, np.float64)
  target = None if target_probs is None else np.asarray(target_probs, np.float64)
  if any(policy.kind == "share" for policy in policies) and target is None:
    raise ValueError("the share policy needs a target stream (target images and a prevalence)")
  thresholds = np.full(len(label_names), 0.5, np.float32)
  if target is None and any(policy.kind == "f1" for policy in policies):
    thresholds = metrics.f1_optimal_thresholds(y_true, probs)
  implies = label_rules.implication_matrix(label_names, implications) > 0  # [i, j]: i implies j
  np.fill_diagonal(implies, False)
  # each label's own decisions, filled in as its threshold is chosen
  tagged = np.zeros(probs.shape, bool)
  target_tagged = None if target is None else np.zeros(target.shape, bool)
  notes = {}
  for k in np.argsort(implies.sum(axis=0), kind="stable"):  # a label implied by fewer labels first
    name, policy, positives = label_names[k], policies[k], y_true[:, k] > 0
    if not positives.any() and policy.kind != "fixed":
      notes[name] = "no positive labelled image: threshold left at 0.5"
      thresholds[k] = 0.5
    # (f1 without a target: f1_optimal_thresholds above)
    elif policy.kind != "f1" or target is not None:
      antecedents = implies[:, k]
      curve = _curve(
          _with_rules(probs[:, k], tagged, antecedents), positives,
          None if target is None else _with_rules(target[:, k], target_tagged, antecedents),
          None if prevalence is None else float(prevalence[k]))
      thresholds[k], note = _pick(policy, *curve, None if prevalence is None else prevalence[k])
      if note:
        notes[name] = note
    tagged[:, k] = probs[:, k] >= thresholds[k]
    if target is not None:
      target_tagged[:, k] = target[:, k] >= thresholds[k]
  return OperatingPoints(list(label_names), list(policies), thresholds, notes)


def expected_precision_recall(y_true: np.ndarray, probs: np.ndarray, thresholds: np.ndarray,
                              target_probs: np.ndarray | None = None,
                              prevalence: np.ndarray | None = None,
                              label_names: list[str] | None = None, implications=(),
                              samples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict:
  """Estimates, per label, the precision and recall the thresholds are expected to give, with a
  bootstrap interval.

  Decisions are the served ones (thresholds, then ``implications`` among
  ``label_names``). On labelled images: counted there. For a stream: recall on the labelled
  positives, precision = prevalence x recall / share of the stream tagged.
  The interval resamples the labelled images (and the stream's) with
  replacement.

  Args:
    y_true: 0/1 targets [N, L] of the labelled images.
    probs: their probabilities [N, L].
    thresholds: the thresholds [L] to judge.
    target_probs: probabilities [M, L] on the target stream; None: judge on the labelled images.
    prevalence: the stream's prevalence per label [L]; needed with ``target_probs``.
    label_names: the labels, in column order; needed with ``implications``.
    implications: the label rules (``a=>b`` pairs) the served decisions apply.
    samples: how many bootstrap resamples to draw.
    confidence: the interval's coverage, e.g. 0.95.
    seed: seed of the resampling.

  Returns:
    ``{"precision"|"recall": {"value", "low", "high"}}`` of [L] arrays (NaN
    where undefined).
  """
  y_true = np.asarray(y_true) > 0
  names = label_names or [str(k) for k in range(y_true.shape[1])]
  decided = metrics.decide(probs, thresholds, names, implications) > 0
  stream = None if target_probs is None else metrics.decide(target_probs, thresholds, names,
                                                            implications) > 0
  rng = np.random.default_rng(seed)

  def precision_recall(rows, stream_rows):
    truth, tagged = y_true[rows], decided[rows]
    hits = (truth & tagged).sum(axis=-2).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
      recall = hits / truth.sum(axis=-2)
      if stream is None:
        precision = hits / tagged.sum(axis=-2)
      else:
        precision = np.minimum(1.0, prevalence * recall / stream[stream_rows].mean(axis=-2))
    return precision, recall

  point = precision_recall(np.arange(len(y_true)), np.arange(0 if stream is None else len(stream)))
  resampled = precision_recall(
      rng.integers(0, len(y_true), (samples, len(y_true))),
      None if stream is None else rng.integers(0, len(stream), (samples, len(stream))))
  tail = 50 * (1 - confidence)
  result = {}
  for name, value, draws in zip(("precision", "recall"), point, resampled):
    # a label never positive (or never tagged) has no value: NaN, not a warning
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
    result[name] = {"value": value, "low": low, "high": high}
  return result


def predicted_shares(decided: np.ndarray, label_names: list[str]) -> dict[str, float]:
  """Returns the share of images each label is decided on, and of those with none (``NO_LABEL``)."""
  decided = np.asarray(decided)
  shares = {name: float(decided[:, k].mean()) for k, name in enumerate(label_names)}
  shares[NO_LABEL] = float((decided.sum(axis=1) == 0).mean())
  return shares


@dataclasses.dataclass
class Stream:
  """A target stream: the network's (unadapted) probabilities on its photos, and its label
  prevalences."""

  probs: np.ndarray            # [N, L]
  prevalence: np.ndarray       # [L]
  source: str                  # where the prevalences come from, for the report
  missing: list[str] = dataclasses.field(default_factory=list)  # labels kept at the training prior
  no_label: float | None = None  # expected share of photos with no label, when known
  # photos that could not be read or decoded
  skipped: list[str] = dataclasses.field(default_factory=list)
  # With an estimated untagged part (mlc_tf.evaluate.untagged): the prior among the stream's tagged
  # photos (the PriorShift's target) and the gate; ``prevalence`` is then the whole stream's.
  tagged_prior: np.ndarray | None = None
  gate: untagged.TaggedGate | None = None

  def adapt(self, probs: np.ndarray, train_prior: np.ndarray) -> np.ndarray:
    """Returns the network's probabilities as the adapted model serves them on this stream
    (prior shift, then the tagged gate)."""
    shifted = prior_shift(probs, train_prior,
                          self.prevalence if self.tagged_prior is None else self.tagged_prior)
    return shifted if self.gate is None else shifted * self.gate.tagged_probability(probs)[:, None]


def check_stream_size(photos: int, min_stream_photos: int = untagged.MIN_STREAM_PHOTOS) -> None:
  """Raises a ValueError where a stream of ``photos`` is too small to estimate prevalences from.

  Every estimate, EM alone included: on 3 photos EM claims prevalences of exactly 0 and 1, and
  thresholds chosen for them cut the labelled test split's F1 in half.
  """
  if photos < min_stream_photos:
    raise ValueError(f"too few target photos to estimate the stream's prevalences: {photos}, at "
                     f"least {min_stream_photos} needed (a share over fewer photos is a guess); "
                     "pass a prevalence file, or more photos")


def estimate_stream(probs: np.ndarray, train_prior: np.ndarray,
                    labelled_probs: np.ndarray | None = None, tagged_em: bool = False,
                    min_stream_photos: int = untagged.MIN_STREAM_PHOTOS, **gate_options) -> Stream:
  """Estimates a stream's prevalences from the network's probabilities on its photos.

  Without ``labelled_probs``: EM (``estimate_prevalence``), which assumes
  every stream photo is tagged. With them (held-out labelled photos): the
  untagged part (``untagged.fit_tagged_gate``; ``gate_options`` go there);
  the tagged part keeps the training prior (``tagged_em``: EM on it, each
  photo weighted by its P(tagged | photo); measured worse on flickr14,
  docs/evaluation.md); a label's stream prevalence is the mean of its gated
  probability, no label's the estimated untagged share.

  Raises:
    ValueError: fewer than ``min_stream_photos`` photos (``check_stream_size``), or
      ``untagged.fit_tagged_gate``'s errors.
  """
  check_stream_size(len(probs), min_stream_photos)
  if labelled_probs is None:
    prevalence, iterations = estimate_prevalence(probs, train_prior)
    return Stream(probs, prevalence, f"estimated by EM in {iterations} iterations")
  gate = untagged.fit_tagged_gate(labelled_probs, probs, min_stream_photos=min_stream_photos,
                                  **gate_options)
  tagged_prior, how = np.asarray(train_prior, np.float64), "at the training prior"
  if tagged_em:
    tagged_prior, iterations = estimate_prevalence(probs, train_prior,
                                                   weights=gate.tagged_probability(probs))
    how = f"by EM in {iterations} iterations"
  stream = Stream(probs, np.zeros(len(train_prior)), "", no_label=1 - gate.tagged_share,
                  tagged_prior=tagged_prior, gate=gate)
  stream.prevalence = np.clip(stream.adapt(probs, train_prior).mean(axis=0), PRIOR_EPSILON,
                              1 - PRIOR_EPSILON)
  low, high = gate.no_label_interval
  stream.source = (f"untagged share {1 - gate.tagged_share:.3f} (95 %: {low:.3f}–{high:.3f}) "
                   "estimated by PU learning "
                   f"(ROC AUC {gate.auc:.3f} labelled vs stream; "
                   f"Elkan & Noto's e1 {1 - gate.tagged_share_e1:.3f}), "
                   f"the tagged part's label mix {how}")
  return stream


def calibrate(y_labelled: np.ndarray, labelled_probs: np.ndarray, policies: list[Policy],
              label_names: list[str], train_prior: np.ndarray, stream: Stream | None = None,
              implications=(), test: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
              samples: int = 1000, seed: int = 0) -> tuple[OperatingPoints, dict]:
  """Chooses new operating points, and reports what to expect of them.

  With a ``stream``, probabilities are adapted to its prevalences and the
  thresholds are chosen for it; the report then adds each label's (and no
  label's) predicted share of the stream beside the expected one. ``test``
  (targets, unadapted probabilities, the model's current thresholds) adds
  micro precision/recall/F1 on those labelled images before and after.

  Args:
    y_labelled: 0/1 targets [N, L] of the labelled images the thresholds are chosen on.
    labelled_probs: the network's (unadapted) probabilities [N, L] on them.
    policies: one policy per label (``parse_policies``).
    label_names: the labels, in column order.
    train_prior: each label's share of the training images (``training_prior``).
    stream: the target stream, if any.
    implications: the label rules (``a=>b`` pairs) the served decisions apply.
    test: (targets, unadapted probabilities, current thresholds) of a labelled test split.
    samples: bootstrap resamples of the expected precision/recall intervals.
    seed: seed of the resampling.

  Returns:
    (the ``OperatingPoints``, the report: per label its policy, threshold and
    expected precision/recall, plus the stream and test checks; see ``format_report``).
  """
  def adapted(probs):
    return probs if stream is None else stream.adapt(probs, train_prior)

  stream_probs = None if stream is None else adapted(stream.probs)
  prevalence = None if stream is None else stream.prevalence
  points = choose_thresholds(y_labelled, adapted(labelled_probs), policies, label_names,
                             stream_probs, prevalence, implications)
  expected = expected_precision_recall(y_labelled, adapted(labelled_probs), points.thresholds,
                                       stream_probs, prevalence, label_names, implications,
                                       samples=samples, seed=seed)
  per_label = {}
  for k, name in enumerate(label_names):
    row = {"policy": str(points.policies[k]), "threshold": float(points.thresholds[k]),
           "train_prior": float(train_prior[k]), "note": points.notes.get(name)}
    for measure in ("precision", "recall"):
      row[measure] = {key: _finite(values[k]) for key, values in expected[measure].items()}
    per_label[name] = row
  report = {"labelled_images": len(y_labelled), "per_label": per_label}
  if stream is not None:
    shares = predicted_shares(
        metrics.decide(stream_probs, points.thresholds, label_names, implications), label_names)
    for k, name in enumerate(label_names):
      per_label[name].update(target_prior=float(stream.prevalence[k]), predicted_share=shares[name])
    report["stream"] = {
        "images": len(stream.probs), "prevalence_source": stream.source,
        "missing_labels": stream.missing, "skipped_images": stream.skipped,
        "no_label": {"expected": stream.no_label, "predicted_share": shares[NO_LABEL]},
        "tagged_gate": None if stream.gate is None else {
            **stream.gate.to_json(), "tagged_prior": [float(p) for p in stream.tagged_prior]}
    }
  if test is not None:
    y_test, test_probs, current = test
    before = metrics.decide(test_probs, current, label_names, implications)
    after = metrics.decide(adapted(test_probs), points.thresholds, label_names, implications)
    report["test"] = {"images": len(y_test),
                      "before": metrics.classification_report(y_test, before, label_names)["micro"],
                      "after": metrics.classification_report(y_test, after, label_names)["micro"]}
  return points, report


def _finite(value) -> float | None:
  return float(value) if np.isfinite(value) else None


def _interval(measure: dict) -> str:
  if measure["value"] is None:
    return "–"
  if measure["low"] is None:
    return f"{measure['value']:.3f}"
  return f"{measure['value']:.3f} ({measure['low']:.3f}–{measure['high']:.3f})"


def format_report(report: dict) -> str:
  """Formats a calibration report as Markdown: per label the policy, threshold and expected P/R
  (95 % interval), then the stream and test checks."""
  stream = report.get("stream")
  where = (
      f"a stream of {stream['images']} untagged photos (prevalence: {stream['prevalence_source']})"
      if stream else f"{report['labelled_images']} labelled images")
  header = ["label", "policy", "threshold", "expected precision (95 %)", "expected recall (95 %)"]
  rows = [[
      name, row["policy"], f"{row['threshold']:.3f}",
      _interval(row["precision"]),
      _interval(row["recall"])
  ] for name, row in report["per_label"].items()]
  if stream:
    header += ["train prior", "prevalence", "predicted share"]
    for cells, row in zip(rows, report["per_label"].values()):
      cells += [f"{row[key]:.3f}" for key in ("train_prior", "target_prior", "predicted_share")]
    no_label = stream["no_label"]
    expected = "–" if no_label["expected"] is None else f"{no_label['expected']:.3f}"
    rows.append(["*no label*", *[""] * 5, expected, f"{no_label['predicted_share']:.3f}"])
  lines = [f"Operating points for {where}; "
           f"recall measured on {report['labelled_images']} labelled images.", "",
           *markdown.table(header, rows, align="ll" + "r" * (len(header) - 2))]
  notes = [f"- {name}: {row['note']}" for name, row in report["per_label"].items() if row["note"]]
  if stream and stream["missing_labels"]:
    notes.append("- not in the prevalence file, kept at the training prior: "
                 f"{', '.join(stream['missing_labels'])}")
  if stream and stream["skipped_images"]:
    shown = ", ".join(
        stream["skipped_images"][:10]) + (" …" if len(stream["skipped_images"]) > 10 else "")
    notes.append(f"- skipped {len(stream['skipped_images'])} stream file(s) "
                 f"that are not readable images: {shown}")
  if notes:
    lines += ["", *notes]
  if "test" in report:
    test = report["test"]
    lines += [
        "", f"Labelled test split ({test['images']} images), micro averages:", "", *markdown.table(
            ["operating points", "precision", "recall", "F1"],
            [[when, *(f"{test[key][measure]:.3f}"
                      for measure in ("precision", "recall", "f1"))]
             for when, key in (("the model's", "before"), ("new", "after"))])
    ]
  return "\n".join(lines)
