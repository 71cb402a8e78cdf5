"""The scripts under tools/ that turn runs into the figures of docs/."""

import json
import os
import re
import subprocess
import sys

import pytest
from helpers import REPO_ROOT, make_tiny_corpus


def _results_table(*args):
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "results_table.py"),
                         *args],
                        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


def test_results_table_prints_a_row_from_a_training_report(tiny_trained):
  _, workdir, _ = tiny_trained
  proc = _results_table(f"--run=tiny, two epochs={workdir}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  header, rule, row = proc.stdout.strip().splitlines()
  assert header.startswith("| run | micro P |") and rule.startswith("|---|")
  with open(os.path.join(workdir, "report.json")) as f:
    report = json.load(f)
  cells = [cell.strip() for cell in row.strip("|").split("|")]
  assert cells[0] == "tiny, two epochs"
  assert cells[3] == f"{report['at_calibrated']['micro']['f1']:.3f}"
  assert cells[7] == f"{report['average_precision']['map']:.3f}"
  assert cells[8] == f"{report['training']['epochs']} ({report['training']['best_epoch']})"
  assert cells[10] == f"{report['training']['images_per_second']:.0f}"
  assert len(cells) == len(header.strip("|").split("|"))


def test_results_table_averages_the_runs_of_one_row(tiny_trained, tmp_path):
  _, workdir, _ = tiny_trained
  with open(os.path.join(workdir, "report.json")) as f:
    report = json.load(f)
  other = tmp_path / "other"
  other.mkdir()
  shifted = json.loads(json.dumps(report))
  shifted["at_calibrated"]["micro"]["f1"] += 0.1
  (other / "report.json").write_text(json.dumps(shifted))
  proc = _results_table(f"--run=two seeds={workdir},{other}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  cells = [cell.strip() for cell in proc.stdout.strip().splitlines()[-1].strip("|").split("|")]
  f1 = report["at_calibrated"]["micro"]["f1"]
  assert cells[3] == f"{f1 + 0.05:.3f} ± {0.05:.3f}"
  assert cells[7] == f"{report['average_precision']['map']:.3f} ± 0.000"


def test_results_table_rejects_a_run_without_a_label():
  proc = _results_table("--run=workdirs/best")
  assert proc.returncode != 0 and "LABEL=WORKDIR" in proc.stderr


def test_benchmark_rate_says_how_many_cores_were_busy_and_what_was_stolen():
  sys.path.insert(0, REPO_ROOT)
  from tools import timing
  with timing.Rate(1000) as rate:
    sum(range(200_000))
  assert (rate.per_wall > 0 and rate.per_cpu > 0
          and rate.cores == pytest.approx(rate.per_wall / rate.per_cpu))
  assert re.fullmatch(r"\d+\.\d cores(, stolen \d+%)?", rate.conditions())
  assert rate.describe() == f"{rate.per_wall:.1f} ({rate.conditions()})"


def test_timed_fit_times_the_steps_after_the_first():
  sys.path.insert(0, REPO_ROOT)
  import keras
  import tensorflow as tf

  from tools import timing
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  model.compile(optimizer="sgd", loss="mse")
  data = tf.data.Dataset.from_tensors((tf.ones((4, 2)), tf.ones((4, 1)))).repeat()
  rate = timing.timed_fit(model, data, steps=3, batch_size=4)
  assert rate.work == 8 and rate.per_wall > 0 and rate.per_cpu > 0  # 2 timed steps of 4 images
  assert model.optimizer.iterations.numpy() == 3
  with pytest.raises(ValueError, match="at least 2 steps"):
    timing.timed_fit(model, data, steps=1, batch_size=4)


def test_bench_batch_norm_times_both_layers_on_a_tiny_resnet():
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "tools", "bench_batch_norm.py"),
       "--config=configs/best.py",
       "--config.data.image_size=16", "--config.model.width=4", "--config.model.blocks=2",
       "--config.model.stages=2",
       "--config.train.batch_size=4", "--steps=2", "--turns=1"],
      capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
      env={**os.environ, "PYTHONPATH": REPO_ROOT})
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.strip().splitlines()
  assert lines[1].startswith("training, keras BatchNormalization") and "images/CPU-s" in lines[1]
  assert (lines[2].startswith("training, FusedBatchNormalization")
          and lines[3].startswith("fused / keras: "))


def test_bench_batch_norm_refuses_a_model_without_batch_norm():
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "tools", "bench_batch_norm.py"),
       "--config=configs/seed_baseline.py"],
      capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
      env={**os.environ, "PYTHONPATH": REPO_ROOT})
  assert proc.returncode != 0 and "has no batch normalization to compare" in proc.stderr


