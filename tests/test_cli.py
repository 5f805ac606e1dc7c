"""The command line: AIDE's spellings map to subcommands."""

from aidepy.cli import translate_aide_spelling


def test_aide_init_spelling_becomes_subcommand() -> None:
    assert translate_aide_spelling(["-c", "x.conf", "--init"]) == ["init", "-c", "x.conf"]


def test_aide_path_check_with_equals() -> None:
    assert translate_aide_spelling(["--path-check=f:/etc/passwd"]) == ["path-check", "f:/etc/passwd"]


def test_plain_subcommand_is_left_alone() -> None:
    assert translate_aide_spelling(["check", "--json"]) == ["check", "--json"]
