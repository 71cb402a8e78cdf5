"""The package layout's import rules (docs/architecture.md), read from the import statements."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "mlc_tf"
# Top-level modules any package may import: they import no mlc_tf module but each other.
LEAVES = {"config", "atomic_files", "registry", "markdown", "hardware"}
# package, or top-level module that is no leaf -> the other ones it may import from
ALLOWED = {
    "configs": {"data"},  # what the recipes share: flickr14's label names are data's
    "data": set(),
    "models": {"data"},
    "serving": {"models", "data"},
    "evaluate": {"data", "models"},
    "train": {"data", "models", "evaluate"},
    "factory": {"models", "train"},  # chooses by name: imports every builder module
    "experiments": {"data", "models", "evaluate", "train", "factory"},
    "review": {"data", "models", "serving"},
}


def _imported_packages(path: pathlib.Path) -> set[str]:
  """The mlc_tf sub-packages a module imports (``from mlc_tf.x ...``, ``from mlc_tf import x``,
  ``import mlc_tf.x``)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mlc_tf":
      parts = node.module.split(".")
      found.update([parts[1]] if len(parts) > 1 else [alias.name for alias in node.names])
    elif isinstance(node, ast.Import):
      found.update(alias.name.split(".")[1] for alias in node.names
                   if alias.name.startswith("mlc_tf.") and alias.name.count(".") >= 1)
  return found


def _files(unit: str) -> list[pathlib.Path]:
  """The files of a package, or the one file of a top-level module."""
  if (PACKAGE / unit).is_dir():
    return sorted((PACKAGE / unit).rglob("*.py"))
  return [PACKAGE / f"{unit}.py"]


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_packages_import_only_what_the_layout_allows(unit):
  for path in _files(unit):
    imported = _imported_packages(path) - {unit} - LEAVES
    forbidden = sorted(imported - ALLOWED[unit])
    assert not forbidden, f"{path.relative_to(PACKAGE)} imports {forbidden}"


def test_leaves_import_only_leaves():
  for leaf in sorted(LEAVES):
    assert _imported_packages(PACKAGE / f"{leaf}.py") <= LEAVES, leaf


def test_every_package_and_module_of_the_library_has_its_import_rule():
  units = {path.parent.name for path in PACKAGE.glob("*/__init__.py")} | {
      path.stem for path in PACKAGE.glob("*.py") if path.name != "__init__.py"}
  assert units - {"cli"} == set(ALLOWED) | LEAVES


def test_the_import_rules_run_one_way():
  """No package may import, however indirectly, a package that may import it."""
  def reachable(package, seen=()):
    return set().union(*({other} | reachable(other, seen + (other,)) for other in ALLOWED[package]
                         if other not in seen))
  for package in ALLOWED:
    assert package not in reachable(package), package


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
  """Module -> the mlc_tf modules it imports, from every import statement, inside functions too.

  ``from a import b`` is module ``a.b`` where ``b`` is a submodule, else ``a``
  (a name ``a`` defines or re-exports). Importing ``a.b.c`` also runs the
  ``__init__`` of ``a`` and ``a.b``: each such package counts, save those the
  importing module sits in, which are already loading when it runs (so a
  package's ``__init__`` may re-export its submodules, and they may import
  each other through it).
  """
  modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom):
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
        module = ".".join(filter(None, [base, node.module]))
        targets.update(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module
                       for alias in node.names)
    graph[name] = set()
    for target in targets:
      parts = target.split(".")
      for end in range(1, len(parts) + 1):
        enclosing = ".".join(parts[:end])
        own_package = name == enclosing or name.startswith(enclosing + ".")
        if enclosing in modules and enclosing != name and (end == len(parts) or not own_package):
          graph[name].add(enclosing)
  return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan's algorithm)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for other in sorted(graph[node]):
      if other not in index:
        visit(other)
        low[node] = min(low[node], low[other])
      elif other in on_stack:
        low[node] = min(low[node], index[other])
    if low[node] == index[node]:
      component = []
      while not component or component[-1] != node:
        component.append(stack.pop())
        on_stack.discard(component[-1])
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def test_no_module_of_the_library_imports_itself_through_others():
  """A circle, even through an import inside a function, means none of its modules stands alone."""
  graph = _import_graph()
  assert graph["mlc_tf.factory"] >= {"mlc_tf.config", "mlc_tf.models", "mlc_tf.train.losses"}
  described = []
  for circle in _circles(graph):
    edges = ", ".join(f"{module} imports {sorted(graph[module] & set(circle))}"
                      for module in circle)
    described.append(f"{' <-> '.join(circle)} ({edges})")
  assert not described, "import circles: " + "; ".join(described)


