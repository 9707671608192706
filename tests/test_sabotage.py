"""The sabotage check's catalogue (bench/sabotage.py, issue 11) still applies to today's code:
every planted bug's `old` text is found exactly once and the planted code compiles. Fast: no bug
is run here (`python -m bench.sabotage` does that), so a refactor that breaks the catalogue
fails CI instead of silently planting nothing."""

from __future__ import annotations

import pytest

from bench import sabotage


def test_every_planted_bug_applies_to_the_working_tree():
    sabotage.check_catalogue(sabotage.working_tree())


@pytest.mark.parametrize("bug", sabotage.CATALOGUE, ids=lambda b: b.name)
def test_each_bug_changes_only_the_firmware_and_compiles(bug):
    assert bug.edits and 1 <= bug.rule <= 8 and bug.what
    planted = sabotage.planted_sources(bug, sabotage.working_tree())
    for name, text in planted.items():
        assert name.startswith("station/")
        assert text != sabotage.working_tree()(name)
        compile(text, name, "exec")


def test_the_catalogue_covers_every_rule_and_the_five_bugs_of_issue_11():
    names = {b.name for b in sabotage.CATALOGUE}
    assert {
        "capacity_check_off_by_one",
        "used_up_cassette_refitted_as_new",
        "drop_recorded_after_pulse",
        "wet_cancel_still_pumps",
        "unexpected_error_outside_identifying_ignored",
    } <= names
    assert len(names) == len(sabotage.CATALOGUE) >= 20
    assert {b.rule for b in sabotage.CATALOGUE} == set(range(1, 9))


def test_an_old_text_not_found_exactly_once_is_an_error():
    bug = sabotage.Bug("x", 1, "x", (sabotage.Edit("station/a.py", "needle\n", "pin\n"),))
    for text, count in (("hay\n", 0), ("needle\nneedle\n", 2)):
        with pytest.raises(sabotage.CatalogueError, match=f"found {count} times"):
            sabotage.planted_sources(bug, lambda _f, t=text: t)
    assert sabotage.planted_sources(bug, lambda _f: "a\nneedle\nb\n") == {"station/a.py": "a\npin\nb\n"}


def test_edits_apply_in_order_to_what_the_previous_ones_left():
    bug = sabotage.Bug(
        "x",
        1,
        "x",
        (sabotage.Edit("station/a.py", "one\n", "two\n"), sabotage.Edit("station/a.py", "two\n", "three\n")),
    )
    assert sabotage.planted_sources(bug, lambda _f: "one\n") == {"station/a.py": "three\n"}


def test_write_replaces_only_the_marked_section(tmp_path):
    doc = tmp_path / "reliability.md"
    doc.write_text(f"# R\n\nbefore\n\n{sabotage.BEGIN}\nold table\n{sabotage.END}\n\nafter\n", encoding="utf-8")
    sabotage.write_section(doc, "new table")
    assert doc.read_text(encoding="utf-8") == (
        f"# R\n\nbefore\n\n{sabotage.BEGIN}\nnew table\n{sabotage.END}\n\nafter\n"
    )
    bare = tmp_path / "bare.md"
    bare.write_text("# R\n", encoding="utf-8")
    sabotage.write_section(bare, "t")
    assert bare.read_text(encoding="utf-8").endswith(f"## Sabotage check\n\n{sabotage.BEGIN}\nt\n{sabotage.END}\n")
