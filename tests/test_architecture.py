"""The package layout's import rules (docs/architecture.md), read from the import statements."""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "mlc_tf"
# Modules (and the configs package) any package may import: they import no other mlc_tf package.
LEAVES = {"config", "atomic_files", "registry", "markdown", "configs", "hardware"}
# package -> the other mlc_tf packages it may import from
ALLOWED = {
    "configs": set(),  # what the recipes share; a leaf like config.py
    "data": set(),
    "models": {"data"},
    "serving": {"models", "data"},
    "evaluate": {"data", "models"},
    "train": {"data", "models", "evaluate"},
    "experiments": {"data", "models", "evaluate", "train"},
    "review": {"data", "models", "serving"},
}


def _imported_packages(path: pathlib.Path) -> set[str]:
  """The mlc_tf sub-packages a module imports (``from mlc_tf.x ...``, ``from mlc_tf import x``, ``import mlc_tf.x``)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mlc_tf":
      parts = node.module.split(".")
      found.update([parts[1]] if len(parts) > 1 else [alias.name for alias in node.names])
    elif isinstance(node, ast.Import):
      found.update(alias.name.split(".")[1] for alias in node.names
                   if alias.name.startswith("mlc_tf.") and alias.name.count(".") >= 1)
  return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_the_layout_allows(package):
  for path in sorted((PACKAGE / package).rglob("*.py")):
    imported = _imported_packages(path) - {package} - LEAVES
    assert imported <= ALLOWED[package], f"{path.relative_to(PACKAGE)} imports {sorted(imported - ALLOWED[package])}"


def test_every_package_of_the_library_has_its_import_rule():
  packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
  assert packages - {"cli"} == set(ALLOWED)


def test_the_import_rules_run_one_way():
  """No package may import, however indirectly, a package that may import it."""
  def reachable(package, seen=()):
    return set().union(*({other} | reachable(other, seen + (other,)) for other in ALLOWED[package]
                         if other not in seen))
  for package in ALLOWED:
    assert package not in reachable(package), package


def test_nothing_in_the_library_imports_the_entry_points():
  for path in sorted(PACKAGE.rglob("*.py")):
    if path.parent.name != "cli":
      assert "cli" not in _imported_packages(path), path.relative_to(PACKAGE)


# One process each: mlc-review defines --model too, and absl flags cannot be defined twice.
@pytest.mark.parametrize("entry_points", [("mlc_tf.cli.export", "mlc_tf.cli.predict"), ("mlc_tf.cli.review",)])
def test_exporting_predicting_and_reviewing_load_no_training_or_evaluation_code(entry_points):
  code = (f"import sys, {', '.join(entry_points)}; print(sorted(m for m in sys.modules "
          "if m.startswith(('mlc_tf.train', 'mlc_tf.evaluate', 'mlc_tf.experiments'))))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip().splitlines()[-1] == "[]"


def test_only_batch_prediction_imports_apache_beam():
  """Beam is the optional `beam` extra: mlc_tf.serving and mlc-predict without --runner work without it."""
  for path in sorted(PACKAGE.rglob("*.py")):
    tree = ast.parse(path.read_text())
    top_level = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    top_level |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  and node.module}
    if "apache_beam" in top_level:
      assert path.relative_to(PACKAGE).as_posix() == "serving/batch_prediction.py", path.relative_to(PACKAGE)
  code = "import sys, mlc_tf.serving, mlc_tf.cli.predict; print(sorted(m for m in sys.modules if 'beam' in m))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip().splitlines()[-1] == "[]"


def test_the_layers_module_registers_every_custom_layer_of_the_library():
  """A saved model loads after importing models.layers alone: no other module defines a Keras layer."""
  for path in sorted(PACKAGE.rglob("*.py")):
    if path.name == "layers.py":
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ClassDef):
        bases = {ast.unparse(base) for base in node.bases}
        assert not bases & {"keras.layers.Layer", "layers.Layer"}, f"{path.relative_to(PACKAGE)}: {node.name}"


def test_tests_share_helpers_through_a_module_not_conftest():
  """conftest.py is pytest's (fixtures); importing it by name breaks as soon as two conftest files exist."""
  for path in sorted((PACKAGE.parent / "tests").glob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      modules = ([node.module] if isinstance(node, ast.ImportFrom) else
                 [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
      assert "conftest" not in modules, f"tests/{path.name} imports conftest"


def test_every_file_the_library_opens_is_closed_by_a_with_block():
  for path in sorted(PACKAGE.rglob("*.py")):
    tree = ast.parse(path.read_text())
    in_with = {id(item.context_expr) for node in ast.walk(tree) if isinstance(node, (ast.With, ast.AsyncWith))
               for item in node.items}
    for node in ast.walk(tree):
      if isinstance(node, ast.Call) and ast.unparse(node.func) == "open":
        assert id(node) in in_with, f"{path.relative_to(PACKAGE)}:{node.lineno}: open() outside a with block"
