"""mlc-review in a real browser: headless Chromium driven by selenium against the mlc-review
command.

Skipped with the reason where Chromium, chromedriver or selenium is missing;
under CI (the ``CI`` environment variable set), whose .ci/run installs them, that fails instead.
With ``MLC_REVIEW_SCREENSHOTS=<folder>`` set, the tests also save a screenshot
of each view there (docs/review/ holds the README's).
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest
from helpers import REPO_ROOT
from PIL import Image
from review_helpers import annotated_labels, suspect_rows, write_suspects

from mlc_tf.data import corrections

try:
  from selenium import webdriver
  from selenium.common.exceptions import StaleElementReferenceException
  from selenium.webdriver.common.action_chains import ActionChains
  from selenium.webdriver.common.by import By
  from selenium.webdriver.common.keys import Keys
  from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the browser fixture says so, and fails under CI
  webdriver = None

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1200,820")
SCREENSHOTS = os.environ.get("MLC_REVIEW_SCREENSHOTS")


def _browser_missing() -> str | None:
  if webdriver is None:
    return "selenium is not installed (pip install selenium)"
  for program in ("chromium", "chromedriver"):
    if shutil.which(program) is None:
      return f"{program} is not installed (apt-get install chromium chromium-driver)"
  return None


@pytest.fixture(scope="module")
def browser():
  missing = _browser_missing()
  if missing:
    if os.environ.get("CI"):
      pytest.fail(f"CI installs the browser, but {missing}")
    pytest.skip(missing)
  options = webdriver.ChromeOptions()
  options.binary_location = shutil.which("chromium")
  profile = tempfile.mkdtemp(prefix="mlc-review-chromium-")
  for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
    options.add_argument(flag)
  driver = webdriver.Chrome(options=options,
                            service=webdriver.ChromeService(shutil.which("chromedriver")))
  driver.implicitly_wait(10)
  yield driver
  driver.quit()
  shutil.rmtree(profile, ignore_errors=True)


class ReviewServer:
  """``mlc-review`` in a subprocess on a free loopback port (--port=0; the URL it prints)."""

  def __init__(self, *args):
    self.process = subprocess.Popen(
        [sys.executable, "-m", "mlc_tf.cli.review", "--port=0", *args], cwd=REPO_ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    output = []
    for line in self.process.stdout:
      output.append(line)
      match = re.search(r"serving on (http://\S+?)/? ", line)
      if match:
        self.url = match.group(1)
        return
    raise AssertionError(f"mlc-review did not start:\n{''.join(output)[-3000:]}")

  def kill(self):
    """SIGKILL: no chance to clean up, as when a machine dies."""
    self.process.send_signal(signal.SIGKILL)
    self.process.wait(timeout=30)
    self.process.stdout.close()


@pytest.fixture(scope="module")
def review_files(tiny_trained, tiny_saved_model, tmp_path_factory):
  """(corpus, SavedModel, suspects CSV, {id: labels}) for a review of the tiny corpus."""
  root, _, _ = tiny_trained
  truth = annotated_labels(root, 40)
  suspects = write_suspects(tmp_path_factory.mktemp("browser") / "suspects.csv",
                            suspect_rows(truth, 6))
  return root, tiny_saved_model, suspects, truth


def screenshot(driver, name):
  """Saves the page as ``<MLC_REVIEW_SCREENSHOTS>/<name>.png``, quantised to 64 colours to stay
  small."""
  if not SCREENSHOTS:
    return
  os.makedirs(SCREENSHOTS, exist_ok=True)
  path = os.path.join(SCREENSHOTS, f"{name}.png")
  driver.save_screenshot(path)
  Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)


def press(driver, key):
  ActionChains(driver).send_keys(key).perform()


def wait_for_url(driver, suffix):
  WebDriverWait(driver, 15).until(lambda d: d.current_url.endswith(suffix))


def wait_for_text(driver, element_id, expected):
  """The text of element ``element_id`` once it contains ``expected``: a submit reloads the page,
  and an element read before the reload is the old page's (or stale)."""
  WebDriverWait(driver, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
      lambda d: expected in d.find_element(By.ID, element_id).text)
  return driver.find_element(By.ID, element_id).text


def decided_rows(path):
  found, problems = corrections.parse_corrections(pathlib.Path(path).read_text())
  assert not problems
  return [(int(c.image_id), c.label, c.action) for c in found]


