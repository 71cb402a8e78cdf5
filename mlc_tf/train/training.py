"""One training run: corpus -> split -> tf.data -> model -> fit -> ``scoring.wrap_and_score`` ->
saved workdir."""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import keras
import ml_collections
import numpy as np
import pandas as pd
import tensorflow as tf

from mlc_tf import atomic_files, hardware, models
from mlc_tf import config as config_lib
from mlc_tf.data import balance, label_rules, source_base, split_corpus
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.evaluate import scoring
from mlc_tf.models import inference
from mlc_tf.train import budget as budget_lib
from mlc_tf.train import callbacks as callbacks_lib
from mlc_tf.train import distribute, fallback, losses, optimizers, self_training, stream_adaptation


@dataclasses.dataclass
class TrainResult:
  """What a training run returns: the network, its inference model, thresholds, answers."""

  label_names: list[str]
  model: keras.Model            # probabilities only, as trained (with model.flip_average: its
                                # mirrored mean)
  inference_model: keras.Model  # {"probabilities", "decisions"}, thresholds inside
  thresholds: np.ndarray
  history: dict
  report: dict                  # metrics.evaluate on the test split
  val: scoring.SplitAnswers     # the inference model's answers on the validation split (thresholds
                                # chosen there)
  test: scoring.SplitAnswers | None  # and on the test split (what ``report`` scores); None in a
                                     # final fit
  config: ml_collections.ConfigDict  # what was trained: the given config, or its budget fallback
  is_chief: bool = True         # False on the other workers of a multi-worker job: they write
                                # nothing


def _distributed_training_data(strategy: tf.distribute.Strategy, frame: pd.DataFrame,
                               label_names: list[str], cfg: ml_collections.ConfigDict,
                               source: source_base.Source, sample_counts: np.ndarray | None = None):
  """Each worker reads, decodes and caches only its shard of the training images, batched per
  replica.

  Every step takes a full global batch (the short batch at the end of a
  shuffled pass is dropped; shards repeat, so each pass drops different
  images): all workers run the same steps, and shapes stay static for XLA.
  """
  def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
    rows = slice(context.input_pipeline_id, None, context.num_input_pipelines)
    shard = frame.iloc[rows]
    if len(shard) < cfg.train.batch_size:
      raise ValueError(f"worker {context.input_pipeline_id}'s shard has {len(shard)} training "
                       "images, fewer than one batch "
                       f"(config.train.batch_size={cfg.train.batch_size}): lower the batch size")
    return split_corpus.dataset_of(shard, label_names, cfg, training=True, source=source,
                    seed=cfg.seed + context.input_pipeline_id, drop_remainder=True,
                    sample_counts=None if sample_counts is None else sample_counts[rows]).repeat()
  return strategy.distribute_datasets_from_function(dataset_fn)


def _trim_history(path: str, first_epoch: int) -> None:
  """Drops the rows of epochs >= ``first_epoch`` from a CSVLogger file, which a resumed run writes
  again."""
  if os.path.exists(path):
    history = pd.read_csv(path)
    history[history["epoch"] < first_epoch].to_csv(path, index=False)


