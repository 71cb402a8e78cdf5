"""mlc-review's pages through Flask's test client: decisions, browsing, tagging, and the safety
rules."""

import dataclasses
import html
import io
import json
import os
import pathlib
import re
import threading

import image_bytes
import numpy as np
import pytest
from helpers import make_tiny_corpus
from review_helpers import annotated_labels, suspect_rows, write_suspects

from mlc_tf.data import corrections
from mlc_tf.review import app as app_lib
from mlc_tf.review import state as state_lib


@pytest.fixture(scope="module")
def loaded(tiny_trained, tmp_path_factory):
  """The review of the tiny corpus with its trained model and three suspects (corrections file: set
  per test)."""
  root, workdir, _ = tiny_trained
  folder = tmp_path_factory.mktemp("review")
  truth = annotated_labels(root, 40)
  suspects = write_suspects(folder / "suspects.csv",
                            suspect_rows(truth) + [(999, "cat", "add"), (1, "zebra", "add")])
  return state_lib.load_state(root, str(folder / "unused.csv"), workdir, suspects), truth


@pytest.fixture
def review(loaded, tmp_path):
  state, truth = loaded
  state = dataclasses.replace(state, corrections_path=str(tmp_path / "corrections.csv"))
  return state, app_lib.create_app(state, max_upload_bytes=64 * 1024).test_client(), truth


