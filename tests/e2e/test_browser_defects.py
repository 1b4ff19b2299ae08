"""The known defects of Rally's report code that the browser checks excuse
(tests/e2e/browser.py RALLY_DEFECTS): each must still be in the copy of the
library Rally ships, and be told apart from an error of ours by its stack."""

from __future__ import annotations

import pytest

from tests.e2e.browser import CDN_COPIES, RALLY_DEFECTS, RALLY_LIBS, rally_defect

TEMPLATES = RALLY_LIBS.parent          # Rally's report templates and libraries
SERVED_AS = {RALLY_LIBS / name: url for url, name in CDN_COPIES.items()}


def _where(code: str) -> tuple[str, int, int]:
    """(URL the browser knows it by, line, column) of `code` in Rally's report
    code: a library by the CDN link Rally's report names, a template by its file."""
    for path in sorted(TEMPLATES.rglob("*.js")):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(),
                                      start=1):
            if code in line:
                return SERVED_AS.get(path, path.as_uri()), number, line.index(code) + 1
    raise AssertionError(f"Rally's report code no longer holds {code!r}: "
                         f"drop that excuse")


@pytest.mark.parametrize("defect", RALLY_DEFECTS, ids=lambda d: d.message)
def test_each_excused_defect_is_in_rallys_code_and_matched_by_its_stack(defect):
    url, line, column = _where(defect.code)
    stack = (f"TypeError: {defect.message}\n    at Q ({url}:{line}:{column})\n"
             f"    at <anonymous>:10:25")
    assert rally_defect(defect.message, stack) is defect


def test_the_same_message_from_our_code_is_not_excused(tmp_path):
    ours = tmp_path / "ours.js"
    ours.write_text("function draw(p) { return p.x; }\n")
    for defect in RALLY_DEFECTS:
        stack = f"TypeError: {defect.message}\n    at draw ({ours.as_uri()}:1:28)"
        assert rally_defect(defect.message, stack) is None
    # and Rally's line with another message is not excused either
    url, line, column = _where(RALLY_DEFECTS[-1].code)
    assert rally_defect("Cannot read properties of null (reading 'y')",
                        f"TypeError\n    at Q ({url}:{line}:{column})") is None
