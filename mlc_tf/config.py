"""The configuration schema: every shared field a training run reads, with its default.

Recipes under ``configs/`` start from ``base_config()``, ``choose`` a model,
loss and optimizer (``mlc_tf/factory.py``), which declares their knobs, and
change what they need; any field a recipe declares can then be overridden on
the command line, e.g. ``mlc-train --config=configs/demo.py --config.model.width=64``.

A leaf: it imports no other mlc_tf module, so any module may import it.
"""

from __future__ import annotations

import os

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.strategy = "default"           # default | mirrored (local GPUs) | multi_worker (cluster
                                        # from TF_CONFIG)
  # Op determinism: same seed + config on the same machine -> the same metrics. Costs speed on GPUs;
  # once on, it stays on for the rest of the process (TensorFlow has no public switch back).
  config.deterministic = True

  config.data = ml_collections.ConfigDict()
  # folder:<dir> | csv:<file> | tfds:<name>[:<version>][:<split>] (mlc_tf/data/sources.py);
  # "": mlc-train's --data_dir, else the built-in demo corpus.
  config.data.source = ""
  # None: ~/tensorflow_datasets
  config.data.tfds_data_dir = ml_collections.FieldReference(None, field_type=str)
  # tfds:mlc_corpus's corpus folder
  config.data.tfds_manual_dir = ml_collections.FieldReference(None, field_type=str)
  # None: every annotation file
  config.data.labels = ml_collections.FieldReference(None, field_type=list)
  config.data.image_size = 64           # images are resized to image_size x image_size
  config.data.val_fraction = 0.15
  config.data.test_fraction = 0.15
  config.data.split_seed = 0            # fixed, documented split; independent of the training seed
  config.data.cache = True              # cache decoded images in memory after the first epoch
  # A reviewed CSV of image_id,label,action (add/remove) applied on load; see
  # mlc_tf/data/corrections.py.
  config.data.corrections = ml_collections.FieldReference(None, field_type=str)
  # A CSV of newly tagged photos (image,labels; the images relative to its folder) that join the
  # training split; see mlc_tf/data/additions.py (mlc-suggest, mlc-review --suggestions write it).
  config.data.additions = ml_collections.FieldReference(None, field_type=str)
  config.data.strict = False            # any file the data audit skips or finds odd is an error
  # Untagged photos of the stream the model will tag: a folder of JPEG/PNG/GIF/BMP files, or one
  # that holds images/ as a corpus does. The saved and exported model is adapted to that stream
  # (config.calibration.adapt_to_unlabeled); with config.self_training.teacher or teacher_epochs
  # they also join the training split, with a teacher's answers as targets (validation and test stay
  # labelled). None or "": off.
  config.data.unlabeled = ml_collections.FieldReference(None, field_type=str)

  config.augment = ml_collections.ConfigDict()  # 0/""/False switches a transform off
  config.augment.flip = "horizontal"
  config.augment.rotation = 0.0         # fraction of a full turn
  config.augment.shear = 0.0
  config.augment.zoom = 0.0
  config.augment.brightness = 0.0
  config.augment.contrast = 0.0
  config.augment.saturation = 0.0
  config.augment.hue = 0.0
  config.augment.grayscale = 0.0        # probability of turning an image gray
  config.augment.translate = 0.0        # random crop of a zero-padded image: fraction of the side
                                        # (0.125 = 8 of 64 px)
  config.augment.randaugment = 0        # RandAugment: random ops per image
  config.augment.erasing = 0.0          # probability of erasing a random rectangle (random erasing
                                        # / cutout)
  config.augment.mixup = 0.0            # MixUp alpha: blends image pairs and their label vectors
  config.augment.cutmix = 0.0           # CutMix factor: pastes a patch of another image, labels by
                                        # area

  config.balance = ml_collections.ConfigDict()  # training-set re-balancing, see
                                                # mlc_tf/data/balance.py
  # label names
  config.balance.over_represented = ml_collections.FieldReference((), field_type=tuple)
  config.balance.under_fraction = 0.0   # drop this fraction of images whose labels are all
                                        # over-represented
  config.balance.repeat_threshold = 0.0  # repeat-factor over-sampling threshold t; 0: off

  config.rules = ml_collections.ConfigDict()  # see mlc_tf/data/label_rules.py
  # e.g. ("baby=>people",)
  config.rules.implications = ml_collections.FieldReference((), field_type=tuple)
  config.rules.merges = ml_collections.ConfigDict()  # e.g. {"people": ["female", "male", "people"]}
  config.rules.to_targets = True        # fix training/validation targets that break an implication
  config.rules.to_predictions = True    # the exported model's decisions obey the implications

  # The model, loss and optimizer each hold their name and the fields every choice shares; the knobs
  # of one choice (a model's width, SGD's momentum, focal's gamma) are its builder's keyword
  # arguments, with their defaults there, and a recipe declares them where it makes the choice
  # (factory.choose).
  config.model = ml_collections.ConfigDict()
  config.model.name = "simple_cnn"      # a builder in mlc_tf/models/; names, knobs:
                                        # mlc_tf/registry.py
  # Two networks (the Flickr study's idea), each the chosen model: one for these labels, one for the
  # rest; (): one network.
  config.model.first_labels = ml_collections.FieldReference((), field_type=tuple)
  # Test-time augmentation: the trained model answers with the mean over the image and its mirror
  # image (thresholds are calibrated on, and the export serves, that mean); twice the inference
  # cost.
  config.model.flip_average = False

  config.loss = ml_collections.ConfigDict()
  config.loss.name = "bce"               # a builder in mlc_tf/train/losses.py; names, knobs:
                                         # mlc_tf/registry.py

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"        # sgd | adam | adamw (mlc_tf/train/optimizers.py); knobs:
                                        # mlc_tf/registry.py
  config.optimizer.learning_rate = 1e-3
  config.optimizer.lr_scaling = "none"  # none | linear | sqrt: learning_rate x f(global batch /
                                        # base_batch_size)
  config.optimizer.base_batch_size = 32  # the global batch learning_rate was tuned at
  config.optimizer.clipnorm = 0.0       # 0: no gradient clipping
  # Exponential moving average of the weights (e.g. 0.999): validation, calibration, early stopping
  # and the saved model use the averaged weights; 0: off.
  config.optimizer.ema_momentum = 0.0
  config.optimizer.schedule = "constant"  # constant | cosine | linear | exponential, see
                                          # mlc_tf/train/optimizers.py
  config.optimizer.warmup_epochs = 0.0
  config.optimizer.min_lr_fraction = 0.0  # cosine, linear: final rate as a fraction of
                                          # learning_rate
  config.optimizer.decay_rate = 0.9     # exponential: factor per epoch

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 32          # per replica; global batch = batch_size x replicas in sync
  config.train.epochs = 30              # with a budget: the most epochs worth running
  # A wall-time budget for the whole command ("60m", "1h30m"; ""/None: none, train.epochs decides):
  # the run measures its speed, plans how many epochs fit and fits the learning-rate schedule to
  # them (mlc_tf/train/budget.py). mlc-train only; one process (not with strategy=multi_worker).
  config.train.budget = ml_collections.FieldReference(None, field_type=str)
  # With a budget: a cheaper network to train instead when the budget holds fewer than below_epochs
  # epochs of this one, as measured a few steps into the first epoch (0: never). changes: the config
  # sections that make it, merged into this config, e.g. {"data": {"image_size": 32}}
  # (train/fallback.py).
  config.train.fallback = ml_collections.ConfigDict({"below_epochs": 0,
                                                     "changes": ml_collections.ConfigDict()})
  # None: one pass
  config.train.steps_per_epoch = ml_collections.FieldReference(None, field_type=int)
  config.train.early_stopping_patience = 5
  config.train.monitor = "val_micro_f1"  # calibrated-threshold F1 on the validation split
  # None: every epoch only
  config.train.backup_every_steps = ml_collections.FieldReference(None, field_type=int)
  # auto | float32 | mixed_float16 | mixed_bfloat16. auto: 16-bit compute only where the hardware
  # has it (bfloat16 on a CPU with AVX512_BF16/AMX or a GPU from compute capability 8.0, float16 on
  # a 7.x GPU), else float32, also where a probe finds TensorFlow emulating the CPU's bfloat16
  # (oneDNN off or capped); see mlc_tf/hardware.py. A 16-bit policy the hardware emulates is
  # honoured, with a warning.
  config.train.precision = "auto"
  # XLA; None: Keras' auto (on GPU)
  config.train.jit_compile = ml_collections.FieldReference(None, field_type=bool)
  # A <workdir>/checkpoints/epoch_<N>.weights.h5 to continue from, at epoch N+1 (e.g. after a NaN
  # loss, with a lower learning rate); the model config must match the checkpoint's. A backup of an
  # interrupted run in the workdir wins over it.
  config.train.resume_from = ml_collections.FieldReference(None, field_type=str)
  config.train.checkpoint_best = True   # keep the best epoch's model as <workdir>/best_epoch.keras
  config.train.tensorboard = False      # write TensorBoard logs to <workdir>/tensorboard/

  # Noisy-student self-training (mlc_tf/train/self_training.py): a teacher labels data.unlabeled
  # once, un-augmented, before training; the student then learns from those answers and the labelled
  # images under this config's augmentation and dropout.
  config.self_training = ml_collections.ConfigDict()
  # A trained workdir or model.keras whose inference model labels the untagged images; needed with
  # data.unlabeled.
  config.self_training.teacher = ml_collections.FieldReference(None, field_type=str)
  # With no teacher given: > 0 trains one first, in the same run, for this many epochs of this
  # config on the labelled images alone, into <workdir>/teacher (a rerun reuses a finished one); the
  # student then trains train.epochs.
  config.self_training.teacher_epochs = 0
  config.self_training.targets = "soft"  # soft: the teacher's probabilities | hard: its decisions
                                         # (calibrated)
  config.self_training.max_images = 0   # 0: every untagged image; else at most this many, drawn
                                        # with config.seed
  # The teacher's config.json must split the corpus as this config does (else its training images
  # may be this run's test images, and the report would flatter the student): an error unless this
  # is True.
  config.self_training.allow_split_mismatch = False

  config.calibration = ml_collections.ConfigDict()  # the operating points, see
                                                    # mlc_tf/evaluate/operating_points.py
  # Per-label threshold policies, as mlc-calibrate's --policy: a default (f1 | precision:P |
  # recall:R | a fixed threshold) and "label=policy" overrides, e.g. ("f1", "people=precision:0.9");
  # chosen on the validation split.
  config.calibration.policy = ml_collections.FieldReference(("f1",), field_type=tuple)
  # With data.unlabeled (photos of the stream the model will tag): mlc-train adapts the model it
  # saves and exports to that stream, as mlc-calibrate --prevalence=estimate does: the share of
  # photos with no label estimated by positive-unlabelled learning, P(tagged | photo) gating the
  # probabilities, each label's threshold chosen for the stream by stream_policy
  # (mlc_tf/train/stream_adaptation.py). Needs at least min_stream_photos usable photos, checked
  # before training. False: the untagged photos serve self-training only.
  config.calibration.adapt_to_unlabeled = True
  config.calibration.stream_policy = ml_collections.FieldReference(("share",), field_type=tuple)
  config.calibration.min_stream_photos = 200

  config.export = ml_collections.ConfigDict()
  config.export.name = "mlc"            # saved_models/<name>/<version>/
  config.export.base_dir = "saved_models"
  return config


