"""The untagged part of a stream: positive-unlabelled learning (Elkan & Noto, KDD 2008) on a model's
own probabilities.

The labelled corpus holds tagged photos only (each has >= 1 label), so a network trained on it
answers P(label | photo, tagged) and has no idea what an untagged photo looks like. A stream mixes
tagged and untagged photos. With the labelled photos a fair sample of the tagged ones (SCAR:
"selected completely at random"), a classifier g(x) = P(s=1 | x) between labelled photos (s=1)
and stream photos (s=0) is c * P(tagged | x) on the pooled photos, where c = P(s=1 | tagged) is a
constant; so a stream photo's P(tagged | x, s=0) = (1 - c)/c * g/(1 - g). With class-balanced
weights g/(1 - g) is the density ratio f_tagged(x) / f_stream(x) and (1 - c)/c the stream's tagged
share, so everything hangs on that share. Elkan & Noto read c off g as its mean on held-out
labelled photos, exact only when tagged and untagged photos do not overlap; a network trained on
tagged photos only sees its untagged ones as much like them (ROC AUC 0.60 labelled vs stream on
flickr14), and that estimate then puts 18 % with no label where about 49 % have none. Here the
share is read where photos look most labelled (mixture proportion estimation, Blanchard, Lee &
Scott 2010; Scott 2015): above the cut that keeps the labelled photos' top fifth of the
cross-fitted g, the stream holds share x that fifth of its tagged photos and few untagged ones,
so share ~ (stream fraction above the cut) / (labelled fraction above it); untagged photos above
the cut make it an overestimate of the tagged share (a lower bound on the no-label share), a
smaller tail would be less biased and noisier. (A modified logistic regression fitting c as a
parameter, Jaskie, Elkan & Spanias 2019, was tried: right on Gaussians, but on flickr14 its c ran
to 1 and every photo came out untagged.)

g is fitted on the clipped logits of the network's per-label probabilities: every model
mlc-calibrate accepts answers them, and the result is L coefficients, a bias and c, which
``layers.TaggedGate`` carries into the exported graph. The served per-label probability on the
stream is then P(label | x, tagged) * P(tagged | x).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn import linear_model, metrics, model_selection, pipeline, preprocessing

# Fewer stream photos than this: no estimate. The stream's tagged share is a mean over its photos
# (standard error <= 0.5 / sqrt(200) = 3.5 points at 200) and the cross-fitted logistic model of
# L + 1 parameters needs a few hundred photos per side to be stable.
MIN_STREAM_PHOTOS = 200
MIN_LABELLED_PHOTOS = 20
# No sign of untagged photos: labelled and stream photos not told apart better than this ROC AUC
# (0.5: chance), or an estimated share with no label below MIN_NO_LABEL_SHARE.
MIN_AUC = 0.55
MIN_NO_LABEL_SHARE = 0.02
# The tagged share is read where photos look most labelled: the labelled photos' top fifth of g.
TAIL = 0.2
LOGIT_CLIP = 1e-6  # probabilities are clipped to [eps, 1 - eps] before their logits are taken


class UntaggedEstimateError(ValueError):
  """The stream cannot give an estimate of its untagged part (too few photos, none look
  untagged)."""


@dataclasses.dataclass
class TaggedGate:
  """P(tagged | photo) on a stream, as a logistic model of the network's logits, and what it
  estimated."""

  coefficients: np.ndarray   # [L] on logit(clip(p))
  bias: float
  label_frequency: float     # c = P(labelled | tagged) in the (class-balanced) fit
  tagged_share: float        # the stream's estimated share of tagged photos (cross-fitted)
  auc: float                 # ROC AUC of the cross-fitted g, labelled vs stream photos
  # Elkan & Noto's own estimate (e1: c = mean of a plain cross-fitted logistic g on the labelled
  # photos), a cross-check: higher than tagged_share where tagged and untagged photos overlap
  tagged_share_e1: float
  # 95 % bootstrap interval of the share with no label (labelled and stream photos resampled)
  no_label_interval: tuple[float, float]
  labelled_images: int
  stream_images: int

  def tagged_probability(self, probs: np.ndarray) -> np.ndarray:
    """Returns P(tagged | photo, stream) [N] from the network's probabilities [N, L]."""
    return tagged_probability(probs, self.coefficients, self.bias, self.label_frequency)

  def to_json(self) -> dict:
    return {"coefficients": [float(v) for v in self.coefficients], "bias": float(self.bias),
            "label_frequency": float(self.label_frequency),
            "tagged_share": float(self.tagged_share),
            "no_label_share": 1 - float(self.tagged_share),
            "no_label_interval": [float(v) for v in self.no_label_interval],
            "auc": float(self.auc), "tagged_share_e1": float(self.tagged_share_e1),
            "labelled_images": self.labelled_images,
            "stream_images": self.stream_images}


def features(probs: np.ndarray) -> np.ndarray:
  """Returns the PU features of photos: the logits of their clipped per-label probabilities."""
  probs = np.clip(np.asarray(probs, np.float64), LOGIT_CLIP, 1 - LOGIT_CLIP)
  return np.log(probs) - np.log1p(-probs)