def shown_fields(client, url):
  """A page's hidden fields: what it showed, as its form posts it back."""
  page = client.get(url).get_data(as_text=True)
  return {name: html.unescape(value)
          for name, value in re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', page)}


def decide(client, index, decision):
  """Posts a decision as the suspect's page does, from the page as it is now."""
  return client.post(f"/suspects/{index}",
                     data={"decision": decision, **shown_fields(client, f"/suspects/{index}")})


def test_suspects_are_decided_into_the_corrections_file_and_the_review_resumes(review):
  state, client, _ = review
  assert len(state.suspects) == 3 and len(state.skipped_suspects) == 2
  assert ("image '999' is not in the corpus" in state.skipped_suspects[0]
          and "'zebra'" in state.skipped_suspects[1])
  first, second, _ = state.suspects
  assert client.get("/").headers["Location"].endswith("/suspects")
  assert client.get("/suspects").headers["Location"].endswith("/suspects/0")
  page = client.get("/suspects/0").get_data(as_text=True)
  assert "0 / 3 decided" in page and f"{first.action} “cat”" in page and "probability 0.050" in page
  answer = decide(client, 0, "accept")
  assert answer.status_code == 303 and answer.headers["Location"].endswith("/suspects/1")
  assert decide(client, 1, "reject").headers["Location"].endswith("/suspects/2")
  found, problems = corrections.parse_corrections(pathlib.Path(state.corrections_path).read_text())
  opposite = {"add": "remove", "remove": "add"}
  assert not problems and [(c.image_id, c.label, c.action) for c in found] == [
      (str(first.image_id), "cat", first.action),
      (str(second.image_id), "cat", opposite[second.action])]
  # A new app on the same file (a restarted server) resumes at the first undecided suspect.
  restarted = app_lib.create_app(state).test_client()
  assert restarted.get("/suspects").headers["Location"].endswith("/suspects/2")
  assert "2 / 3 decided" in restarted.get("/suspects/2").get_data(as_text=True)
  assert 'class="decision accepted"' in restarted.get("/suspects/0").get_data(as_text=True)
  # Changing one's mind replaces the row; the last decision leaves nothing undecided.
  decide(client, 0, "reject")
  assert decide(client, 2, "accept").headers["Location"].endswith("/suspects")
  assert "All 3 suspects are decided" in client.get("/suspects").get_data(as_text=True)
  found, _ = corrections.parse_corrections(pathlib.Path(state.corrections_path).read_text())
  assert len(found) == 3 and found[0].action == opposite[first.action]
  assert decide(client, 0, "maybe").status_code == 400
  assert client.get("/suspects/7").status_code == 404


def test_browse_filters_and_ranks_by_the_models_disagreement(review):
  state, client, truth = review
  page = client.get("/browse").get_data(as_text=True)
  assert f"{len(truth)} photo(s)" in page and page.count('class="cell"') == len(truth)
  cats = [i for i, labels in truth.items() if "cat" in labels]
  assert f"{len(cats)} photo(s)" in client.get("/browse?show=labelled&label=cat").get_data(
      as_text=True)
  predictions = state.predictions
  given = state.frame["cat"]
  false_positives = predictions.index[(predictions["decided_cat"] == 1) & (given == 0)]
  ids = state_lib.ranked_images(state, state.frame[state.label_names], "false_positives", "cat")
  assert sorted(ids) == sorted(false_positives)
  probabilities = [predictions.at[i, "prob_cat"] for i in ids]
  assert probabilities == sorted(probabilities, reverse=True)
  ids = state_lib.ranked_images(state, state.frame[state.label_names], "false_negatives", "cat")
  assert all(given[i] == 1 and predictions.at[i, "decided_cat"] == 0 for i in ids)
  assert client.get("/browse?show=nonsense").status_code == 400
  assert client.get("/browse?show=labelled&label=zebra").status_code == 400


def shown_labels(client, image_id):
  """The page's hidden "shown" field: the labels the photo's page showed, as the form posts them
  back."""
  return shown_fields(client, f"/photo/{image_id}")["shown"]


def test_a_photos_label_edit_goes_to_the_corrections_file(review):
  state, client, truth = review
  image_id = next(i for i, labels in truth.items() if labels == {"cat"})
  assert json.loads(shown_labels(client, image_id)) == ["cat"]
  answer = client.post(f"/photo/{image_id}", data={"label": ["dog", "cat"], "shown": '["cat"]'})
  assert answer.status_code == 303
  assert "Saved: 1 label change(s)" in client.get(answer.headers["Location"]).get_data(as_text=True)
  written = pathlib.Path(state.corrections_path).read_text().splitlines()
  assert written[1:] == [f"{image_id},dog,add,{state_lib.EDITED_NOTE}"]
  assert client.post(f"/photo/{image_id}",
                     data={"shown": shown_labels(client, image_id)}).status_code == 303
  found, _ = corrections.parse_corrections(pathlib.Path(state.corrections_path).read_text())
  assert sorted((c.label, c.action) for c in found) == [("cat", "remove"), ("dog", "remove")]
  assert client.get("/photo/99999").status_code == 404


def test_a_post_that_names_nothing_is_refused_not_taken_as_no_labels(review):
  state, client, truth = review
  image_id = next(i for i, labels in truth.items() if labels)
  for request in [{"data": {}}, {"json": {"label": []}}, {"data": {"shown": "not json"}}]:
    response = client.post(f"/photo/{image_id}", **request)
    assert response.status_code == 400, request
  assert "this request names nothing" in client.post(f"/photo/{image_id}").get_data(as_text=True)
  assert not os.path.exists(state.corrections_path)


def test_a_post_naming_a_label_not_of_the_corpus_or_a_malformed_shown_field_is_refused(review):
  state, client, truth = review
  image_id = next(i for i, labels in truth.items() if "cat" in labels)
  shown = shown_labels(client, image_id)
  # a label name in the wrong case must not stand for "unchecked"
  response = client.post(f"/photo/{image_id}", data={"label": ["Cat"], "shown": shown})
  assert response.status_code == 400 and "names 'Cat': not a label of this corpus" in html.unescape(
      response.get_data(as_text=True))
  response = client.post(f"/photo/{image_id}", data={"label": ["cat"], "shown": '["Cat"]'})
  assert response.status_code == 400 and "'shown' field names 'Cat'" in html.unescape(
      response.get_data(as_text=True))
  deep = "[" * 5_000 + "]" * 5_000  # deeper than Python recurses
  suspect = shown_fields(client, "/suspects/0")
  for url, data in [(f"/photo/{image_id}", {"label": ["cat"], "shown": value})
                    for value in (deep, '"cat"', '{"cat": 1}', '[["cat"]]', "[1]")] + [
                        ("/suspects/0", {**suspect, "decision": "accept", "shown": deep}),
                        ("/suspects/0", {**suspect, "decision": "accept", "shown_decision": "x"}),
                        ("/suspects/0", {"decision": "accept"})]:
    response = client.post(url, data=data)
    assert response.status_code == 400, (url, str(data)[:80])
  assert not os.path.exists(state.corrections_path)


def test_a_decision_on_a_page_that_is_no_longer_so_is_refused_not_written_over(review):
  state, client, _ = review
  first = state.suspects[0]
  tab_a = shown_fields(client, "/suspects/0")
  photo = shown_fields(client, f"/photo/{first.image_id}")  # tab B edits the photo's labels
  edited = sorted(set(json.loads(photo["shown"])) ^ {"sun"})
  assert client.post(f"/photo/{first.image_id}",
                     data={"label": edited, **photo}).status_code == 303
  written = pathlib.Path(state.corrections_path).read_bytes()
  response = client.post("/suspects/0", data={"decision": "accept", **tab_a})
  page = html.unescape(response.get_data(as_text=True))
  assert response.status_code == 409 and "changed since this page showed them" in page
  assert pathlib.Path(state.corrections_path).read_bytes() == written
  assert decide(client, 0, "accept").status_code == 303  # decided again on the page as it is now
  # two tabs deciding one suspect differently: the second is told, whichever it is
  tab_a = tab_b = shown_fields(client, "/suspects/1")
  assert client.post("/suspects/1", data={"decision": "reject", **tab_a}).status_code == 303
  written = pathlib.Path(state.corrections_path).read_bytes()
  response = client.post("/suspects/1", data={"decision": "accept", **tab_b})
  assert response.status_code == 409 and "the suspect is rejected" in response.get_data(
      as_text=True)
  assert pathlib.Path(state.corrections_path).read_bytes() == written
  # the same verdict twice (a double click) is no conflict
  assert client.post("/suspects/1", data={"decision": "reject", **tab_b}).status_code == 303


def test_two_tabs_editing_one_photo_never_lose_or_merge_an_edit(review):
  state, client, truth = review
  image_id = next(i for i, labels in truth.items() if len(labels) >= 2)
  one, two = sorted(truth[image_id])[:2]
  stale = shown_labels(client, image_id)  # both tabs loaded the page before either saved
  assert client.post(f"/photo/{image_id}", data={"label": [one], "shown": stale}).status_code == 303
  second = client.post(f"/photo/{image_id}", data={"label": [two], "shown": stale})
  assert (second.status_code == 409
          and "labels changed since this page showed them" in second.get_data(as_text=True))
  assert state.current_labels(state.read_corrections()).loc[image_id][[one, two]].tolist() == [1, 0]
  # The same two saves at once, 20 times: one wins whole, the other is told.
  app = app_lib.create_app(state)
  for _ in range(20):
    os.remove(state.corrections_path)
    barrier, statuses = threading.Barrier(2), {}

    def save(label):
      tab = app.test_client()
      barrier.wait()
      statuses[label] = tab.post(f"/photo/{image_id}",
                                 data={"label": [label], "shown": stale}).status_code

    tabs = [threading.Thread(target=save, args=(label,)) for label in (one, two)]
    for tab in tabs:
      tab.start()
    for tab in tabs:
      tab.join()
    winner = next(label for label, status in statuses.items() if status == 303)
    assert sorted(statuses.values()) == [303, 409]
    now = state.current_labels(state.read_corrections()).loc[image_id]
    assert {label for label in (one, two) if now[label]} == {winner}


def test_tagging_answers_through_the_serving_signature_and_refuses_what_is_not_an_image(review):
  state, client, _ = review
  with open(state.frame.at[1, "path"], "rb") as f:
    photo = f.read()
  page = client.post("/tag",
                     data={"photo": (io.BytesIO(photo), "<b>cat</b>.jpg")}).get_data(as_text=True)
  answer = state.tagger.tag(photo)
  assert answer.valid and "&lt;b&gt;cat&lt;/b&gt;.jpg" in page and "<b>cat</b>" not in page
  for row in answer.per_label:
    assert f"{row.probability:.3f}" in page
  expected = state.predictions.loc[1]
  assert [round(row.probability, 4) for row in answer.per_label] == [
      round(expected[f"prob_{name}"], 4) for name in state.tagger.label_names]
  for name, content, reason in [("notes.jpg", b"plain text", "not a JPEG, PNG, GIF or BMP image"),
                                ("empty.png", b"", "empty file"),
                                ("broken.jpg", photo[:len(photo) // 3], "Invalid JPEG data"),
                                ("bomb.gif", image_bytes.gif_bomb(6400),
                                 "larger than the 40 MP limit"),
                                ("palette.bmp",
                                 image_bytes.palette_bmp(np.full((6, 10, 3), 9, np.uint8)),
                                 "palette BMP is not supported")]:
    response = client.post("/tag", data={"photo": (io.BytesIO(content), name)})
    assert response.status_code == 400 and reason in response.get_data(as_text=True), name
  response = client.post("/tag",
                         data={"photo": (io.BytesIO(b"\xff\xd8\xff" + bytes(100_000)), "huge.jpg")})
  assert (response.status_code == 413
          and "larger than the limit of 64 KiB" in response.get_data(as_text=True))
  assert client.post("/tag", data={}).status_code == 400
  assert "Choose a JPEG, PNG, GIF or BMP photo" in client.post("/tag",
                                                               data={}).get_data(as_text=True)
  assert "JPEG, PNG, GIF or BMP here" in client.get("/tag").get_data(as_text=True)


def test_posts_from_another_site_are_refused(review):
  state, client, _ = review
  assert client.post("/suspects/0", data={"decision": "accept"},
                     headers={"Origin": "http://evil.example"}
                     ).status_code == 403
  assert not os.path.exists(state.corrections_path)


def test_only_images_of_the_corpus_are_served(tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=4)
  outside = tmp_path / "secret.jpg"
  os.rename(os.path.join(root, "images", "im4.jpg"), outside)
  os.symlink(outside, os.path.join(root, "images", "im4.jpg"))  # a link out of the corpus
  state = state_lib.load_state(root, str(tmp_path / "corrections.csv"))
  client = app_lib.create_app(state).test_client()
  assert (client.get("/image/1").status_code == 200
          and client.get("/image/1").data[:3] == b"\xff\xd8\xff")
  # in the frame, but its file lies outside images/
  assert client.get("/image/4").status_code == 404
  page = client.get("/photo/4")
  assert page.status_code == 404 and "lies outside the corpus" in page.get_data(as_text=True)
  for url in ["/image/../../secret.jpg", "/image/..%2F..%2Fsecret.jpg", "/image/%2e%2e/secret.jpg",
              "/static/../../../etc/passwd", "/static/%2e%2e/app.py", "/image/99", "/image/-1"]:
    response = client.get(url)
    assert response.status_code in (404, 400) and b"\xff\xd8\xff" not in response.data, url
  assert "No model was given" in client.post("/tag", data={}).get_data(as_text=True)
  assert "No model was given: nothing is predicted as 'cat'" in html.unescape(client.get(
      "/browse?show=predicted&label=cat").get_data(as_text=True))


def test_a_bad_row_of_a_hand_written_corrections_file_is_reported_by_number(tmp_path):
  root = str(tmp_path / "corpus")
  truth = make_tiny_corpus(root, num_images=4, labels=("cat", "d&o<g>"))
  path = tmp_path / "corrections.csv"
  path.write_text("image_id,label,action\n1,cat,add\n2,cat,maybe\n")
  state = state_lib.load_state(root, str(path))
  client = app_lib.create_app(state).test_client()
  page = client.get("/browse").get_data(as_text=True)
  assert ("row 3: action must be one of" in page and "d&amp;o&lt;g&gt;" in page
          and "o<g>" not in page)
  flipped = sorted(truth[3] ^ {"cat"})  # image 3's labels with "cat" flipped
  assert client.post("/photo/3", data={"label": flipped,
                                       "shown": json.dumps(sorted(truth[3]))}).status_code == 303
  assert path.read_text().splitlines() == ["image_id,label,action", "1,cat,add", "2,cat,maybe",
                                           f"3,cat,{'add' if 'cat' in flipped else 'remove'}"]
  path.write_text("id,label\n")
  response = client.post("/photo/3", data={"label": [], "shown": json.dumps(flipped)})
  assert response.status_code == 409 and "lacks column" in response.get_data(as_text=True)
  with pytest.raises(state_lib.ReviewError, match="corrections file of their own"):
    state_lib.load_state(root, str(path), suspects_path=str(path))


def test_the_suspects_file_is_refused_as_corrections_file_through_any_link(tmp_path):
  root = str(tmp_path / "corpus")
  truth = make_tiny_corpus(root, num_images=4, labels=("cat",))
  suspects = write_suspects(tmp_path / "suspects.csv", suspect_rows(truth, 2))
  with open(suspects, "a") as f:
    f.write("\u00b2,cat,add,0,0.9,0.4,3.1,0\n")  # not an id: a skipped row, named
  (tmp_path / "link.csv").symlink_to(suspects)
  os.link(suspects, tmp_path / "hard.csv")
  (tmp_path / "sub").mkdir()
  for corrections_path in ["link.csv", "hard.csv", "sub/../suspects.csv"]:
    with pytest.raises(state_lib.ReviewError, match="corrections file of their own"):
      state_lib.load_state(root, str(tmp_path / corrections_path), suspects_path=suspects)
  state = state_lib.load_state(root, str(tmp_path / "corrections.csv"), suspects_path=suspects)
  assert len(state.suspects) == 2 and state.skipped_suspects == [
      "line 4: image '\u00b2' is not in the corpus"]


def test_hand_written_ids_and_notes_mean_what_training_reads(tmp_path):
  root = str(tmp_path / "corpus")
  truth = make_tiny_corpus(root, num_images=4, labels=("cat", "dog"))
  with_cat = next(i for i, labels in truth.items() if "cat" in labels)
  path = tmp_path / "corrections.csv"
  note = '"a spreadsheet\'s note\r\nover two lines"'
  path.write_text(f"image_id,label,action,note\n0{with_cat},cat,remove,{note}\n"
                  "1,dog,add,one\u2028two\x85three\n")
  client = app_lib.create_app(state_lib.load_state(root, str(path))).test_client()
  assert "cat" not in json.loads(shown_labels(client, with_cat))  # 01 is image 1, as in training
  shown = shown_labels(client, with_cat)
  answer = client.post(f"/photo/{with_cat}", data={"label": ["cat"], "shown": shown})
  assert answer.status_code == 303 and "cat" in json.loads(shown_labels(client, with_cat))
  assert path.read_bytes().decode().split("\n")[1:] == [
      f"{with_cat},cat,add,{state_lib.EDITED_NOTE}", "1,dog,add,one\u2028two\x85three", ""]
  found, problems = corrections.parse_corrections(path.read_bytes().decode())
  assert not problems and len(found) == 2
  path.write_text(f"image_id,label,action\n\u00b2,cat,add\n{note},dog,add\n")
  for url in ["/browse", "/photo/1", "/tag", "/suspects"]:
    page = html.unescape(client.get(url, follow_redirects=True).get_data(as_text=True))
    assert ("row 2: image id '\u00b2' is not a number in ASCII digits" in page
            and "row 3: image id" in page), url


def test_requests_addressed_to_another_host_are_refused_dns_rebinding(review):
  state, client, truth = review
  rebound = {"headers": {"Host": "attacker.example:18080",
                         "Origin": "http://attacker.example:18080"}}
  response = client.post("/suspects/0", data={"decision": "accept"}, **rebound)
  assert response.status_code == 400 and "--allowed_hosts" in response.get_data(as_text=True)
  assert client.get("/image/1", headers={"Host": "attacker.example:18080"}).status_code == 400
  assert not os.path.exists(state.corrections_path)
  for host in ("localhost:8080", "127.0.0.1:18080"):
    assert client.get("/image/1", headers={"Host": host}).status_code == 200, host
  allowed = app_lib.create_app(state, trusted_hosts=("localhost", "review.lan")).test_client()
  assert allowed.get("/image/1", headers={"Host": "review.lan:8080"}).status_code == 200


def test_an_unreadable_corrections_file_is_reported_on_every_page_and_a_directory_refused_at_start(
    tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=4, labels=("cat", "dog"))
  path = tmp_path / "corrections.csv"
  path.write_bytes(b"image_id,label,action\n1,cat,add\n2,caf\xe9,add\n")  # Latin-1, not UTF-8
  client = app_lib.create_app(state_lib.load_state(root, str(path))).test_client()
  for url in ["/browse", "/photo/1", "/tag", "/suspects"]:
    response = client.get(url, follow_redirects=True)
    assert (response.status_code == 200
            and "is not UTF-8 text (byte 37" in response.get_data(as_text=True)), url
  response = client.post("/photo/1", data={"label": ["dog"], "shown": "[]"})
  assert response.status_code == 409 and "is not UTF-8 text" in response.get_data(as_text=True)
  assert path.read_bytes().endswith(b"caf\xe9,add\n")
  with pytest.raises(state_lib.ReviewError, match="is a directory"):
    state_lib.load_state(root, str(tmp_path))


def test_temporary_files_of_writers_killed_mid_write_are_removed_at_start(tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=4, labels=("cat",))
  path = tmp_path / "corrections.csv"
  path.write_text("image_id,label,action\n1,cat,add\n")
  # a kill -9 mid-write
  (tmp_path / ".corrections.csv.k1ll3d").write_text("image_id,label,action\n1,cat,")
  # and with write_text
  (tmp_path / ".staging-999999-0123456789ab-corrections.csv").write_text("image_id,label,")
  (tmp_path / ".other.csv.kept").write_text("not ours")
  state_lib.load_state(root, str(path))
  assert sorted(os.listdir(tmp_path)) == [".other.csv.kept", "corpus", "corrections.csv",
                                          "corrections.csv.lock"]


def test_a_view_of_a_label_the_model_lacks_says_so(review):
  state, _, _ = review
  fewer = dataclasses.replace(
      state, predictions=state.predictions.drop(columns=["prob_sun", "decided_sun"]))
  page = app_lib.create_app(fewer).test_client().get(
      "/browse?show=false_positives&label=sun").get_data(as_text=True)
  page = html.unescape(page)
  assert "The model has no label 'sun': nothing is false positives of it." in page
