"""What the review tests share: the tiny corpus's labels as annotated, and a suspects CSV of it."""

import os


def annotated_labels(root, num_images, labels=("cat", "dog", "sun")):
  """{image id: set of labels} from a corpus's annotation files."""
  truth = {i: set() for i in range(1, num_images + 1)}
  for label in labels:
    with open(os.path.join(root, "annotations", f"{label}.txt")) as f:
      for line in f:
        truth[int(line)].add(label)
  return truth


def suspect_rows(truth, count=3):
  """(id, label, action) rows proposing to flip the first ``count`` images' "cat" label."""
  return [(i, "cat", "remove" if "cat" in truth[i] else "add") for i in sorted(truth)[:count]]


def write_suspects(path, rows):
  """A suspects CSV with mlc-suspects' columns."""
  with open(path, "w") as f:
    f.write("image_id,label,action,given,probability,threshold,margin,fold\n")
    f.writelines(f"{image_id},{label},{action},{int(action == 'remove')},0.05,0.4,3.1,0\n"
                 for image_id, label, action in rows)
  return str(path)