def train(cfg: ml_collections.ConfigDict, data_dir: str | None, workdir: str,
          started: float | None = None) -> TrainResult:
  """Fits a network, chooses its thresholds on the validation split, scores the test split.

  One path in named steps: check the config, make the strategy, load and
  check the data, self-train if asked, then ``train_on``: fit, score, save;
  last, with untagged stream photos, adapt the saved model to their stream.

  Args:
    cfg: a run's config (``mlc_tf/config.py``, a recipe in configs/).
    data_dir: a corpus directory or a source spec; ``None`` reads ``cfg.data.source``.
    workdir: where the run's files go (below), and its backup.
    started: when the command began (``time.time()``; None: now): ``cfg.train.budget`` counts from
      there.

  Returns:
    The fitted network, its inference model and thresholds, the history,
    the test report and the answers on the validation and test splits.

  Writes into ``workdir``: ``data_audit.json`` (what the data check found,
  also when it stops the run), ``history.csv`` (per-epoch log),
  ``checkpoints/epoch_<N>.weights.h5`` (the last finished epoch's weights),
  ``model.keras`` (the inference model, thresholds included) and
  ``report.json``; with ``cfg.data.unlabeled`` and self-training also
  ``unlabeled_audit.json``; in a multi-worker job only the chief writes. With
  ``cfg.data.unlabeled`` and ``cfg.calibration.adapt_to_unlabeled``, the
  saved inference model is adapted to the stream of those photos and
  ``report["stream"]`` says how (``stream_adaptation``). Training
  state is backed up in ``workdir/backup/`` (every epoch, and every
  ``cfg.train.backup_every_steps`` steps when set): the same call after a
  crash resumes from there, and a finished or diverged run deletes it.
  With ``cfg.train.budget``, the fit is planned to end so that the command
  started at ``started`` ends inside the budget, export included
  (``budget.Budget``); where the budget holds fewer than
  ``cfg.train.fallback.below_epochs`` epochs of the network, its fallback is
  trained instead (``fallback``; ``TrainResult.config`` says which).

  Raises:
    config.ConfigError: a value of ``cfg`` (``config.check_values``: a size, a fraction, a rate,
      ``train.precision``, ``train.budget``) is not one the run can use, or ``workdir`` cannot be
      made (before any data is read).
    budget.BudgetTooSmall: the budget cannot hold one epoch plus calibration and export (said a few
      steps in).
    corpus.CorpusError: the corpus or the untagged images cannot be used (before any training).
    self_training.SelfTrainingError: ``cfg.self_training`` cannot run (no teacher, other labels or
      split).
    callbacks.TrainingDiverged: the loss or weights became NaN or infinite;
      the last good checkpoint is kept and named in the message.
  """
  config_lib.check_values(cfg)
  config_lib.check_workdir(workdir)
  budget = budget_lib.Budget.of(cfg, workdir, time.time() if started is None else started)
  hardware.check_precision(cfg.train.precision)
  if budget is not None:
    cfg = budget.config_to_train(cfg)
  # Before the data: a multi-worker job sets up its collectives at start.
  strategy = distribute.make_strategy(cfg.strategy)
  chief = distribute.is_chief(strategy)
  data = _load_data(cfg, data_dir, workdir, chief)
  stream_photos = stream_adaptation.stream_photos(cfg) if stream_adaptation.wanted(cfg) else None
  if stream_photos is not None and budget is not None:
    budget.stream_photos = len(stream_photos)
  if cfg.data.get("unlabeled") and (stream_photos is None or cfg.self_training.teacher
                                    or cfg.self_training.teacher_epochs):
    cfg = _with_trained_teacher(cfg, data, workdir, strategy)
    data = self_training.with_pseudo_labels(cfg, data, workdir if chief else None)
  logging.info("corpus %s: %d train, %d validation, %d test images, %d labels", data.source.spec,
               len(data.train), len(data.val), len(data.test), len(data.label_names))
  result = train_on(cfg, data, workdir, strategy=strategy, budget=budget)
  if stream_photos is None or not result.is_chief:
    return result
  adapted, stream_report = stream_adaptation.adapt(
      cfg, data, stream_photos, result.inference_model,
      None if result.test is None else result.test.probabilities, result.val.probabilities)
  report = {**result.report, "stream": stream_report}
  save(workdir, adapted, report, result.config)
  return dataclasses.replace(result, inference_model=adapted, report=report)


def _load_data(cfg: ml_collections.ConfigDict, data_dir: str | None, workdir: str,
               chief: bool) -> split_corpus.SplitCorpus:
  """The corpus, checked and split; the chief writes what the check found, also when it stops the
  run."""
  try:
    data = split_corpus.load_and_split(data_dir, cfg)
  except corpus_lib.CorpusError as error:  # the audit says what to fix
    if chief and error.audit is not None:
      _write_audit(error.audit, workdir)
    raise
  if chief:
    _write_audit(data.audit, workdir)
  return data