def test_bench_input_compares_with_pil_and_prices_each_decode_stage(tmp_path):
  corpus = str(tmp_path / "corpus")
  make_tiny_corpus(corpus, num_images=40)
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "tools", "bench_input.py"), f"--data_dir={corpus}",
       "--num_images=40",
       "--image_size=16", "--batch_size=8", "--cached_epochs=1"],
      capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
      env={**os.environ, "PYTHONPATH": REPO_ROOT})
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = proc.stdout
  assert re.search(r"tf\.data, first epoch .* \d+\.\d\dx, \d+\.\d\dx", out)
  names = ["read the file", "full decode", "antialiased resize of the full decode",
           "decode_and_resize (checks, DCT-scaled decode, resize)"]
  stages = re.findall(r"^  (" + "|".join(map(re.escape, names)) + r") +(-?\d+\.\d{3})$", out,
                      re.MULTILINE)
  assert [name for name, _ in stages] == names, out


def test_gpu_check_runs_its_steps_on_the_cpu(tmp_path):
  """tools/gpu_check.sh --quick: every step (precision, training with and without XLA, export,
  serving) passes."""
  corpus = str(tmp_path / "corpus")
  make_tiny_corpus(corpus, num_images=40)
  out = tmp_path / "out"
  proc = subprocess.run(["bash", os.path.join(REPO_ROOT, "tools", "gpu_check.sh"), "--quick",
                         str(out)],
                        capture_output=True, text=True, timeout=900,
                        env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": REPO_ROOT,
                             "DATA_DIR": corpus})
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
  for step in ("hardware", "train_jit_False", "train_jit_True", "export", "serving"):
    assert f"== {step}: ok" in proc.stdout
  assert "auto precision: " in (out / "hardware.txt").read_text()
  assert "training reaches" in (out / "train_jit_True.txt").read_text()
  assert "throughput, batch 64" in (out / "serving.txt").read_text()
  assert list((out / "saved_models" / "demo").iterdir())


def test_stream_shares_measures_the_ways_of_adapting_on_held_out_stream_photos(tiny_trained,
                                                                                tmp_path):
  import numpy as np
  from PIL import Image
  root, workdir, _ = tiny_trained
  make_tiny_corpus(str(tmp_path / "tagged"), num_images=40, seed=11, grayscale_every=0)
  stream = tmp_path / "tagged" / "images"
  for k in range(40):  # half the stream looks like no labelled photo
    Image.fromarray(np.full((16, 16, 3), 255, np.uint8)).save(stream / f"blank{k}.png")
  shares = tmp_path / "shares.csv"
  shares.write_text("cat,0.2\ndog,0.2\nsun,0.01\n(none),0.5\n")
  output, cache = tmp_path / "figures.json", tmp_path / "probs.npz"
  args = [sys.executable, os.path.join(REPO_ROOT, "tools", "stream_shares.py"),
          f"--model={workdir}", f"--data_dir={root}", f"--images={stream}",
          f"--corpus_shares={shares}", "--split=all", "--min_target_images=30",
          f"--output={output}", f"--cache={cache}"]
  for _ in range(2):  # the second run reads the cached probabilities
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
  assert "fitted on 40 (seed 0), held-out 40" in proc.stdout
  lines = proc.stdout.splitlines()
  assert any(line.startswith("| (none) | 0.500 |") for line in lines)
  assert not any(line.startswith("| sun |") for line in lines)  # corpus share under 2 %
  figures = json.loads(output.read_text())
  gated = figures["PU gate (--prevalence=estimate)"]
  assert figures["as trained"]["estimated_no_label"] is None
  assert 0.05 < gated["estimated_no_label"] < 0.8  # 40 fitted photos: a rough estimate
  # the blank photos are gated out: more photos without a label than as trained
  assert (gated["shares"]["held-out"]["(none)"]
          > figures["as trained"]["shares"]["held-out"]["(none)"])


