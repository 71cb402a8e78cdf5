"""mlc-review: a local web app to review label suspects, browse the corpus and tag photos with a
model.

  mlc-review --data_dir=../shared/datasets/flickr14 --model=workdirs/best \
             --suspects=workdirs/cv_flickr14/suspects/suspects.csv --corrections=corrections.csv

Then open http://127.0.0.1:8080/. Every decision is written at once to
--corrections, the file --config.data.corrections reads; the server can be
stopped at any time and resumes at the first undecided suspect. --model takes
a training workdir (model.keras), a SavedModel version dir or a TF Serving
model dir; without it the pages show no predictions and cannot tag. Grad-CAM
heat maps on a photo's page need the Keras model (a workdir or model.keras).

With --suggestions (mlc-suggest's CSV), "Tag next" shows those untagged
photos one by one; their tags go to --additions (default: additions.csv in
the photos' common folder), the file --config.data.additions reads.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

from absl import flags, logging
from werkzeug import serving

from mlc_tf.cli import common
from mlc_tf.data import corpus
from mlc_tf.review import app as app_lib
from mlc_tf.review import state as state_lib

_LOOPBACK = ("127.0.0.1", "localhost", "::1")

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Corpus directory (images/ + annotations/).",
                                required=True)
_MODEL = flags.DEFINE_string("model", None,
                             "model.keras, a training workdir, or a SavedModel (version) dir "
                             "(heat maps need model.keras or the workdir).")
_SUSPECTS = flags.DEFINE_string("suspects", None,
                                "mlc-suspects' suspects.csv, to review one row at a time.")
_CORRECTIONS = flags.DEFINE_string("corrections", None,
                                   "The corrections CSV the decisions go to (created if absent).",
                                   required=True)
_SUGGESTIONS = flags.DEFINE_string("suggestions", None,
                                   "mlc-suggest's CSV: the untagged photos to tag next.")
_ADDITIONS = flags.DEFINE_string(
    "additions", None, "With --suggestions: the additions CSV their tags go to (created if "
    "absent; in the photos' folder or above it). Default: additions.csv in their common folder.")
_HOST = flags.DEFINE_string("host", "127.0.0.1",
                            "Address to bind; anything but loopback exposes the corpus.")
_ALLOWED_HOSTS = flags.DEFINE_list(
    "allowed_hosts", [], "More host names (or IPv4 addresses) the pages may be opened by, besides "
    "localhost, 127.0.0.1 and --host: any other Host header is refused.")
_PORT = flags.DEFINE_integer("port", 8080, "Port to bind (0: any free port).", lower_bound=0,
                             upper_bound=65535)
_MAX_UPLOAD_KIB = flags.DEFINE_integer("max_upload_kib", app_lib.MAX_UPLOAD_BYTES // 1024,
                                       "Largest photo 'Tag a photo' accepts.", lower_bound=1)


def main(argv):
  del argv
  if _HOST.value not in _LOOPBACK:
    logging.warning(
        "binding %s, not loopback: anyone who reaches it can see the corpus and write %s",
        _HOST.value, _CORRECTIONS.value)
  with common.exit_on_error("mlc-review", corpus.CorpusError, state_lib.ReviewError,
                            FileNotFoundError, ValueError):
    state = state_lib.load_state(_DATA_DIR.value, _CORRECTIONS.value, _MODEL.value, _SUSPECTS.value,
                                 suggestions_path=_SUGGESTIONS.value,
                                 additions_path=_ADDITIONS.value)
  bound = [] if _HOST.value in ("0.0.0.0", "::", "") else [_HOST.value]
  app = app_lib.create_app(
      state, _MAX_UPLOAD_KIB.value * 1024,
      tuple(dict.fromkeys([*app_lib.LOOPBACK_HOSTS, *bound, *_ALLOWED_HOSTS.value])))
  server = serving.make_server(_HOST.value, _PORT.value, app, threaded=True)
  print(f"{len(state.frame)} image(s), {len(state.suspects)} suspect(s)"
        f"{f' ({len(state.skipped_suspects)} row(s) skipped)' if state.skipped_suspects else ''}; "
        f"decisions go to {state.corrections_path}")
  if state.queue:
    print(f"{len(state.queue)} photo(s) to tag next"
          f"{f' ({len(state.skipped_queue)} row(s) skipped)' if state.skipped_queue else ''}; "
          f"tags go to {state.additions_path}")
  print(f"serving on http://{_HOST.value}:{server.server_port}/ (Ctrl-C stops it)", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass


def run():
  common.run(main, logging.WARNING)


if __name__ == "__main__":
  run()