def _with_trained_teacher(cfg: ml_collections.ConfigDict, data: split_corpus.SplitCorpus,
                          workdir: str,
                          strategy: tf.distribute.Strategy) -> ml_collections.ConfigDict:
  """``cfg`` naming its teacher: with ``self_training.teacher_epochs`` and no teacher given, one
  trained here first on the labelled images into ``workdir/teacher`` (a finished one, with its
  report.json, is reused)."""
  if cfg.self_training.teacher or not cfg.self_training.teacher_epochs:
    return cfg
  teacher_dir = os.path.join(workdir, self_training.TEACHER_DIR)
  if os.path.isfile(os.path.join(teacher_dir, "report.json")):
    logging.info("self-training: reusing the finished teacher in %s", teacher_dir)
  else:
    logging.info("self-training: training the teacher first, %d epochs on the labelled images, "
                 "into %s", cfg.self_training.teacher_epochs, teacher_dir)
    train_on(self_training.teacher_config(cfg), data, teacher_dir, strategy=strategy)
  cfg = cfg.copy_and_resolve_references()
  cfg.self_training.teacher = teacher_dir
  return cfg


def _best_epoch(history: keras.callbacks.History, monitor: str) -> int | None:
  """1-based epoch with the highest ``monitor``: the one early stopping restores."""
  values = history.history.get(monitor)
  return history.epoch[int(np.argmax(values))] + 1 if values else None


def _write_audit(audit: corpus_lib.CorpusAudit, workdir: str) -> None:
  os.makedirs(workdir, exist_ok=True)
  audit.write_json(os.path.join(workdir, "data_audit.json"))


def train_on(cfg: ml_collections.ConfigDict, data: split_corpus.SplitCorpus, workdir: str,
             verbose: int = 2, strategy: tf.distribute.Strategy | None = None,
             budget: budget_lib.Budget | None = None) -> TrainResult:
  """Runs ``train``'s last steps on an already split corpus: fit (the fallback's instead where the
  budget holds too few epochs), score, save. ``train`` ends here, and so do a cross-validation
  fold, a growing step and a self-training teacher.

  Args:
    cfg: the run's config (``train``'s).
    data: the split corpus; its untagged images (``data.unlabeled``) are
      used only if ``train`` added them.
    workdir: where the run's files go (as ``train``'s).
    verbose: ``model.fit``'s verbosity.
    strategy: made from ``cfg.strategy`` when None.
    budget: the command's time (``train`` makes it from ``cfg.train.budget``); None:
      ``cfg.train.epochs`` decides.

  Returns:
    As ``train``: the fitted network, its inference model and thresholds, the
    history, the test report and the answers.

  Raises:
    callbacks.TrainingDiverged: as ``train``.
  """
  strategy = strategy or distribute.make_strategy(cfg.strategy)
  if cfg.train.get("budget") and budget is None:
    logging.warning("config.train.budget bounds mlc-train's command only: this run (a "
                    "cross-validation fold, a growing step, a self-training teacher) trains "
                    "config.train.epochs=%d", cfg.train.epochs)
  if cfg.data.get("unlabeled") and data.unlabeled is None and (cfg.self_training.teacher or
                                                               cfg.self_training.teacher_epochs):
    logging.warning("config.data.unlabeled is set, but only mlc-train (training.train) "
                    "self-trains: this run (a cross-validation fold, a growing step) trains on the "
                    "labelled images alone")
  try:
    fitted = _fit(cfg, data, workdir, verbose, strategy, budget)
  except fallback.NetworkTooSlow as slow:  # a few steps into the first epoch: nothing of it is kept
    cfg = budget.fall_back(cfg, slow)
    fitted = _fit(cfg, data, workdir, verbose, strategy, budget)
  with distribute.precision(fitted.precision.policy):
    model = _local_copy(cfg, fitted.model, data.label_names, strategy)
    # Early stopping restored the best epoch's weights: threshold and score those, not the last
    # epoch's.
    implications = (label_rules.parse_implications(cfg.rules.implications)
                    if cfg.rules.to_predictions else [])
    scored = scoring.wrap_and_score(model, data, cfg, implications)
  scored.report["training"] = _training_report(cfg, data, fitted, budget)
  if data.unlabeled:
    scored.report["self_training"] = data.unlabeled
  if data.additions:
    scored.report["additions"] = data.additions
  chief = distribute.is_chief(strategy)
  if chief:
    save(workdir, scored.inference_model, scored.report, cfg)
  return TrainResult(data.label_names, model, scored.inference_model, scored.thresholds,
                     {k: list(map(float, v)) for k, v in fitted.history.history.items()},
                     scored.report, scored.val, scored.test, cfg, is_chief=chief)


