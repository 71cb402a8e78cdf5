"""One registry for the choices a config names: models, losses, optimizers.

Model Garden's ``register``/``lookup``.

A builder registers under its kind and name; its keyword-only arguments are
the choice's knobs and their defaults the only defaults (``knobs``), so a
config holds ``name`` and knob values, fed to the builder as keywords.
Builder modules register on import: ``mlc_tf.models`` for models,
``mlc_tf.train.losses`` and ``mlc_tf.train.optimizers`` for the others.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

KINDS = ("model", "loss", "optimizer")
_BUILDERS: dict[str, dict[str, Callable]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str) -> Callable[[Callable], Callable]:
  """A decorator registering a builder as choice ``name`` of ``kind``.

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
  """The builder registered as ``name`` of ``kind``; a ValueError naming the known ones if none is."""
  builders = _of(kind)
  if name not in builders:
    raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(builders))}")
  return builders[name]


def names(kind: str) -> list[str]:
  """The registered names of ``kind``, sorted."""
  return sorted(_of(kind))


def knobs(kind: str, name: str) -> dict[str, Any]:
  """The knobs of choice ``name`` with their defaults: its builder's keyword-only arguments."""
  parameters = inspect.signature(lookup(kind, name)).parameters.values()
  return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _of(kind: str) -> dict[str, Callable]:
  if kind not in _BUILDERS:
    raise ValueError(f"unknown kind of choice {kind!r}; known: {', '.join(KINDS)}")
  return _BUILDERS[kind]