class ConfigError(ValueError):
  """A config value that cannot be used (a precision, a budget): said before any data is read."""


def check_values(config: ml_collections.ConfigDict) -> None:
  """Raises a ``ConfigError`` naming the first field whose value no run can use.

  Said before any data is read or anything written: TensorFlow would say it
  later as a traceback (image_size=0 in a pooling layer, batch_size=0 as a
  division by zero), or train nothing and export that (epochs=0).
  """
  data, train = config.data, config.train
  positive_ints = {"data.image_size": data.image_size, "train.batch_size": train.batch_size,
                   "train.epochs": train.epochs, "train.steps_per_epoch": train.steps_per_epoch}
  for field, value in positive_ints.items():
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
      raise ConfigError(f"config.{field}={value!r}: must be a whole number of at least 1")
  if not 0 < data.val_fraction < 1 or not 0 <= data.test_fraction < 1:
    raise ConfigError(f"config.data.val_fraction={data.val_fraction!r}, "
                      f"test_fraction={data.test_fraction!r}: val_fraction must be in (0, 1) and "
                      "test_fraction in [0, 1)")
  if data.val_fraction + data.test_fraction >= 1:
    raise ConfigError(f"config.data.val_fraction + test_fraction = "
                      f"{data.val_fraction + data.test_fraction:g}: must be below 1, leaving "
                      "images to train on")
  dropout = config.model.get("dropout")
  if dropout is not None and not 0 <= dropout < 1:
    raise ConfigError(f"config.model.dropout={dropout!r}: a rate, in [0, 1)")
  if not config.optimizer.learning_rate > 0:
    raise ConfigError(f"config.optimizer.learning_rate={config.optimizer.learning_rate!r}: must "
                      "be positive")
  if config.self_training.teacher_epochs < 0:
    raise ConfigError(f"config.self_training.teacher_epochs={config.self_training.teacher_epochs!r}"
                      ": 0 (no teacher trained here) or more")


def check_workdir(workdir: str) -> None:
  """Raises a ``ConfigError`` where ``workdir`` is not a folder, or cannot be made, by this user.

  Checks without writing: the nearest existing folder on its path must be one this user may
  create entries in.
  """
  if os.path.exists(workdir):
    if not os.path.isdir(workdir):
      raise ConfigError(f"workdir {workdir}: exists and is not a folder")
    existing = workdir
  else:
    existing = os.path.dirname(os.path.abspath(workdir))
    while not os.path.exists(existing):
      existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
      raise ConfigError(f"workdir {workdir}: cannot be made, {existing} is not a folder")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ConfigError(f"workdir {workdir}: cannot be written, {existing} is not writable by this "
                      "user")
