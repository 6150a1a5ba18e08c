"""Unified diffs apply strictly: exact lines at the stated place (±3), or a PatchError naming why."""

from __future__ import annotations

import pytest

from integrations.patching import PatchError, apply_unified_diff, parse_patch

TEN = "".join(f"line {n}\n" for n in range(1, 11))


def diff(*hunks: str, old: str = "a/f.txt", new: str = "b/f.txt") -> str:
    return f"--- {old}\n+++ {new}\n" + "".join(hunks)


def test_a_simple_change_applies():
    patch = diff("@@ -2,3 +2,3 @@\n line 2\n-line 3\n+line three\n line 4\n")
    assert apply_unified_diff(TEN, patch) == TEN.replace("line 3\n", "line three\n")


def test_several_hunks_apply_in_one_pass():
    patch = diff(
        "@@ -1,2 +1,3 @@\n line 1\n+inserted\n line 2\n",
        "@@ -8,3 +9,2 @@\n line 8\n-line 9\n line 10\n",
    )
    result = apply_unified_diff(TEN, patch)
    assert result.splitlines() == [
        "line 1", "inserted", "line 2", "line 3", "line 4", "line 5", "line 6", "line 7",
        "line 8", "line 10",
    ]  # fmt: skip


def test_a_hunk_a_few_lines_off_its_stated_position_still_applies():
    # The header says line 5, the lines are at line 7: within `patch`'s offset window.
    patch = diff("@@ -5,2 +5,2 @@\n line 7\n-line 8\n+line eight\n")
    assert "line eight\nline 9" in apply_unified_diff(TEN, patch)


def test_the_offset_found_for_one_hunk_carries_to_the_next():
    # Three lines before line 1 and three more before line 6: line 9 is six lines down.
    shifted = "a\nb\nc\n" + TEN.replace("line 6\n", "x\ny\nz\nline 6\n")
    patch = diff(
        "@@ -2,1 +2,1 @@\n-line 2\n+two\n",  # found 3 lines down
        "@@ -9,1 +9,1 @@\n-line 9\n+nine\n",  # 3 carried + 3 searched
    )
    result = apply_unified_diff(shifted, patch)
    assert "two\n" in result and "nine\n" in result


def test_a_hunk_too_far_from_its_position_does_not_apply():
    patch = diff("@@ -1,2 +1,2 @@\n line 6\n-line 7\n+line seven\n")
    with pytest.raises(PatchError, match=r"hunk 1 .* does not apply"):
        apply_unified_diff(TEN, patch)


def test_a_patch_that_does_not_apply_names_the_file_the_hunk_and_the_line():
    patch = diff(
        "@@ -1,1 +1,1 @@\n-line 1\n+one\n",
        "@@ -5,2 +5,2 @@\n line 5\n-line six\n+line 6!\n",
    )
    with pytest.raises(PatchError) as caught:
        apply_unified_diff(TEN, patch)
    message = str(caught.value)
    assert message.startswith("b/f.txt: hunk 2 (@@ -5,2 +5,2 @@) does not apply")
    assert "line 6 should read `line six` but reads `line 6`" in message


def test_the_caller_names_the_file_in_errors():
    with pytest.raises(PatchError, match=r"^README\.md: hunk 1"):
        apply_unified_diff("x\n", "@@ -1 +1 @@\n-y\n+z\n", path="README.md")


def test_content_is_never_fuzzed_not_even_whitespace():
    patch = diff("@@ -1,1 +1,1 @@\n-line 1 \n+one\n")  # a trailing space the file lacks
    with pytest.raises(PatchError):
        apply_unified_diff(TEN, patch)
    with pytest.raises(PatchError):
        apply_unified_diff("    indented\n", "@@ -1 +1 @@\n-  indented\n+x\n")


def test_crlf_files_keep_crlf_even_when_the_diff_uses_lf():
    original = "one\r\ntwo\r\nthree\r\n"
    result = apply_unified_diff(original, "@@ -1,3 +1,4 @@\n one\n-two\n+2\n+2.5\n three\n")
    assert result == "one\r\n2\r\n2.5\r\nthree\r\n"


def test_a_diff_written_with_crlf_applies_to_a_crlf_file():
    original = "a\r\nb\r\n"
    assert apply_unified_diff(original, "@@ -1,2 +1,2 @@\r\n a\r\n-b\r\n+c\r\n") == "a\r\nc\r\n"


