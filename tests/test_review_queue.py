"""mlc-review's "tag next" queue: mlc-suggest's photos tagged into the additions file, which
training reads."""

import html
import re

import pytest
from helpers import fast_config, make_tiny_corpus

from mlc_tf.data import additions, split_corpus
from mlc_tf.evaluate import suggestions
from mlc_tf.review import app as app_lib
from mlc_tf.review import state as state_lib
from mlc_tf.train import training


def _queue(tmp_path, count=3):
  """An untagged folder and mlc-suggest's CSV of ``count`` of its photos plus one that is gone."""
  folder = tmp_path / "untagged"
  make_tiny_corpus(str(folder), num_images=count, seed=11)
  photos = [str(folder / "images" / f"im{k}.jpg") for k in range(1, count + 1)]
  path = str(tmp_path / "suggestions.csv")
  suggestions.write_csv(path, [
      suggestions.Suggestion(file, rank, 1.0, ("cat",), ("dog",))
      for rank, file in enumerate([*photos, str(folder / "gone.jpg")], start=1)])
  return folder, photos, path


def _fields(client, url):
  page = client.get(url).get_data(as_text=True)
  return {name: html.unescape(value)
          for name, value in re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', page)}


def _tag(client, index, labels, **fields):
  return client.post(f"/next/{index}", data={**_fields(client, f"/next/{index}"), **fields,
                                             "label": labels})


def test_tags_land_in_the_additions_file_and_a_training_run_learns_from_them(tiny_trained,
                                                                             tmp_path):
  root, _, _ = tiny_trained
  folder, photos, suggestions_path = _queue(tmp_path)
  state = state_lib.load_state(root, str(tmp_path / "corrections.csv"),
                               suggestions_path=suggestions_path)
  assert state.additions_path == str(folder / "images" / "additions.csv")
  assert len(state.queue) == 3 and "'" + str(folder / "gone.jpg") + "' does not exist" in (
      state.skipped_queue[0])
  client = app_lib.create_app(state).test_client()
  assert client.get("/").headers["Location"].endswith("/next")  # no suspects: the queue first
  assert client.get("/next").headers["Location"].endswith("/next/0")
  page = client.get("/next/0").get_data(as_text=True)
  assert "im1.jpg: <span id=\"tag-state\">not tagged yet" in page and "0 / 3 tagged" in page
  assert client.get("/next/0/image").status_code == 200
  assert client.get("/next/7/image").status_code == 404
  answer = _tag(client, 0, ["cat", "sun"])
  assert answer.status_code == 303 and answer.headers["Location"].endswith("/next/1?saved=1")
  assert _tag(client, 1, []).status_code == 303  # tagged: none of the labels
  assert open(state.additions_path).read() == (
      "image,labels,note\nim1.jpg,cat sun,review: tagged\nim2.jpg,,review: tagged\n")
  # What the page showed is checked: a stale page's tags are refused, nothing written.
  stale = client.post("/next/1", data={"shown": "[]", "shown_tagged": "no", "label": ["dog"]})
  assert stale.status_code == 409 and "Not saved" in stale.get_data(as_text=True)
  assert client.post("/next/1", data={"shown": "[]", "label": ["zebra"]}).status_code == 400
  assert client.post("/next/1", data={"shown": "[]", "shown_tagged": "no",
                                      "label": ["zebra"]}).status_code == 400
  assert "im2.jpg,,review: tagged" in open(state.additions_path).read()
  assert "2 / 3 tagged" in client.get("/next/2").get_data(as_text=True)

  cfg = fast_config(epochs=1)
  before = split_corpus.load_and_split(root, cfg)
  cfg.data.additions = state.additions_path
  data = split_corpus.load_and_split(root, cfg)
  assert len(data.train) == len(before.train) + 2
  assert data.train.loc[photos[0], ["cat", "dog", "sun"]].tolist() == [1, 0, 1]
  result = training.train(cfg, root, str(tmp_path / "workdir"))
  assert result.report["training"]["train_images"] == len(before.train) + 2
  assert result.report["additions"]["joined"] == 2


def test_a_queued_photo_outside_the_additions_files_folder_is_refused(tiny_trained, tmp_path):
  root, _, _ = tiny_trained
  _, _, suggestions_path = _queue(tmp_path)
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  with pytest.raises(state_lib.ReviewError, match="is not under .*elsewhere, the additions file's"):
    state_lib.load_state(root, str(tmp_path / "corrections.csv"),
                         suggestions_path=suggestions_path,
                         additions_path=str(elsewhere / "additions.csv"))


def test_a_broken_additions_file_is_a_409_and_kept(tiny_trained, tmp_path):
  root, _, _ = tiny_trained
  _, _, suggestions_path = _queue(tmp_path)
  state = state_lib.load_state(root, str(tmp_path / "corrections.csv"),
                               suggestions_path=suggestions_path)
  text = 'image,labels\nim1.jpg,"' + "x" * 200_000 + '"\n'
  with open(state.additions_path, "w") as f:
    f.write(text)
  client = app_lib.create_app(state).test_client()
  assert "cannot be used" in client.get("/next/1").get_data(as_text=True)
  answer = client.post("/next/1", data={"shown": "[]", "shown_tagged": "no", "label": ["cat"]})
  assert answer.status_code == 409 and "nothing was written" in answer.get_data(as_text=True)
  assert open(state.additions_path).read() == text
  assert additions.tagged(state.additions_path)[1][0].line == 2