@dataclasses.dataclass
class _Fitted:
  """A fit's network (under its strategy) and what the report says of it."""

  model: keras.Model
  history: keras.callbacks.History
  seconds: float                  # fit's wall time in this call (a resumed run: its own part)
  inputs: _Inputs
  precision: hardware.PrecisionChoice
  machine: dict
  time_budget: budget_lib.TimeBudget | None


def _fit(cfg: ml_collections.ConfigDict, data: split_corpus.SplitCorpus, workdir: str, verbose: int,
         strategy: tf.distribute.Strategy, budget: budget_lib.Budget | None) -> _Fitted:
  """Seeds, builds, compiles and fits the network at the precision this machine runs ``cfg``'s at.

  Raises:
    fallback.NetworkTooSlow: ``budget`` holds too few epochs of this network (a few steps in).
  """
  cpu, gpus = hardware.read_cpu(), hardware.read_gpus()
  precision = hardware.resolve_precision(cfg.train.precision, cpu, gpus)
  logging.info("precision %s: %s", precision.policy, precision.reason)
  if precision.warning:
    logging.warning("%s", precision.warning)
  with distribute.precision(precision.policy):
    _seed(cfg)
    os.makedirs(workdir, exist_ok=True)
    inputs = _training_inputs(cfg, data, strategy)
    resume = _resume_point(cfg, workdir, distribute.is_chief(strategy))
    model, learning_rate = _compiled_model(cfg, data.label_names, strategy, inputs, resume.weights)
    time_budget = None if budget is None else budget.time_budget(
        cfg, data, inputs.steps_per_epoch, inputs.global_batch, learning_rate,
        resumed=resume.epoch is not None)
    history, seconds = _model_fit(cfg, model, inputs, data.val[data.label_names].to_numpy(), resume,
                                  workdir, distribute.is_chief(strategy), verbose, time_budget)
  machine = {"cpu": cpu.describe(), "gpus": [dataclasses.asdict(gpu) for gpu in gpus]}
  return _Fitted(model, history, seconds, inputs, precision, machine, time_budget)


def _training_report(cfg: ml_collections.ConfigDict, data: split_corpus.SplitCorpus,
                     fitted: _Fitted, budget: budget_lib.Budget | None) -> dict:
  """report.json's ``training``: how long the fit took in this call and how many epochs it ran.

  images_per_second: training images stepped through per second of fit's wall time, validation
  passes included.
  """
  epochs, inputs = len(fitted.history.epoch), fitted.inputs
  report = {
      "fit_seconds": round(fitted.seconds, 1), "epochs": epochs,
      "best_epoch": _best_epoch(fitted.history, cfg.train.monitor), "train_images": len(data.train),
      "images_per_second": round(epochs * inputs.steps_per_epoch * inputs.global_batch
                                 / max(fitted.seconds, 1e-9), 1),
      "optimizer_steps": epochs * inputs.steps_per_epoch,
      "precision": fitted.precision.describe(),
      "hardware": fitted.machine}
  if fitted.time_budget is not None:
    report["budget"] = budget.describe(fitted.time_budget)
  return report