def test_keyboard_review_survives_reloads_a_killed_server_and_two_tabs(
    browser, review_files, tmp_path):
  root, model, suspects_csv, truth = review_files
  rows = suspect_rows(truth, 6)
  flip = {"add": "remove", "remove": "add"}
  path = str(tmp_path / "corrections.csv")
  args = (f"--data_dir={root}", f"--model={model}", f"--suspects={suspects_csv}",
          f"--corrections={path}")
  server = ReviewServer(*args)
  try:
    browser.get(server.url + "/")
    wait_for_url(browser, "/suspects/0")
    assert "0 / 6 decided" in browser.find_element(By.ID, "progress").text
    assert "Keys:" in browser.page_source  # the shortcuts are shown on the page
    screenshot(browser, "suspects")
    press(browser, "a")
    wait_for_url(browser, "/suspects/1")
    press(browser, "r")
    wait_for_url(browser, "/suspects/2")
    assert decided_rows(path) == [rows[0], (*rows[1][:2], flip[rows[1][2]])]
    browser.refresh()
    assert "2 / 6 decided" in browser.find_element(By.ID, "progress").text
    press(browser, Keys.LEFT)  # back to suspect 2, which is decided
    wait_for_url(browser, "/suspects/1")
    assert browser.find_element(By.ID, "decision").text == "rejected"
  finally:
    server.kill()  # mid-review
  assert decided_rows(path)[:2] == [rows[0], (*rows[1][:2], flip[rows[1][2]])]

  server = ReviewServer(*args)  # a new port: the browser follows it
  try:
    browser.get(server.url + "/suspects")
    wait_for_url(browser, "/suspects/2")  # resumes at the first undecided suspect
    assert "2 / 6 decided" in browser.find_element(By.ID, "progress").text
    first_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(server.url + "/suspects/3")
    press(browser, "r")
    wait_for_url(browser, "/suspects/4")
    browser.switch_to.window(first_tab)
    press(browser, "a")  # this tab still shows suspect 3 (index 2), decided by nobody yet
    wait_for_url(browser, "/suspects/4")
    for handle in set(browser.window_handles) - {first_tab}:
      browser.switch_to.window(handle)
      browser.close()
    browser.switch_to.window(first_tab)
  finally:
    server.kill()
  assert sorted(decided_rows(path)) == sorted([rows[0], (*rows[1][:2], flip[rows[1][2]]), rows[2],
                                               (*rows[3][:2], flip[rows[3][2]])])


def test_browse_tag_and_refusals(browser, review_files, tmp_path):
  root, model, suspects_csv, truth = review_files
  path = str(tmp_path / "corrections.csv")
  server = ReviewServer(f"--data_dir={root}", f"--model={model}", f"--suspects={suspects_csv}",
                        f"--corrections={path}", "--max_upload_kib=32")
  try:
    browser.get(server.url + "/browse")
    assert browser.find_element(By.ID, "count").text.startswith(f"{len(truth)} photo(s)")
    Select(browser.find_element(By.ID, "show")).select_by_value("labelled")
    Select(browser.find_element(By.ID, "label")).select_by_value("dog")
    browser.find_element(By.CSS_SELECTOR, ".filters button").click()
    dogs = sorted(i for i, labels in truth.items() if "dog" in labels)
    assert wait_for_text(browser, "count",
                         f"{len(dogs)} photo(s)").startswith(f"{len(dogs)} photo(s)")
    WebDriverWait(browser, 15).until(lambda d: d.execute_script(  # every photo of the grid arrived
        "return document.images.length > 0 && "
        "[...document.images].every(i => i.complete && i.naturalWidth > 0)"))
    screenshot(browser, "browse")
    browser.find_elements(By.CSS_SELECTOR, ".cell")[0].click()
    wait_for_url(browser, f"/photo/{dogs[0]}")
    browser.find_element(By.CSS_SELECTOR, "input[value=dog]").click()  # untick dog
    browser.find_element(By.ID, "save").click()
    assert "Saved: 1 label change(s)" in browser.find_element(By.ID, "saved").text
    assert decided_rows(path) == [(dogs[0], "dog", "remove")]
    screenshot(browser, "photo")

    browser.get(server.url + "/tag")
    browser.find_element(By.ID, "photo").send_keys(os.path.join(root, "images", "im2.jpg"))
    browser.find_element(By.ID, "tag").click()
    table = wait_for_text(browser, "answer", "sun")
    for label in ("cat", "dog", "sun"):
      assert re.search(rf"{label} .*\d\.\d{{3}} \d\.\d{{3}}", table), table
    screenshot(browser, "tag")

    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("plain text, not a photo")
    browser.find_element(By.ID, "photo").send_keys(str(not_an_image))
    browser.find_element(By.ID, "tag").click()
    wait_for_text(browser, "error", "is not a JPEG, PNG, GIF or BMP image")
    too_large = tmp_path / "large.png"
    Image.effect_noise((200, 200), 80).convert("RGB").save(too_large)
    browser.find_element(By.ID, "photo").send_keys(str(too_large))
    browser.find_element(By.ID, "tag").click()
    wait_for_text(browser, "error", "larger than the limit of 32 KiB")

    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    relative = os.path.relpath(outside, os.path.join(root, "images"))
    for url in ["/image/../../" + relative, "/image/%2e%2e%2f" + relative.replace("/", "%2f"),
                "/static/..%2f..%2f..%2fsetup.cfg"]:
      browser.get(server.url + url)
      assert ("secret" not in browser.page_source
              and "console_scripts" not in browser.page_source), url
      assert "404 Not Found" in browser.title or "Not Found" in browser.page_source, url
  finally:
    server.kill()


