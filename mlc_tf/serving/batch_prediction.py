"""Tagging an archive of photos on Apache Beam: local ``mlc-predict``'s rows, on any Beam runner.

Files are matched and read through Beam's file systems (local paths, and
``gs://``, ``s3://``, ``hdfs://`` where the installed Beam has them), so the
images go from storage to the workers, never through the launching machine.
``RunInference`` batches them; each worker loads the exported SavedModel once
and asks its ``serving_default`` signature, whose ``valid`` answer marks an
undecodable image, so a bad image never fails a batch. Rows are formatted by
``prediction.csv_row``, the local path's own. Undecodable and unreadable files,
and a folder's files without an image name, are counted in Beam metrics and
listed in a side output of failures with the reason local mlc-predict gives;
the run goes on. Only ``mlc-predict --runner`` imports this module (the ``beam``
extra), so ``mlc_tf.serving`` works without Beam.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re

import apache_beam as beam
import tensorflow as tf
from apache_beam.io import fileio, filesystem, filesystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference import base
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult

from mlc_tf.data import corpus, image_formats
from mlc_tf.serving import prediction, signatures

METRICS_NAMESPACE = "mlc_tf"
FAILURE_COLUMNS = ["file", "reason"]
LEFT_OUT = f"left out: not a {'/'.join(image_formats.EXTENSIONS)} name"  # a folder's other files
DANGLING_LINK = "unreadable: a symbolic link to a missing file"
FOLDER_NAMED_AS_IMAGE = "unreadable: a folder, not a file"
_FAILED = "failed"  # the side outputs' tags
_JSON = "json"
_WILDCARD = re.compile(r"[*?\[]")


class SavedModelHandler(base.ModelHandler):
  """RunInference's model: an export loaded once per worker, asked through ``serving_default``.

  Beam's TensorFlow handlers load with ``keras.models.load_model``, which cannot
  open a plain SavedModel under Keras 3 (apache/beam#30616); ``tf.saved_model.load``
  can, from any file system TensorFlow reads.
  """

  def __init__(self, export_dir: str, min_batch_size: int, max_batch_size: int):
    super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
    self._export_dir = export_dir

  def load_model(self):
    return tf.saved_model.load(self._export_dir)  # the signature needs the loaded object kept alive

  def run_inference(self, batch, model, inference_args=None):
    """Answers encoded images, one ``PredictionResult`` each (probabilities, decisions, valid)."""
    outputs = model.signatures[signatures.SERVING](**{
        signatures.IMAGE_BYTES: tf.constant(batch, tf.string)
    })
    probabilities, decisions, valid = (
        outputs[key].numpy() for key in ("probabilities", "decisions", "valid"))
    return [base.PredictionResult(blob, {"probabilities": p, "decisions": d, "valid": bool(v)})
            for blob, p, d, v in zip(batch, probabilities, decisions, valid)]

  def get_num_bytes(self, batch) -> int:
    """Returns a batch's bytes for RunInference's metrics: the images' sizes.

    The default would pickle the batch.
    """
    return sum(len(blob) for blob in batch)


def _csv_line(values: list) -> str:
  """One CSV line as ``csv.writer`` writes it for local ``mlc-predict`` (quoting, ``\\r\\n``); a
  failure's path cell escaped as a row's (``prediction.spreadsheet_safe``)."""
  buffer = io.StringIO()
  csv.writer(buffer).writerow([prediction.spreadsheet_safe(values[0]), *values[1:]])
  return buffer.getvalue()


class _ReadImage(beam.DoFn):
  """A matched file -> (path, its bytes).

  One that cannot be read is counted and goes to the failures.
  """

  def setup(self):
    self._unreadable = Metrics.counter(METRICS_NAMESPACE, "unreadable")

  def process(self, readable: fileio.ReadableFile):
    path = readable.metadata.path
    special = image_formats.not_a_regular_file(path)  # a FIFO would block this worker for good
    if special:
      self._unreadable.inc()
      yield beam.pvalue.TaggedOutput(_FAILED, _csv_line([path, f"unreadable: {special}"]))
      return
    try:
      with readable.open(compression_type=filesystem.CompressionTypes.UNCOMPRESSED) as f:
        blob = f.read()
    except Exception as error:  # pylint: disable=broad-except  # each file system raises its own kinds
      self._unreadable.inc()
      yield beam.pvalue.TaggedOutput(_FAILED, _csv_line([path, f"unreadable: {error}"]))
      return
    yield path, blob


class _ImagesByName(beam.DoFn):
  """A folder's matched file -> its metadata if its name is an image's.

  Any other is counted and goes to the failures.
  """

  def setup(self):
    self._left_out = Metrics.counter(METRICS_NAMESPACE, "left_out")

  def process(self, metadata):
    if metadata.path.lower().endswith(image_formats.EXTENSIONS):
      yield metadata
      return
    self._left_out.inc()
    yield beam.pvalue.TaggedOutput(_FAILED, _csv_line([metadata.path, LEFT_OUT]))


class _Unmatched(beam.DoFn):
  """(path, reason) of a file the match could not see (``unmatched_files``) -> counted unreadable.

  It goes to the failures.
  """

  def setup(self):
    self._unreadable = Metrics.counter(METRICS_NAMESPACE, "unreadable")

  def process(self, unmatched: tuple[str, str]):
    self._unreadable.inc()
    yield _csv_line(list(unmatched))


class _FormatRows(beam.DoFn):
  """(path, answer) -> a CSV line (and a JSON line), counted.

  An undecodable image goes to the failures.
  """

  def __init__(self, label_names: list[str], probabilities: bool, json_lines: bool):
    self._label_names = label_names
    self._probabilities = probabilities
    self._json_lines = json_lines

  def setup(self):
    self._tagged = Metrics.counter(METRICS_NAMESPACE, "tagged")
    self._invalid = Metrics.counter(METRICS_NAMESPACE, "invalid")
    self._positives = [
        Metrics.counter(METRICS_NAMESPACE, f"positives_{name}") for name in self._label_names
    ]

  def process(self, keyed_result):
    path, result = keyed_result
    answer = result.inference
    if not answer["valid"]:
      # Why, as the corpus audit and local mlc-predict say it ("larger than the 40 MP limit").
      self._invalid.inc()
      reason = corpus.undecodable_reason(result.example) or corpus.REFUSED_BY_MODEL
      yield beam.pvalue.TaggedOutput(_FAILED, _csv_line([path, reason]))
      return
    self._tagged.inc()
    for counter, decision in zip(self._positives, answer["decisions"]):
      counter.inc(int(decision))
    row = prediction.csv_row(path, answer["probabilities"], answer["decisions"],
                             self._probabilities)
    yield _csv_line(row)
    if self._json_lines:
      num_labels = len(
          self._label_names)  # the probabilities as numbers, equal to the CSV's 6 decimals
      # the path as it is: JSON is no spreadsheet
      values = [path, *row[1:1 + num_labels], *(float(x) for x in row[1 + num_labels:])]
      columns = prediction.csv_columns(self._label_names, self._probabilities)
      yield beam.pvalue.TaggedOutput(_JSON, json.dumps(dict(zip(columns, values))))


def _pattern(source: str) -> tuple[str, bool]:
  """Returns (Beam file pattern, whether to keep image extensions only) for ``source``.

  It reads ``source`` as local ``list_images`` does: a glob takes every file it matches, a folder
  its images (not recursive), else a single file.
  """
  if _WILDCARD.search(source):
    return source, False
  folder = filesystems.FileSystems.join(source, "*")
  if filesystems.FileSystems.match([folder], limits=[1])[0].metadata_list:
    return folder, True
  return source, False


def _check_matches(sources: list[str]) -> list[tuple[str, bool]]:
  """Returns each source's pattern.

  A source that matches no file is an error before the run, as in local mlc-predict.
  """
  patterns = [_pattern(source) for source in sources]
  for source, (pattern, _) in zip(sources, patterns):
    if not filesystems.FileSystems.match([pattern], limits=[1])[0].metadata_list:
      raise FileNotFoundError(
          f"no image file found at {source!r} (a folder of .jpg/.png/.gif/.bmp or a glob)")
  return patterns


def unmatched_files(sources: list[str]) -> list[tuple[str, str]]:
  """Returns (path, reason) of what local ``sources`` list as images but Beam's match cannot see.

  Beam's local file system lists the files its walk finds and can ``stat``:
  it leaves out symbolic links to missing files and folders named as images
  (``dir.jpg``); local mlc-predict lists both as skips, so the launcher names
  them for the pipeline to count. Remote file systems have neither.
  """
  local = [source for source in sources if "://" not in source]
  return [(path, DANGLING_LINK if os.path.islink(path) and not os.path.exists(path) else
           FOLDER_NAMED_AS_IMAGE) for path in prediction.list_images(local)
          if not os.path.exists(path) or os.path.isdir(path)] if local else []


def build_pipeline(pipeline: beam.Pipeline,
                   patterns: list[tuple[str, bool]],
                   export_dir: str,
                   output_prefix: str,
                   label_names: list[str],
                   probabilities: bool = False,
                   min_batch_size: int = 1,
                   max_batch_size: int = 64,
                   num_shards: int = 0,
                   json_lines: bool = False,
                   unmatched: list[tuple[str, str]] = ()) -> None:
  """Adds the batch prediction steps to ``pipeline``.

  The steps match, read, RunInference, and write the CSV shards, the failures (and JSON Lines).

  Args:
    pipeline: the Beam pipeline to add to.
    patterns: (Beam file pattern, whether to keep image extensions only) per source.
    export_dir: the SavedModel the workers load.
    output_prefix: prefix of the written shards.
    label_names: the model's labels, one CSV column each.
    probabilities: also write ``prob_<label>`` columns.
    min_batch_size, max_batch_size: bounds of RunInference's batches.
    num_shards: CSV (and JSON Lines) shards to write; 0 lets the runner choose.
    json_lines: also write JSON Lines shards.
    unmatched: (path, reason) of files the match cannot see (``unmatched_files``), counted
      unreadable and listed with the failures.
  """
  matched, failed = [], []
  for index, (pattern, images_only) in enumerate(patterns):
    files = pipeline | f"Match {index}" >> fileio.MatchFiles(pattern,
                                                             fileio.EmptyMatchTreatment.ALLOW)
    if images_only:
      split = files | f"Images of {index}" >> beam.ParDo(_ImagesByName()).with_outputs(
          _FAILED, main="images")
      files = split.images
      failed.append(split[_FAILED])
    matched.append(files)
  if unmatched:
    failed.append(pipeline | "Unmatched files" >> beam.Create(list(unmatched)) |
                  "Count them" >> beam.ParDo(_Unmatched()))
  read = (
      matched | "Flatten" >> beam.Flatten() | "Paths" >> beam.Map(lambda metadata: metadata.path) |
      "Distinct" >>
      beam.Distinct()  # no path twice; and the shuffle spreads the files over the workers
      | "ReadMatches" >> fileio.ReadMatches() |
      "Read" >> beam.ParDo(_ReadImage()).with_outputs(_FAILED, main="images"))
  handler = base.KeyedModelHandler(SavedModelHandler(export_dir, min_batch_size, max_batch_size))
  answered = (
      read.images | "RunInference" >> base.RunInference(handler) |
      "Rows" >> beam.ParDo(_FormatRows(label_names, probabilities, json_lines)).with_outputs(
          _FAILED, _JSON, main="rows"))
  header = _csv_line(prediction.csv_columns(label_names, probabilities))
  answered.rows | "Write CSV" >> beam.io.WriteToText(output_prefix,
                                                     file_name_suffix=".csv",
                                                     num_shards=num_shards,
                                                     header=header,
                                                     append_trailing_newlines=False)
  ((*failed, read[_FAILED], answered[_FAILED]) | "Failures" >> beam.Flatten() |
   "Write failures" >> beam.io.WriteToText(f"{output_prefix}-failures",
                                           file_name_suffix=".csv",
                                           num_shards=1,
                                           header=_csv_line(FAILURE_COLUMNS),
                                           append_trailing_newlines=False))
  if json_lines:
    answered[_JSON] | "Write JSON Lines" >> beam.io.WriteToText(
        output_prefix, file_name_suffix=".jsonl", num_shards=num_shards)


@dataclasses.dataclass
class BatchSummary:
  # tagged, invalid, unreadable, left_out: files; positives: {label: photos decided positive}.
  counters: dict
  counters_path: str


def predict_to_shards(model: str,
                      sources: list[str],
                      output: str,
                      pipeline_args: list[str],
                      probabilities: bool = False,
                      min_batch_size: int = 1,
                      max_batch_size: int = 64,
                      num_shards: int = 0,
                      json_lines: bool = False) -> BatchSummary:
  """Runs the batch prediction pipeline, waits for it and writes its counters.

  The counters go to ``<prefix>-counters.json`` beside the shards.

  Args:
    model: an export (a SavedModel or a TF Serving model dir), which is what the workers load.
    sources: folders, globs or files of images.
    output: the shards' prefix (a trailing ``.csv`` is dropped):
      ``<prefix>-00000-of-00002.csv``, ``<prefix>-failures-00000-of-00001.csv``.
    pipeline_args: Beam's own options, ``--runner`` among them.
    probabilities: also write ``prob_<label>`` columns.
    min_batch_size, max_batch_size: bounds of RunInference's batches.
    num_shards: CSV (and JSON Lines) shards to write; 0 lets the runner choose.
    json_lines: also write JSON Lines shards.

  Returns:
    The run's counters and the path they were written to.
  """
  if min_batch_size > max_batch_size:
    raise ValueError(
        f"the smallest batch ({min_batch_size}) is larger than the largest ({max_batch_size})")
  export_dir = prediction.saved_model_dir(model)
  if export_dir is None:
    raise ValueError(
        f"{model} is not an exported SavedModel (nor a dir of versions): Beam workers load an "
        "export; make one with mlc-export --workdir=<the training workdir>")
  label_names = prediction.SavedModelPredictor(
      export_dir).label_names  # checked and named on the launcher
  patterns = _check_matches(sources)
  prefix = output[:-len(".csv")] if output.endswith(".csv") else output
  with beam.Pipeline(options=PipelineOptions(pipeline_args)) as pipeline:
    build_pipeline(pipeline, patterns, export_dir, prefix, label_names, probabilities,
                   min_batch_size, max_batch_size, num_shards, json_lines, unmatched_files(sources))
  counters = _counters(pipeline.result, label_names)
  counters_path = f"{prefix}-counters.json"
  with filesystems.FileSystems.create(counters_path) as f:
    f.write(json.dumps(counters, indent=2).encode())
  return BatchSummary(counters, counters_path)


def _counters(result: PipelineResult, label_names: list[str]) -> dict:
  """The run's metrics in our namespace, summed over steps; a counter never incremented is 0."""
  totals: dict[str, int] = {}
  for counter in result.metrics().query(
      MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
    totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + counter.result
  return {**{name: totals.get(name, 0) for name in ("tagged", "invalid", "unreadable", "left_out")},
          "positives": {name: totals.get(f"positives_{name}", 0) for name in label_names}}