def _seed(cfg: ml_collections.ConfigDict) -> None:
  """Seeds Python, NumPy and TensorFlow; with ``cfg.deterministic``, TensorFlow's ops too."""
  keras.utils.set_random_seed(cfg.seed)
  if cfg.deterministic:
    tf.config.experimental.enable_op_determinism()


@dataclasses.dataclass
class _Inputs:
  train: tf.distribute.DistributedDataset
  val: tf.data.Dataset
  train_targets: np.ndarray
  steps_per_epoch: int
  global_batch: int


def _training_inputs(cfg: ml_collections.ConfigDict, data: split_corpus.SplitCorpus,
                     strategy: tf.distribute.Strategy) -> _Inputs:
  """The distributed training data (balanced as ``cfg.balance`` says) and the validation data, in
  global batches."""
  names = data.label_names
  global_batch = distribute.global_batch_size(cfg.train.batch_size, strategy)
  logging.info("%s; global batch %d", distribute.describe(strategy), global_batch)
  train_targets = data.train[names].to_numpy()
  sample_counts = balance.expected_counts(train_targets, names, cfg.balance)
  if sample_counts is not None:
    logging.info("balancing: %.0f training images per epoch on average (of %d)",
                 sample_counts.sum(), len(train_targets))
  steps_per_epoch = cfg.train.steps_per_epoch or distribute.steps_per_epoch(
      len(train_targets) if sample_counts is None else int(np.ceil(sample_counts.sum())),
      global_batch)
  train_ds = _distributed_training_data(strategy, data.train, names, cfg, data.source,
                                        sample_counts)
  # Evaluation batches are global: each replica takes its slice, and metrics and predictions cover
  # them all.
  val_ds = split_corpus.dataset_of(data.val, names, cfg, training=False, source=data.source,
                                   batch_size=global_batch)
  return _Inputs(train_ds, val_ds.with_options(distribute.data_sharded_options()), train_targets,
                 steps_per_epoch, global_batch)


@dataclasses.dataclass
class _ResumePoint:
  backup: callbacks_lib.AtomicBackupAndRestore
  weights: str | None     # a checkpoint to load before fitting (config.train.resume_from), None:
                          # the backup's or none
  epoch: int | None       # finished epochs the run starts after, None: a fresh run
  last_good: str | None   # the checkpoint a diverged run names


def _resume_point(cfg: ml_collections.ConfigDict, workdir: str, chief: bool) -> _ResumePoint:
  """Where the run starts: its backup in ``workdir`` if any (newer than any checkpoint), else
  ``resume_from``."""
  backup = callbacks_lib.AtomicBackupAndRestore(os.path.join(workdir, "backup"),
                                                save_freq=cfg.train.backup_every_steps or "epoch",
                                                write=chief)
  backed_up = backup.backed_up_epoch()
  weights = cfg.train.resume_from if backed_up is None else None
  epoch = callbacks_lib.checkpoint_epochs(weights) if weights else backed_up
  last_good = weights or (
      callbacks_lib.EpochCheckpoint.path(os.path.join(workdir, "checkpoints"), backed_up)
      if backed_up is not None else None)
  return _ResumePoint(backup, weights, epoch, last_good)


def _compiled_model(cfg: ml_collections.ConfigDict, names: list[str],
                    strategy: tf.distribute.Strategy, inputs: _Inputs, weights: str | None):
  """The network, built and compiled under ``strategy``, with ``weights`` loaded when given; and its
  learning rate (a float or a schedule, which a time budget re-plans)."""
  optimizer_cfg = cfg.optimizer.copy_and_resolve_references()
  optimizer_cfg.learning_rate = distribute.scaled_learning_rate(
      cfg.optimizer.learning_rate, inputs.global_batch, cfg.optimizer.base_batch_size,
      cfg.optimizer.lr_scaling)
  with strategy.scope():
    model = distribute.for_strategy(models.build(cfg.model, len(names), cfg.data.image_size, names),
                                    strategy)
    if weights:
      model.load_weights(weights)  # weights only: the optimizer starts afresh from the config
    schedule = optimizers.make_schedule(optimizer_cfg, inputs.steps_per_epoch, cfg.train.epochs)
    model.compile(optimizer=optimizers.make_optimizer(optimizer_cfg, learning_rate=schedule),
                  loss=losses.make_loss(cfg.loss, names, inputs.train_targets),
                  metrics=[keras.metrics.F1Score(average="micro", threshold=0.5, name="f1_at_0.5"),
                           keras.metrics.AUC(multi_label=True, curve="PR", name="map")],
                  jit_compile="auto" if cfg.train.jit_compile is None else cfg.train.jit_compile)
  return model, schedule