def test_bench_formats_compares_each_format_with_the_saved_model(tiny_trained, tmp_path):
  root, workdir, _ = tiny_trained
  output = tmp_path / "formats.json"
  proc = subprocess.run([
      sys.executable, os.path.join(REPO_ROOT, "tools", "bench_formats.py"), f"--workdir={workdir}",
      f"--data_dir={root}", "--formats=litert_float32,onnx", "--latency_calls=2",
      "--batch_calls=2", "--batch_size=4", f"--output={output}"
  ], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
  assert [line.split("|")[1].strip() for line in table[1:]] == [
      "SavedModel (serving_default on bytes)", "litert_float32", "onnx"]
  rows = json.loads(output.read_text())["rows"]
  assert all(row["identical"] == 1.0 and row["micro_f1"] == rows[0]["micro_f1"] for row in rows)
  assert all(row["latency_ms"] > 0 and row["images_per_s"] > 0 for row in rows[1:])


def test_threshold_rules_scores_each_rule_on_the_test_split_from_cached_probabilities(
    tiny_trained, tmp_path):
  import shutil
  root, workdir, _ = tiny_trained
  copy = shutil.copytree(workdir, tmp_path / "run")  # the cache is written into the workdir
  output = tmp_path / "rules.json"
  args = [sys.executable, os.path.join(REPO_ROOT, "tools", "threshold_rules.py"),
          f"--workdir={copy}", f"--data_dir={root}", "--bootstrap=5", f"--output={output}"]
  first = subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  assert (copy / "split_probabilities.npz").is_file()
  second = subprocess.run(args + ["--val_photos=6", "--draws=3"], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300)
  assert second.returncode == 0, second.stderr[-3000:]
  assert "random subsets of 6 validation photos, 3 draws" in second.stdout
  rows = {line.split("|")[1].strip() for line in second.stdout.splitlines()
          if line.startswith("| ")}
  assert {"f1", "bagged", "shrunk", "test-tuned"} <= rows
  figures = json.loads(output.read_text())[str(copy)]
  assert sorted(figures) == sorted(["f1", "bagged", "shrunk", "test-tuned"])
  assert all(0 <= figures[rule][k] <= 1 for rule in figures for k in ("micro_f1", "macro_f1"))


def test_compare_label_issues_measures_overlap_and_draws_samples(tmp_path):
  import numpy as np
  import pandas as pd
  rng = np.random.default_rng(0)
  truth = (rng.random((300, 2)) < 0.4).astype(int)
  given = truth.copy()
  given[:30, 0] = 1 - given[:30, 0]  # cat flipped on 30 images
  oof = pd.DataFrame({"fold": 1, "cat": given[:, 0], "dog": given[:, 1],
                      "prob_cat": np.clip(truth[:, 0] * 0.7 + rng.normal(0.15, 0.08, 300), 0, 1),
                      "prob_dog": np.clip(truth[:, 1] * 0.7 + rng.normal(0.15, 0.08, 300), 0, 1),
                      "threshold_cat": 0.5, "threshold_dog": 0.5},
                     index=pd.Index(range(1, 301), name="image_id"))
  oof.to_csv(tmp_path / "oof_predictions.csv")
  out = tmp_path / "compare"
  proc = subprocess.run([
      sys.executable, os.path.join(REPO_ROOT, "tools", "compare_label_issues.py"),
      f"--oof={tmp_path}", f"--output_dir={out}", "--top=10,20", "--sample_top=40",
      "--samples=3,3,2", "--flips=20"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads((out / "comparison.json").read_text())
  assert [o["k"] for o in result["overlaps"]] == [10, 20]
  # both rankers find the flips: their top 20 agree, and they rank all pairs alike
  assert result["overlaps"][1]["jaccard"] > 0.5 and result["spearman"]["all_pairs"] > 0.5
  assert {row["label"] for row in result["per_label"]} == {"cat", "dog"}
  both = pd.read_csv(out / "sample_both.csv")
  assert len(both) == 2 and "verdict" in both and set(both["image_id"]) <= set(range(1, 31))
  assert "| top K |" in proc.stdout
  known = result["known_errors"]
  assert known["flips"] == 20 and [r["ranker"] for r in known["rows"]] == ["mlc-suspects",
                                                                           "cleanlab"]
  assert all(0 <= r["precision_at"]["20"] <= 1 for r in known["rows"])


def test_active_loop_runs_both_strategies_and_writes_its_table_and_plot(tmp_path):
  """A smoke run of the simulated loop: a tiny corpus, one round, one epoch."""
  make_tiny_corpus(str(tmp_path / "corpus"), num_images=48, size=16)
  output = tmp_path / "loop"
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "tools", "active_loop.py"),
       f"--data_dir={tmp_path / 'corpus'}", f"--output_dir={output}", "--rounds=1", "--seeds=1",
       "--start=10", "--add=6", "--val_images=10", "--test_fraction=0.25", "--image_size=16",
       "--width=4", "--depth=2", "--epochs=1", "--batch_size=8"],
      capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(output / "results.json") as f:
    rows = json.load(f)["rows"]
  assert [(r["strategy"], r["round"], r["labelled"]) for r in rows] == [
      ("ranked", 0, 10), ("ranked", 1, 16), ("random", 0, 10), ("random", 1, 16)]
  assert rows[0]["macro_f1"] == rows[2]["macro_f1"]  # the strategies share the first model
  assert (output / "active_loop.png").stat().st_size > 0 and (output / "images_16.npz").exists()
  assert "results.csv" in proc.stdout