def test_a_new_file_from_dev_null():
    patch = diff("@@ -0,0 +1,2 @@\n+hello\n+world\n", old="/dev/null", new="b/new.txt")
    assert parse_patch(patch).creates
    assert apply_unified_diff("", patch) == "hello\nworld\n"


def test_a_new_file_diff_refuses_to_overwrite_an_existing_file():
    patch = diff("@@ -0,0 +1 @@\n+hello\n", old="/dev/null", new="b/f.txt")
    with pytest.raises(PatchError, match="already exists"):
        apply_unified_diff("something\n", patch)


def test_a_deletion_must_remove_every_line():
    patch = diff("@@ -1,2 +0,0 @@\n-a\n-b\n", new="/dev/null")
    assert parse_patch(patch).deletes
    assert apply_unified_diff("a\nb\n", patch) == ""
    with pytest.raises(PatchError, match="leaves 1 lines"):
        apply_unified_diff("a\nb\nc\n", patch)


def test_no_newline_at_end_of_file_is_honoured_both_ways():
    add_newline = "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"
    assert apply_unified_diff("a\nb", add_newline) == "a\nb\n"
    drop_newline = "@@ -1,2 +1,2 @@\n a\n-b\n+b\n\\ No newline at end of file\n"
    assert apply_unified_diff("a\nb\n", drop_newline) == "a\nb"
    # The diff claims the old last line had no newline, but it has one: not the same file.
    with pytest.raises(PatchError, match="last line without a newline"):
        apply_unified_diff("a\nb\n", add_newline)


def test_appending_after_a_last_line_without_newline_keeps_lines_apart():
    assert apply_unified_diff("a\nb", "@@ -2 +2,2 @@\n b\n+c\n") == "a\nb\nc\n"


def test_a_file_without_final_newline_keeps_it_that_way_when_edited_elsewhere():
    assert apply_unified_diff("a\nb\nc", "@@ -1,2 +1,2 @@\n-a\n+A\n b\n") == "A\nb\nc"


def test_pure_insertion_and_git_preamble():
    patch = (
        "diff --git a/f.txt b/f.txt\nindex 83db48f..bf269f4 100644\n"
        "--- a/f.txt\n+++ b/f.txt\n@@ -2,0 +3,1 @@\n+between 2 and 3\n"
    )
    assert apply_unified_diff(TEN, patch).splitlines()[1:4] == [
        "line 2",
        "between 2 and 3",
        "line 3",
    ]


def test_a_blank_context_line_that_lost_its_leading_space_is_still_context():
    original = "a\n\nb\n"
    assert apply_unified_diff(original, "@@ -1,3 +1,3 @@\n a\n\n-b\n+B\n") == "a\n\nB\n"


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ("just some text\n", "no hunks"),
        ("@@ -1,3 +1,3 @@\n a\n", "ends before its header says"),
        ("@@ -1,1 +1,1 @@\n-a\n+b\n c\n", "longer than its header says"),
        ("@@ -1,2 +1,1 @@\n+a\n+b\n", "does not match its line counts"),
        ("@@ bad header @@\n-a\n", "malformed header"),
        (diff("@@ -1 +1 @@\n-a\n+b\n") + diff("@@ -1 +1 @@\n-a\n+b\n"), "more than one file"),
    ],
)
def test_malformed_diffs_are_refused_with_a_reason(patch, reason):
    with pytest.raises(PatchError, match=reason):
        apply_unified_diff("a\nb\nc\n", patch)


def test_a_diff_for_another_file_is_refused():
    patch = diff("@@ -1 +1 @@\n-a\n+b\n", old="a/other.txt", new="b/other.txt")
    with pytest.raises(PatchError, match=r"is for `a/other\.txt`"):
        apply_unified_diff("a\n", patch, path="f.txt")
    assert apply_unified_diff("a\n", patch, path="other.txt") == "b\n"


def test_overlapping_hunks_are_refused():
    patch = diff("@@ -2,2 +2,2 @@\n-line 2\n+two\n line 3\n", "@@ -3,1 +3,1 @@\n-line 3\n+three\n")
    with pytest.raises(PatchError, match="hunk 2"):
        apply_unified_diff(TEN, patch)