def _model_fit(cfg: ml_collections.ConfigDict, model: keras.Model, inputs: _Inputs,
               val_targets: np.ndarray, resume: _ResumePoint, workdir: str, chief: bool,
               verbose: int, time_budget: budget_lib.TimeBudget | None,
               ) -> tuple[keras.callbacks.History, float]:
  """``model.fit`` with the run's callbacks (``time_budget`` among them when given); (its history,
  its wall time in seconds)."""
  history_path = os.path.join(workdir, "history.csv")
  if resume.epoch is not None:
    logging.info("resuming at epoch %d from %s", resume.epoch + 1,
                 resume.weights or f"the backup in {resume.backup.backup_dir}")
    if chief:
      _trim_history(history_path, resume.epoch)
  checkpoint = callbacks_lib.EpochCheckpoint(os.path.join(workdir, "checkpoints"), resume.last_good,
                                             write=chief)
  start = time.perf_counter()
  try:
    history = model.fit(
        inputs.train, epochs=cfg.train.epochs, initial_epoch=resume.epoch or 0,
        steps_per_epoch=inputs.steps_per_epoch,
        callbacks=[
            # With weight averaging, the averaged weights are in the model from each epoch's end to
            # the next epoch's start: calibration, early stopping and checkpoints see and keep them.
            *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)]
              if cfg.optimizer.get("ema_momentum") else []),
            # the epoch's one validation pass; before the callbacks below, which read what it logs
            callbacks_lib.CalibratedValidationF1(inputs.val.map(lambda x, y: x), val_targets),
            keras.callbacks.EarlyStopping(monitor=cfg.train.monitor, mode="max",
                                          patience=cfg.train.early_stopping_patience,
                                          restore_best_weights=True),
            *([time_budget] if time_budget is not None else []),
            callbacks_lib.StopOnNaN(checkpoint),  # before anything that saves: diverged weights are
                                                  # never saved
            *([keras.callbacks.CSVLogger(history_path, append=resume.epoch is not None)] if chief
              else []),
            checkpoint,
            *(callbacks_lib.optional_callbacks(cfg.train, workdir) if chief else []),
            resume.backup,  # last: an epoch counts as done once its log line is written
        ],
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=verbose)
  except callbacks_lib.TrainingDiverged:
    resume.backup.on_train_end()  # the run is over: its backup would only resume the divergence;
                                  # the checkpoint stays
    raise
  return history, time.perf_counter() - start


def _local_copy(cfg: ml_collections.ConfigDict, model: keras.Model, names: list[str],
                strategy: tf.distribute.Strategy) -> keras.Model:
  """The trained network as everything after training uses it: outside the strategy, flip-averaged
  if asked."""
  if cfg.strategy != "default":
    trained = model
    model = models.build(cfg.model, len(names), cfg.data.image_size, names)
    model.set_weights(trained.get_weights())
  return inference.with_flip_average(model) if cfg.model.flip_average else model


def save(workdir: str, inference_model: keras.Model, report: dict,
         cfg: ml_collections.ConfigDict) -> None:
  """Writes a workdir's model.keras, report.json and config.json, each atomically.

  What evaluation, export and mlc-calibrate read from a workdir.
  """
  atomic_files.write_aside(os.path.join(workdir, "model.keras"), inference_model.save)
  atomic_files.write_json(os.path.join(workdir, "report.json"), report)
  atomic_files.write_text(os.path.join(workdir, "config.json"), cfg.to_json_best_effort(indent=2))
