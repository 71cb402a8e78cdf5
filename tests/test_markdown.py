"""The one markdown table layout of reports, audits and experiment summaries."""

import pytest

from mlc_tf import markdown


def test_a_table_aligns_the_first_column_left_and_numbers_right_unless_told():
  assert markdown.table(["", "a"], [["x", 1], ["y", ""]]) == ["| | a |", "|---|---:|", "| x | 1 |",
                                                              "| y | |"]
  assert markdown.table(["rule", "ids"], [], align="ll")[1] == "|---|---|"
  with pytest.raises(ValueError, match="3 alignments for 2 columns"):
    markdown.table(["a", "b"], [], align="lrr")
