"""One registry for the choices a config names: models, losses, optimizers.

Model Garden's ``register``/``lookup``.

A builder registers under its kind and name; its keyword-only arguments are
the choice's knobs and their defaults the only defaults (``knobs``), so a
config holds ``name`` and knob values, fed to the builder as keywords.
Builder modules register on import: ``mlc_tf.models`` for models,
``mlc_tf.train.losses`` and ``mlc_tf.train.optimizers`` for the others. They
import this module, so it imports none of them (``mlc_tf.factory`` does, to
choose by name); it reads only the config schema, for the fields every
choice of a kind shares.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from mlc_tf import config as config_lib

KINDS = ("model", "loss", "optimizer")
_BUILDERS: dict[str, dict[str, Callable]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str) -> Callable[[Callable], Callable]:
  """Returns a decorator registering a builder as choice ``name`` of ``kind``.

  Raises:
    ValueError: ``kind`` is not one of ``KINDS``, or ``name`` is taken.
  """
  def wrap(builder: Callable) -> Callable:
    if name in _of(kind):
      raise ValueError(f"{kind} {name!r} registered twice")
    _BUILDERS[kind][name] = builder
    return builder
  return wrap


def lookup(kind: str, name: str) -> Callable:
  """Looks up the builder registered as ``name`` of ``kind``; a ValueError names the known ones
  if none is."""
  builders = _of(kind)
  if name not in builders:
    raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(builders))}")
  return builders[name]


def names(kind: str) -> list[str]:
  """Returns the registered names of ``kind``, sorted."""
  return sorted(_of(kind))


def knobs(kind: str, name: str) -> dict[str, Any]:
  """Returns the knobs of choice ``name`` with their defaults: its builder's keyword-only
  arguments."""
  parameters = inspect.signature(lookup(kind, name)).parameters.values()
  return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def checked_knobs(kind: str, name: str, given: Mapping[str, Any],
                  knobs: Mapping[str, Any]) -> dict[str, Any]:
  """Returns ``given`` if each key is one of the ``knobs`` (name -> default) of ``name``, else
  raises a ValueError."""
  unknown = sorted(set(given) - set(knobs))
  if unknown:
    declared = ", ".join(f"{knob}={default!r}" for knob, default in knobs.items()) or "none"
    raise ValueError(f"{kind} {name!r} takes no {', '.join(unknown)}; its knobs: {declared}. "
                     f"Choose another {kind} with --config=<recipe>.py:{kind}=<name>, "
                     "which declares that one's knobs")
  return dict(given)


def knob_values(kind: str, group: Mapping[str, Any]) -> dict[str, Any]:
  """Returns the knobs ``group`` (config.<kind>) sets, over their defaults; shared fields left out.

  A knob its choice does not take is an error naming the knobs it does.
  """
  knobs_of_choice = knobs(kind, group["name"])
  shared = config_lib.base_config()[kind]
  given = {field: value for field, value in group.items() if field not in shared}
  return {**knobs_of_choice, **checked_knobs(kind, group["name"], given, knobs_of_choice)}


def _of(kind: str) -> dict[str, Callable]:
  if kind not in _BUILDERS:
    raise ValueError(f"unknown kind of choice {kind!r}; known: {', '.join(KINDS)}")
  return _BUILDERS[kind]
