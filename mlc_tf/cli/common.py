"""What the absl entry points share: their common flags, how those resolve, errors, and ``run()``.

Only cli/ reads flags. Flags defined by the helpers here belong to the entry
point that calls them (``flags.disclaim_key_flags``), so its ``--help`` lists them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

import mlc_tf

flags.disclaim_key_flags()

DATA_DIR_HELP = ("Corpus directory (images/ + annotations/) or source spec. "
                 "Default: config.data.source, else the built-in demo corpus.")


def repo_config(name: str) -> str:
  """Returns the path of ``configs/<name>`` in the source tree the package was installed from."""
  return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(mlc_tf.__file__))), "configs",
                      name)


def define_data_dir_flag(help_text: str = DATA_DIR_HELP) -> flags.FlagHolder[str | None]:
  """Defines ``--data_dir``, the corpus; :func:`data_dir` resolves it."""
  return flags.DEFINE_string("data_dir", None, help_text)


def data_dir(flag_value: str | None, config_source: str | None = None) -> str:
  """Resolves the corpus: ``--data_dir``, else the config's data.source, else the built-in demo
  corpus (generated on first use)."""
  source = flag_value or config_source
  if source:
    return source
  # imported here: mlc-client, which needs none of this, stays free of TensorFlow
  from mlc_tf.data import builtin
  return builtin.ensure_demo_corpus()


class TrainingFlags:
  """``--config``, ``--data_dir`` and a workdir flag: what every entry point that trains models
  takes.

  ``workdir_help`` opens the workdir flag's help; "Default: workdirs/<prefix><export name>." ends
  it.
  """

  def __init__(self, workdir_prefix: str = "", workdir_flag: str = "workdir",
               workdir_help: str = "", data_dir_help: str = DATA_DIR_HELP):
    self.config = config_flags.DEFINE_config_file("config", repo_config("demo.py"),
                                                  "Training config file.")
    self.data_dir = define_data_dir_flag(data_dir_help)
    self.workdir = flags.DEFINE_string(
        workdir_flag, None, f"{workdir_help}Default: workdirs/{workdir_prefix}<export name>.")
    self._workdir_prefix = workdir_prefix

  def resolve(self) -> tuple[ml_collections.ConfigDict, str, str]:
    """Returns the config, the corpus (see :func:`data_dir`) and the workdir (default:
    workdirs/<prefix><export name>).

    Raises:
      config.ConfigError: a config value no run can use, or a workdir that cannot be made; said
        before anything is read or written.
    """
    # imported here: mlc-export, -predict and -review load no training code
    from mlc_tf import config as config_lib
    from mlc_tf import factory
    cfg = self.config.value
    try:
      factory.check_choices(cfg)
    # e.g. --config.model.name=resnet on a recipe that declares simple_cnn's knobs
    except ValueError as error:
      raise app.UsageError(str(error)) from None
    config_lib.check_values(cfg)
    workdir = self.workdir.value or os.path.join("workdirs",
                                                 f"{self._workdir_prefix}{cfg.export.name}")
    config_lib.check_workdir(workdir)
    return cfg, data_dir(self.data_dir.value, cfg.data.source), workdir


@contextlib.contextmanager
def exit_on_error(program: str, *errors: type[Exception]) -> Iterator[None]:
  """Turns ``errors`` raised in the block into ``<program>: error: <message>`` and exit status 1.

  For errors that mean bad input: the user is told what to fix, not shown a traceback.
  """
  try:
    yield
  except errors as error:
    raise SystemExit(f"{program}: error: {error}") from None


def parse_flags(argv: list[str]) -> list[str]:
  """Parses the flags as absl does; a ``--config.<field>=`` override of a field the config lacks
  is a usage error.

  ml_collections raises a bare AttributeError naming only the last part of the
  field; recipes declare the knobs of the model, loss and optimizer they
  choose and no others (``factory.choose``), so the message says how to choose another.
  """
  try:
    return app.parse_flags_with_usage(argv)
  except AttributeError as error:
    missing = str(error).strip("\"'")
    overrides = [arg.split("=")[0] for arg in argv[1:] if arg.startswith("--config.")]
    named = [arg for arg in overrides if arg.rsplit(".", 1)[-1] == missing] or overrides
    raise SystemExit(
        f"{os.path.basename(argv[0])}: error: {', '.join(named)}: the config has no such field. A "
        "recipe declares only the knobs of the model, loss and optimizer it chooses; "
        "choose another "
        "with --config=<recipe>.py:model=<name> (also loss=, optimizer=; comma-separated), whose "
        "knobs it then declares (mlc_tf/factory.py: choose)") from None


def run(main: Callable[[list[str]], None], verbosity: int) -> None:
  """Runs an entry point: sets absl logging's verbosity, parses the flags, calls ``main``."""
  _help_describes(sys.modules[main.__module__])
  logging.set_verbosity(verbosity)
  app.run(main, flags_parser=parse_flags)


def _help_describes(entry_point) -> None:
  """Makes ``--help`` show ``entry_point``'s docstring and flags when a console script's shim is
  ``__main__``.

  absl's ``--help`` lists the key flags of the module named ``sys.argv[0]``
  and prints ``__main__``'s docstring; under ``mlc-train`` both are the
  generated shim's, which has neither (``python -m`` runs the entry point as
  ``__main__`` itself).
  """
  if entry_point.__name__ == "__main__":
    return
  for flag in flags.FLAGS.get_key_flags_for_module(entry_point.__name__):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  shim = sys.modules["__main__"]
  if not shim.__doc__:
    shim.__doc__ = entry_point.__doc__


def first_ten(items: list[str], describe=str) -> str:
  """The first ten of ``items`` as ``describe`` words them, comma-separated, with an ellipsis where
  more were left off."""
  return f"{', '.join(describe(item) for item in items[:10])}{' …' if len(items) > 10 else ''}"


def print_skipped_images(skipped: list[str]) -> None:
  """Prints how many files were skipped as not readable images, the first ten with the reason the
  corpus audit gives for each."""
  if not skipped:
    return
  from mlc_tf.data import corpus  # loads TensorFlow: only when there is something to explain

  def with_reason(path: str) -> str:
    _, unreadable, undecodable = corpus.check_image(path)
    return f"{path} ({unreadable or undecodable or corpus.REFUSED_BY_MODEL})"

  print(f"skipped {len(skipped)} file(s) that are not readable images: "
        f"{first_ten(skipped, with_reason)}")
