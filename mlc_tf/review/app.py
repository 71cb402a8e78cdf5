"""The review web app: Flask, pages rendered on the server, a little JavaScript for keyboard and
drop.

Pages: ``/suspects`` (accept or reject mlc-suspects' proposals one by one),
``/browse`` (the corpus as a paged grid, filtered) and ``/photo/<id>`` (one
photo, with a label edit), ``/tag`` (upload a photo, the model answers),
``/next`` (mlc-suggest's untagged photos, tagged one by one into the additions file).
A photo's and a suspect's page toggle Grad-CAM heat maps
(``/photo/<id>/heatmap/<label>.png``) of the labels the model gives it and
those its suspects name.
Images are served by corpus id (``/image/<id>``) or queue number
(``/next/<n>/image``) only: no path from a URL reaches the file system, and a
file whose links lead out of the corpus's images/ is refused. Every asset is
served by the app; nothing comes from the net.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import urllib.parse

import flask
import tensorflow as tf
from werkzeug import exceptions

from mlc_tf.data import additions as additions_lib
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import corrections as corrections_lib
from mlc_tf.data import image_formats
from mlc_tf.models import heatmaps
from mlc_tf.review import state as state_lib

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# Host names a request may address the app by, whatever address it is bound to: a page of another
# site whose name resolves to this machine (DNS rebinding) sends its own name and is refused.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
PAGE_SIZE = 48
HEATMAP_CACHE = 256  # heat-map PNGs kept per process, by (image, label): ~40 KB at 128 px
BROWSE_VIEWS = {
    "all": "all photos",
    "labelled": "labelled with",
    "predicted": "predicted as",
    "false_positives": "false positives of",  # predicted, not labelled; most confident first
    "false_negatives": "false negatives of",  # labelled, not predicted; least confident first
}


def _image_type(data: bytes) -> str | None:
  """The MIME type of an image's bytes, by the signatures ``data/image_formats.py`` knows; None for
  others."""
  kind = image_formats.format_of(data)
  return kind and f"image/{kind}"


def create_app(state: state_lib.ReviewState, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               trusted_hosts: tuple[str, ...] = LOOPBACK_HOSTS) -> flask.Flask:
  """Builds the app for one loaded review; any WSGI server serves it (mlc-review uses werkzeug's).

  A request whose Host header is none of ``trusted_hosts`` (any port) is a 400.
  """
  app = flask.Flask(__name__)
  app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes
  app.config["TRUSTED_HOSTS"] = list(trusted_hosts)

  @app.before_request
  def refuse_cross_site_posts():
    """Refuses other sites' POSTs: their pages must not write the corrections file via a browser."""
    origin = flask.request.headers.get("Origin")
    if flask.request.method == "POST" and origin and urllib.parse.urlsplit(
        origin).netloc != flask.request.host:
      flask.abort(403, "a form of another site tried to post here")

  @app.context_processor
  def common_context():
    corrections = state.read_corrections()
    decided = sum(state.suspect_decision(s, corrections) is not None for s in state.suspects)
    return {"state": state, "corrections": corrections, "decided": decided}

  @app.errorhandler(exceptions.HTTPException)
  def http_error(error):
    if error.code == 413 and flask.request.endpoint == "tag":
      return render_tag(
          message=f"The upload is larger than the limit of {max_upload_bytes // 1024} KiB."), 413
    # an untrusted Host: no URL can be built, so no page
    if isinstance(error, exceptions.SecurityError):
      return flask.Response(
          f"{error.description} This app answers only to {', '.join(trusted_hosts)}; start "
          "mlc-review with --allowed_hosts=NAME to add the name you open it by.\n", error.code,
          mimetype="text/plain")
    return flask.render_template("message.html", title=f"{error.code} {error.name}",
                                 message=error.description), error.code

  @app.errorhandler(corrections_lib.CorrectionsError)
  def corrections_error(error):
    return flask.render_template("message.html", title="The corrections file cannot be written",
                                 message=f"{error} Fix it by hand; nothing was written."), 409

  @app.errorhandler(heatmaps.MissingLayerError)
  def no_heatmaps(error):
    return flask.render_template("message.html", title="This model gives no heat maps",
                                 message=str(error)), 422

  @app.errorhandler(additions_lib.AdditionsError)
  def additions_error(error):
    return flask.render_template("message.html", title="The additions file cannot be written",
                                 message=f"{error} Fix it by hand; nothing was written."), 409

  @app.errorhandler(OSError)
  def file_error(error):
    return flask.render_template(
        "message.html", title="A file cannot be read or written",
        message=f"{error}. Nothing was written; the decisions before it are kept."), 500

  @app.get("/")
  def home():
    return flask.redirect(flask.url_for(
        "suspects" if state.suspects else "next_photo" if state.queue else "browse"))

  @app.get("/suspects")
  def suspects():
    index = state_lib.first_undecided(state, state.read_corrections())
    if index is None:
      return flask.render_template("suspects.html", index=None)
    return flask.redirect(flask.url_for("suspect", index=index))

  def shown_labels():
    """The labels the posting page showed (its 'shown' field): a JSON list of the corpus's labels.

    Anything else is a 400, nothing written.
    """
    if "shown" not in flask.request.form:
      flask.abort(
          400, "a save names what its page showed (the 'shown' field, a JSON list of labels) and, "
          "for a photo, the labels it sets (a 'label' field per checked label); "
          "this request names nothing")
    try:
      shown = json.loads(flask.request.form["shown"])
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
      shown = None
    if not isinstance(shown, list) or not all(isinstance(name, str) for name in shown):
      flask.abort(400, "the 'shown' field must be a JSON list of label names")
    return known_labels(shown, "shown")

  def known_labels(names, field):
    """``names`` as a set; a name that is no label of the corpus is a 400 naming it."""
    unknown = sorted(set(names) - set(state.label_names))
    if unknown:
      flask.abort(400, f"the '{field}' field names {', '.join(map(repr, unknown[:5]))}"
                  f"{' …' if len(unknown) > 5 else ''}: not a label of this corpus (names are "
                  "case-sensitive); nothing was written")
    return set(names)

  def shown_json(labels):
    """The 'shown' field of a page showing one photo's labels (a row of current_labels)."""
    return json.dumps([name for name in state.label_names if labels[name]])

  @app.get("/suspects/<int:index>")
  def suspect(index, conflict=None):
    if not 0 <= index < len(state.suspects):
      flask.abort(404, f"there is no suspect number {index + 1}")
    corrections = state.read_corrections()
    item = state.suspects[index]
    labels = state.current_labels(corrections).loc[item.image_id]
    return flask.render_template("suspects.html", index=index, suspect=item,
                                 decision=state.suspect_decision(item, corrections),
                                 labels=labels, shown=shown_json(labels), conflict=conflict,
                                 predictions=_predictions(item.image_id),
                                 **heatmap_toggles(item.image_id)), \
        409 if conflict else 200

  @app.post("/suspects/<int:index>")
  def decide(index):
    if not 0 <= index < len(state.suspects):
      flask.abort(404, f"there is no suspect number {index + 1}")
    decision = flask.request.form.get("decision")
    if decision not in ("accept", "reject"):
      flask.abort(400, "the decision must be accept or reject")
    shown = shown_labels()
    shown_decision = flask.request.form.get("shown_decision")
    if shown_decision not in ("accepted", "rejected", "undecided"):
      flask.abort(400, "the 'shown_decision' field (the decision its page showed) must be "
                  "accepted, rejected or undecided")
    try:
      state.decide_suspect(index, decision == "accept", shown, shown_decision)
    except state_lib.EditConflict as error:
      return suspect(index, conflict=(
          "Not saved: this suspect or its photo's labels changed since this page showed them "
          f"(another tab or a hand edit); {error}. Check them below and decide again."))
    following = state_lib.first_undecided(state, state.read_corrections(), index + 1)
    return flask.redirect(flask.url_for("suspects" if following is None else "suspect", **(
        {} if following is None else {"index": following})), 303)

  @app.get("/browse")
  def browse():
    show = flask.request.args.get("show", "all")
    label = flask.request.args.get("label") or None
    if show not in BROWSE_VIEWS:
      flask.abort(400, f"unknown view {show!r}")
    if label is not None and label not in state.label_names:
      flask.abort(400, f"unknown label {label!r}")
    labels = state.current_labels(state.read_corrections())
    ids = state_lib.ranked_images(state, labels, show, label)
    no_model_label = None
    if show not in ("all", "labelled") and label and (state.predictions is None
                                                      or f"prob_{label}" not in state.predictions):
      no_model_label = (f"No model was given: nothing is {BROWSE_VIEWS[show]} {label!r}."
                        if state.tagger is None else
                        f"The model has no label {label!r}: nothing is {BROWSE_VIEWS[show]} it.")
    pages = max(1, math.ceil(len(ids) / PAGE_SIZE))
    page = min(max(flask.request.args.get("page", 1, type=int), 1), pages)
    shown = ids[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    return flask.render_template("browse.html", views=BROWSE_VIEWS, show=show, label=label,
                                 ids=shown, page=page, pages=pages, total=len(ids), labels=labels,
                                 no_model_label=no_model_label,
                                 probability=(lambda i: _probability(i, label)))

  @app.route("/photo/<int:image_id>", methods=["GET", "POST"])
  def photo(image_id):
    if image_id not in state.frame.index:
      flask.abort(404, f"there is no image {image_id} in the corpus")
    if state.image_path(image_id) is None:
      flask.abort(
          404,
          f"the file of image {image_id} lies outside the corpus's images/ (a link): not shown")
    conflict = None
    if flask.request.method == "POST":
      shown = shown_labels()
      checked = known_labels(flask.request.form.getlist("label"), "label")
      try:
        changed = state.edit_labels(image_id, checked, shown)
        return flask.redirect(flask.url_for("photo", image_id=image_id, saved=changed), 303)
      except state_lib.EditConflict as error:
        conflict = (
            "Not saved: this photo's labels changed since this page showed them "
            "(another tab or a hand "
            f"edit); {error}. Check them below and save again.")
    labels = state.current_labels(state.read_corrections()).loc[image_id]
    return flask.render_template(
        "photo.html", image_id=image_id, labels=labels, shown=shown_json(labels),
        given=state.frame.loc[image_id], predictions=_predictions(image_id),
        saved=flask.request.args.get("saved", type=int), conflict=conflict,
        **heatmap_toggles(image_id)), \
        409 if conflict else 200

  @app.get("/image/<int:image_id>")
  def image(image_id):
    path = state.image_path(image_id)
    if path is None:
      flask.abort(404, f"no image {image_id} in the corpus")
    return flask.send_file(path, max_age=3600)

  # --- Grad-CAM heat maps ---

  def heatmap_toggles(image_id):
    """What a photo's page needs for its heat-map toggles: ``heatmap_labels`` (None without a
    model: no toggles), ``heatmap_error`` (why the model has none) and ``heatmap`` (the label its
    ``?heatmap=`` asks to show, for pages without JavaScript)."""
    if state.tagger is None:
      return {"heatmap_labels": None, "heatmap_error": None, "heatmap": None}
    try:
      state.tagger.grad_cam  # built once, by the first page that shows toggles
    except heatmaps.MissingLayerError as error:
      return {"heatmap_labels": [], "heatmap_error": str(error), "heatmap": None}
    predictions = _predictions(image_id) or {}
    named = {suspect.label for suspect in state.suspects if suspect.image_id == image_id}
    labels = [name for name in state.tagger.label_names
              if name in named or (name in predictions and predictions[name][2])]
    chosen = flask.request.args.get("heatmap")
    return {"heatmap_labels": labels, "heatmap_error": None,
            "heatmap": chosen if chosen in labels else None}

  @functools.lru_cache(maxsize=HEATMAP_CACHE)
  def heatmap_png(image_id, label):
    """One photo's heat map of one label, as a PNG; made once per process (~20 ms on a CPU at
    64 px)."""
    with open(state.image_path(image_id), "rb") as f:
      data = f.read()
    try:
      return heatmaps.photo_heatmap_png(state.tagger.grad_cam, data,
                                        state.tagger.label_names.index(label))
    except tf.errors.InvalidArgumentError:
      flask.abort(422, f"image {image_id} is no image the model can read "
                  f"({corpus_lib.undecodable_reason(data) or corpus_lib.REFUSED_BY_MODEL})")

  @app.get("/photo/<int:image_id>/heatmap/<label>.png")
  def heatmap(image_id, label):
    if state.tagger is None:
      flask.abort(404, "no model was given (start mlc-review with --model): there are no heat maps")
    if label not in state.tagger.label_names:
      flask.abort(404, f"the model has no label {label!r} (names are case-sensitive): no heat map")
    if state.image_path(image_id) is None:
      flask.abort(404, f"no image {image_id} in the corpus (or its file links out of images/)")
    return flask.Response(heatmap_png(image_id, label), mimetype="image/png",
                          headers={"Cache-Control": "max-age=3600"})

  # --- end of heat maps ---

  def render_tag(answer=None, message=None, preview=None, filename=None):
    return flask.render_template("tag.html", answer=answer, message=message, preview=preview,
                                 filename=filename, max_upload_kib=max_upload_bytes // 1024)

  @app.route("/tag", methods=["GET", "POST"])
  def tag():
    if flask.request.method == "GET":
      return render_tag()
    if state.tagger is None:
      return render_tag(message="No model was given (start mlc-review with --model)."), 400
    upload = flask.request.files.get("photo")
    if upload is None or not upload.filename:
      return render_tag(message="Choose a JPEG, PNG, GIF or BMP photo first."), 400
    data = upload.read()
    mime = _image_type(data)
    answer = state.tagger.tag(data) if mime else None
    if answer is None or not answer.valid:
      return render_tag(
          message=f"{upload.filename!r} is not a JPEG, PNG, GIF or BMP image the model can decode "
          f"({corpus_lib.undecodable_reason(data) or corpus_lib.REFUSED_BY_MODEL}).",
          filename=upload.filename), 400
    preview = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return render_tag(answer=answer, preview=preview, filename=upload.filename)

  def _predictions(image_id):
    """{label: (probability, threshold, decided)} for one corpus image, or None without a model."""
    if state.predictions is None or image_id not in state.predictions.index:
      return None
    row = state.predictions.loc[image_id]
    return {name: (row[f"prob_{name}"], threshold, bool(row[f"decided_{name}"]))
            for name, threshold in zip(state.tagger.label_names, state.tagger.thresholds)}

  def _probability(image_id, label):
    if state.predictions is None or not label or f"prob_{label}" not in state.predictions:
      return None
    return state.predictions.at[image_id,
                                f"prob_{label}"] if image_id in state.predictions.index else None

  # The "tag next" queue: mlc-suggest's photos, tagged into the additions file.

  def first_untagged(tagged, start=0):
    order = list(range(start, len(state.queue))) + list(range(min(start, len(state.queue))))
    return next((i for i in order if not state.tags_of(i, tagged)[0]), None)

  @app.get("/next")
  def next_photo():
    index = first_untagged(state.read_tagged()) if state.queue else None
    if index is None:
      return flask.render_template("next.html", index=None)
    return flask.redirect(flask.url_for("queued", index=index))

  @app.route("/next/<int:index>", methods=["GET", "POST"])
  def queued(index):
    if not 0 <= index < len(state.queue):
      flask.abort(404, f"there is no suggested photo number {index + 1}")
    conflict = None
    if flask.request.method == "POST":
      shown = shown_labels()
      shown_tagged = flask.request.form.get("shown_tagged")
      if shown_tagged not in ("yes", "no"):
        flask.abort(400, "the 'shown_tagged' field (whether its page showed the photo tagged) "
                    "must be yes or no")
      checked = known_labels(flask.request.form.getlist("label"), "label")
      try:
        state.tag_photo(index, checked, (shown_tagged == "yes", shown))
        following = first_untagged(state.read_tagged(), index + 1)
        return flask.redirect(flask.url_for("next_photo") if following is None else
                              flask.url_for("queued", index=following, saved=1), 303)
      except state_lib.EditConflict as error:
        conflict = ("Not saved: this photo's tags changed since this page showed them (another "
                    f"tab or a hand edit); {error}. Check them below and save again.")
    tagged = state.read_tagged()
    is_tagged, labels = state.tags_of(index, tagged)
    photo = state.queue[index]
    return flask.render_template(
        "next.html", index=index, photo=photo, image=state.image_of(photo), tagged=tagged,
        is_tagged=is_tagged, labels=labels,
        shown=json.dumps([name for name in state.label_names if name in labels]),
        tagged_count=sum(state.tags_of(i, tagged)[0] for i in range(len(state.queue))),
        saved=flask.request.args.get("saved", type=int), conflict=conflict), \
        409 if conflict else 200

  @app.get("/next/<int:index>/image")
  def queued_image(index):
    if not 0 <= index < len(state.queue):
      flask.abort(404, f"there is no suggested photo number {index + 1}")
    return flask.send_file(state.queue[index].file, max_age=3600)

  return app
