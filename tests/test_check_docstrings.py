"""scripts/check_docstrings.py: one docstring markup (Markdown code spans), found and rewritten in docstrings only."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

from tests.utils import REPO_ROOT

_spec = importlib.util.spec_from_file_location("check_docstrings", REPO_ROOT / "scripts" / "check_docstrings.py")
check_docstrings = sys.modules["check_docstrings"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_docstrings)

RST_SOURCE = textwrap.dedent(
    '''
    """Module: see :func:`~lra.load_lra` and ``lra/tasks.py``.

    Example::

        load_lra("listops")
    """

    MARKDOWN = "``not a docstring``, :func:`left alone`::"


    class Reader:
        """Reads ``x``."""

        def read(self, path):
            """Read a file.

            :param path: where
            """
    '''
)


def test_finds_rst_markup_in_docstrings_only(tmp_path: Path) -> None:
    findings, unchanged = check_docstrings.check_source(RST_SOURCE, tmp_path / "m.py")
    assert unchanged == RST_SOURCE
    by_line = {(f.line, f.rule) for f in findings}
    assert by_line == {
        (2, "reST role"),
        (2, "reST double-backtick literal"),
        (4, "reST literal-block marker '::'"),
        (13, "reST double-backtick literal"),
        (18, "reST field list"),
    }


def test_fix_rewrites_to_markdown_and_leaves_field_lists_reported(tmp_path: Path, capsys) -> None:
    path = tmp_path / "m.py"
    path.write_text(RST_SOURCE)
    assert check_docstrings.main(["--fix", str(path)]) == 1  # the field list needs a hand-written section
    fixed = path.read_text()
    assert '"""Module: see `lra.load_lra` and `lra/tasks.py`.' in fixed
    assert "\nExample:\n" in fixed and '"""Reads `x`."""' in fixed
    assert 'MARKDOWN = "``not a docstring``, :func:`left alone`::"' in fixed
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "reST field list" in out and ":18:" in out

    path.write_text(fixed.replace(":param path: where", "Args:\n        path: where"))
    assert check_docstrings.main([str(path)]) == 0


def test_unparsable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text('"""doc"""\ndef f(:\n')
    with pytest.raises(SystemExit, match=r"broken\.py:2: cannot parse"):
        check_docstrings.main([str(path)])


def test_repository_docstrings_use_one_markup(capsys) -> None:
    # `make check` runs this too; here it also guards a checkout tested without `make check`.
    assert check_docstrings.main([]) == 0, capsys.readouterr().out