def tagged_probability(probs: np.ndarray, coefficients: np.ndarray, bias: float,
                       label_frequency: float) -> np.ndarray:
  """Returns P(tagged | photo, stream) = min(1, (1 - c)/c * g/(1 - g)), g/(1 - g) =
  exp(w.x + b) (numpy twin of ``layers.TaggedGate``)."""
  z = features(probs) @ np.asarray(coefficients, np.float64) + bias
  return np.exp(np.minimum(z + np.log((1 - label_frequency) / label_frequency), 0.0))


def _classifier(seed: int) -> pipeline.Pipeline:
  return pipeline.make_pipeline(
      preprocessing.StandardScaler(),
      linear_model.LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed))


def _tail_ratio(labelled_g: np.ndarray, stream_g: np.ndarray) -> float:
  """Returns the stream's tagged share as the ratio of stream to labelled photos in the labelled
  photos' top TAIL of g (at most 1)."""
  cut = np.quantile(labelled_g, 1 - TAIL)
  return float(min(1.0, (stream_g >= cut).mean() / (labelled_g >= cut).mean()))


def fit_tagged_gate(labelled_probs: np.ndarray, stream_probs: np.ndarray, folds: int = 5,
                    seed: int = 0, min_stream_photos: int = MIN_STREAM_PHOTOS,
                    samples: int = 50) -> TaggedGate:
  """Estimates a stream's tagged share and P(tagged | photo) from labelled and stream photos.

  Args:
    labelled_probs: the network's probabilities [N, L] on labelled photos it was not trained on.
    stream_probs: its probabilities [M, L] on the stream's untagged photos.
    folds: cross-fitting folds of the plain logistic g behind the ROC AUC check and the e1
      cross-check (each photo scored by a model not fitted on it).
    seed: seed of the folds.
    min_stream_photos: the fewest stream photos an estimate is made from.
    samples: bootstrap resamples of the no-label share's interval (of the cross-fitted g).

  Returns:
    The ``TaggedGate``: the logistic g fitted on all photos, c and the estimates.

  Raises:
    UntaggedEstimateError: too few photos, or the stream shows no sign of untagged photos.
  """
  labelled_probs, stream_probs = np.asarray(labelled_probs), np.asarray(stream_probs)
  if len(stream_probs) < min_stream_photos:
    raise UntaggedEstimateError(
        f"too few target photos to estimate the untagged share: {len(stream_probs)}, at least "
        f"{min_stream_photos} needed (a share over fewer photos is a guess); pass a prevalence "
        "file, or more photos")
  if len(labelled_probs) < max(MIN_LABELLED_PHOTOS, 2 * folds):
    raise UntaggedEstimateError(
        f"too few labelled photos to estimate the untagged share: {len(labelled_probs)}, at least "
        f"{max(MIN_LABELLED_PHOTOS, 2 * folds)} needed")
  x = features(np.concatenate([labelled_probs, stream_probs]))
  s = np.r_[np.ones(len(labelled_probs), int), np.zeros(len(stream_probs), int)]
  cv = model_selection.StratifiedKFold(folds, shuffle=True, random_state=seed)
  g = model_selection.cross_val_predict(_classifier(seed), x, s, cv=cv,
                                        method="predict_proba")[:, 1]
  auc = float(metrics.roc_auc_score(s, g))
  c_e1 = float(np.clip(g[s == 1].mean(), 1e-6, 1 - 1e-6))
  g_stream = np.clip(g[s == 0], 1e-12, 1 - 1e-12)
  tagged_share_e1 = float(np.minimum(1.0, (1 - c_e1) / c_e1 * g_stream / (1 - g_stream)).mean())
  tagged_share = _tail_ratio(g[s == 1], g[s == 0])
  rng = np.random.default_rng(seed)
  labelled_g, stream_g = g[s == 1], g[s == 0]
  resampled = [1 - _tail_ratio(labelled_g[rng.integers(0, len(labelled_g), len(labelled_g))],
                               stream_g[rng.integers(0, len(stream_g), len(stream_g))])
               for _ in range(samples)]
  interval = tuple(np.percentile(resampled, [2.5, 97.5])) if samples else (np.nan, np.nan)
  if auc < MIN_AUC or 1 - tagged_share < MIN_NO_LABEL_SHARE:
    raise UntaggedEstimateError(
        "no sign of untagged photos in the stream (needed: its photos told apart from the "
        f"labelled ones with ROC AUC >= {MIN_AUC}, got {auc:.3f}; an estimated share with no "
        f"label >= {MIN_NO_LABEL_SHARE}, got {1 - tagged_share:.3f}): no gate is guessed; if the "
        "stream is all tagged, calibrate with --noestimate_untagged")
  fitted = _classifier(seed).fit(x, s)
  scaler, logistic = fitted[0], fitted[1]
  coefficients = logistic.coef_[0] / scaler.scale_  # the scaler folded into the coefficients
  bias = float(logistic.intercept_[0] - coefficients @ scaler.mean_)
  # balanced classes: g/(1 - g) = f_tagged(x) / f_stream(x), so P(tagged | x, stream) =
  # share * g/(1 - g), Elkan & Noto's (1 - c)/c * g/(1 - g) with c = 1 / (1 + share)
  return TaggedGate(coefficients, bias, 1 / (1 + tagged_share), tagged_share, auc,
                    tagged_share_e1, interval, len(labelled_probs),
                    len(stream_probs))