# --- Grad-CAM heat maps ---


def test_a_heat_map_toggled_by_keyboard_shows_beside_the_photo(browser, tiny_trained, tmp_path):
  root, workdir, _ = tiny_trained
  truth = annotated_labels(root, 40)
  suspects_csv = write_suspects(tmp_path / "suspects.csv", suspect_rows(truth, 2))
  server = ReviewServer(f"--data_dir={root}", f"--model={workdir}", f"--suspects={suspects_csv}",
                        f"--corrections={tmp_path / 'corrections.csv'}")
  try:
    browser.get(server.url + "/suspects/0")
    figure = browser.find_element(By.ID, "heatmap")
    assert not figure.is_displayed()
    assert not browser.find_element(By.ID, "show-heatmap").is_displayed()  # JavaScript toggles
    none = browser.find_element(By.CSS_SELECTOR, "input[name=heatmap][value='']")
    none.send_keys(Keys.SPACE)  # focused and checked, as Tab would leave it
    cat = browser.find_element(By.CSS_SELECTOR, "input[aria-label='heat map of cat']")
    while not cat.is_selected():  # the arrow keys walk the labels
      ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
    assert browser.current_url.endswith("/suspects/0")  # the arrows moved the toggle, not the page
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "const i = document.getElementById('heatmap-image');"
        "return i.complete && i.naturalWidth > 0 && i.src.endsWith('/heatmap/cat.png')"))
    assert figure.is_displayed() and "cat" in browser.find_element(By.ID, "heatmap-caption").text
    path = tmp_path / "heatmap.png"
    browser.save_screenshot(str(path))
    assert Image.open(path).size[0] > 0
    screenshot(browser, "heatmap")
    none.send_keys(Keys.SPACE)
    WebDriverWait(browser, 15).until(lambda d: not figure.is_displayed())
    press(browser, "a")  # from the toggle, the review's keys still decide
    wait_for_url(browser, "/suspects/1")
  finally:
    server.kill()


def test_tag_next_by_keyboard_writes_the_additions_file(browser, tiny_trained, tmp_path):
  """mlc-review --suggestions: the queue's first photo tagged from the keyboard alone."""
  from helpers import make_tiny_corpus

  from mlc_tf.data import additions
  from mlc_tf.evaluate import suggestions
  root, _, _ = tiny_trained
  make_tiny_corpus(str(tmp_path / "untagged"), num_images=2, seed=5)
  suggestions_csv = str(tmp_path / "suggestions.csv")
  suggestions.write_csv(suggestions_csv, [
      suggestions.Suggestion(str(tmp_path / "untagged" / "images" / f"im{k}.jpg"), k, 1.0,
                             ("sun",), ()) for k in (1, 2)])
  server = ReviewServer(f"--data_dir={root}", f"--corrections={tmp_path / 'corrections.csv'}",
                        f"--suggestions={suggestions_csv}")
  try:
    browser.get(server.url + "/")
    wait_for_url(browser, "/next/0")
    WebDriverWait(browser, 15).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
    browser.find_element(By.CSS_SELECTOR, "input[value=sun]").send_keys(Keys.SPACE)
    screenshot(browser, "next")
    browser.find_element(By.ID, "save").send_keys(Keys.ENTER)
    wait_for_url(browser, "/next/1?saved=1")
    assert "Saved to" in browser.find_element(By.ID, "saved").text
    tagged, problems = additions.tagged(str(tmp_path / "untagged" / "images" / "additions.csv"))
    assert tagged == {"im1.jpg": ("sun",)} and not problems
  finally:
    server.kill()