def test_each_entry_point_sets_tensorflows_environment_before_its_imports():
  """TensorFlow reads its environment once, when it loads: ``cli.start()`` precedes every import.

  mlc-client loads no TensorFlow, so it has nothing to set.
  """
  setup = (PACKAGE.parent / "setup.cfg").read_text()
  entry_points = set(re.findall(r"= mlc_tf\.cli\.(\w+):run", setup)) - {"client"}
  assert "train" in entry_points
  for name in sorted(entry_points):
    tree = ast.parse((PACKAGE / "cli" / f"{name}.py").read_text())
    statements = [ast.unparse(node) for node in tree.body[1:4]]  # after the docstring
    assert statements == [
        "from __future__ import annotations", "from mlc_tf import cli", "cli.start()"
    ], name


def test_nothing_in_the_library_imports_the_entry_points():
  for path in sorted(PACKAGE.rglob("*.py")):
    if path.parent.name != "cli":
      assert "cli" not in _imported_packages(path), path.relative_to(PACKAGE)


# One process each: mlc-review defines --model too, and absl flags cannot be defined twice.
def _modules_loaded_by(imports: str) -> list[str]:
  """The modules a fresh interpreter holds after ``imports`` (a statement), its last stdout line."""
  code = f"{imports}; import sys; print(sorted(sys.modules))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True).stdout
  return ast.literal_eval(out.strip().splitlines()[-1])


@pytest.mark.parametrize("entry_points", [("mlc_tf.cli.export", "mlc_tf.cli.predict"),
                                          ("mlc_tf.cli.review",)])
def test_exporting_predicting_and_reviewing_load_no_training_or_evaluation_code(entry_points):
  loaded = _modules_loaded_by(f"import {', '.join(entry_points)}")
  assert not [m for m in loaded
              if m.startswith(("mlc_tf.train", "mlc_tf.evaluate", "mlc_tf.experiments"))]


def test_only_batch_prediction_imports_apache_beam():
  """Beam is the optional `beam` extra: mlc_tf.serving and mlc-predict without --runner work without
  it."""
  for path in sorted(PACKAGE.rglob("*.py")):
    tree = ast.parse(path.read_text())
    top_level = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    top_level |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    if "apache_beam" in top_level:
      assert path.relative_to(
          PACKAGE).as_posix() == "serving/batch_prediction.py", path.relative_to(PACKAGE)
  assert not [m for m in _modules_loaded_by("import mlc_tf.serving, mlc_tf.cli.predict")
              if "beam" in m]


def test_the_layers_module_registers_every_custom_layer_of_the_library():
  """A saved model loads after importing models.layers alone: no other module defines a Keras
  layer."""
  for path in sorted(PACKAGE.rglob("*.py")):
    if path.name == "layers.py":
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ClassDef):
        bases = {ast.unparse(base) for base in node.bases}
        assert not bases & {"keras.layers.Layer", "layers.Layer"
                           }, f"{path.relative_to(PACKAGE)}: {node.name}"


def test_tests_share_helpers_through_a_module_not_conftest():
  """conftest.py is pytest's (fixtures); importing it by name breaks as soon as two conftest files
  exist."""
  for path in sorted((PACKAGE.parent / "tests").glob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      modules = ([node.module] if isinstance(node, ast.ImportFrom) else
                 [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
      assert "conftest" not in modules, f"tests/{path.name} imports conftest"


def test_every_file_the_library_opens_is_closed_by_a_with_block():
  for path in sorted(PACKAGE.rglob("*.py")):
    tree = ast.parse(path.read_text())
    in_with = {
        id(item.context_expr) for node in ast.walk(tree)
        if isinstance(node, (ast.With, ast.AsyncWith)) for item in node.items
    }
    for node in ast.walk(tree):
      if isinstance(node, ast.Call) and ast.unparse(node.func) == "open":
        assert id(
            node
        ) in in_with, f"{path.relative_to(PACKAGE)}:{node.lineno}: open() outside a with block"
