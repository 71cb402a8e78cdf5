"""mlc-validate-data: check a corpus before training; decode every image once and write the audit.

  mlc-validate-data --data_dir=../shared/datasets/flickr14               # audit -> data_audit.json
  mlc-validate-data --data_dir=corpus --strict --output=corpus_audit.json
                    # any skip is an error (exit 1)

Prints a summary table and the warnings; exits 1 when the corpus cannot be
used (unreadable files, garbage in an annotation file, or any skip under
--strict). Training runs the same check before its first epoch.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

from absl import flags, logging

from mlc_tf.cli import common
from mlc_tf.data import corpus

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Corpus directory (images/ + annotations/).",
                                required=True)
_LABELS = flags.DEFINE_list("labels", None,
                            "Labels to keep (comma-separated); default: every annotation file.")
_STRICT = flags.DEFINE_bool("strict", False, "Treat every skipped or odd file as an error.")
_OUTPUT = flags.DEFINE_string("output", "data_audit.json", "Where the audit goes (JSON).")
_WORKERS = flags.DEFINE_integer("workers", None, "Parallel decodes; default: tf.data's autotuning.")


def _report(audit: corpus.CorpusAudit) -> None:
  print(audit.summary_table())
  for line in audit.warnings():
    print(f"warning: {line}")
  audit.write_json(_OUTPUT.value)
  print(f"audit: {_OUTPUT.value}")


def main(argv):
  del argv
  try:
    _, audit = corpus.load_corpus(_DATA_DIR.value, _LABELS.value, strict=_STRICT.value,
                                  workers=_WORKERS.value, progress=True)
  except corpus.CorpusError as error:
    if error.audit is not None:
      _report(error.audit)
    raise SystemExit(f"mlc-validate-data: error: {error}") from None
  _report(audit)


def run():
  common.run(main, logging.WARNING)


if __name__ == "__main__":
  run()
