"""The house rules are checked, not applied once: `make check` (ruff and one docstring markup) runs in CI before the
tests, and the fake Hub's patched libraries are pinned to the releases it was tested with.

scripts/check_docstrings.py: one docstring markup (Markdown code spans), found and rewritten in docstrings only."""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import hub_server
from tests.utils import REPO_ROOT

_spec = importlib.util.spec_from_file_location("check_docstrings", REPO_ROOT / "scripts" / "check_docstrings.py")
check_docstrings = sys.modules["check_docstrings"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_docstrings)

RST_SOURCE = textwrap.dedent(
    '''
    """Module: see :func:`~lra.load_lra` and ``lra/tasks.py``.

    Example::

        load_lra("listops")

    ====  ====
    a     b
    ====  ====
    """

    MARKDOWN = "``not a docstring``, :func:`left alone`::"


    class Reader:
        """Reads ``x`` and ``a
        wrapped one``."""

        def read(self, path):
            """Read a file.

            :param path: where
            """
    '''
)


def test_finds_rst_markup_in_docstrings_only(tmp_path: Path) -> None:
    findings, unchanged = check_docstrings.check_source(RST_SOURCE, tmp_path / "m.py")
    assert unchanged == RST_SOURCE
    assert {(f.line, f.rule) for f in findings} == {
        (2, "reST role"),
        (2, "reST double-backtick literal"),
        (4, "reST literal-block marker '::'"),
        (8, "reST table (write a Markdown table)"),
        (10, "reST table (write a Markdown table)"),
        (17, "reST double-backtick literal"),  # twice: one of them wraps onto line 18
        (23, "reST field list"),
    }
    assert len(findings) == 8


def test_fix_rewrites_to_markdown_and_leaves_tables_and_field_lists_reported(tmp_path: Path, capsys) -> None:
    path = tmp_path / "m.py"
    path.write_text(RST_SOURCE)
    assert check_docstrings.main(["--fix", str(path)]) == 1  # the table and the field list need a hand
    fixed = path.read_text()
    assert '"""Module: see `lra.load_lra` and `lra/tasks.py`.' in fixed
    assert "\nExample:\n" in fixed and '"""Reads `x` and `a\n    wrapped one`."""' in fixed
    assert 'MARKDOWN = "``not a docstring``, :func:`left alone`::"' in fixed
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in out] == ["8", "10", "23"], out

    fixed = fixed.replace("====  ====\na     b\n====  ====", "| a | b |\n|---|---|")
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


def test_ci_runs_make_check_before_the_tests_and_check_covers_ruff_and_docstrings() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert ci.index("make check") < ci.index("make test")
    makefile = (REPO_ROOT / "Makefile").read_text()
    check = makefile.split("\ncheck:", 1)[1].split("\n\n", 1)[0]
    for command in ("ruff check .", "ruff format --check .", "scripts/check_docstrings.py"):
        assert command in check, check
    assert "--fix" not in check  # check changes nothing; `make style` fixes


def test_test_extra_has_ruff_and_pins_what_the_fake_hub_patches() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extra = {
        re.split(r"[<>=!~ ]", spec, maxsplit=1)[0].lower(): spec for spec in project["optional-dependencies"]["test"]
    }
    assert "ruff" in extra and ">=" in extra["ruff"]
    patched = {dotted.split(".")[0] for dotted in hub_server._client_patches("http://x", Path("h"), Path("d"))}
    assert patched == {"huggingface_hub", "transformers", "datasets"}
    for library in patched:
        assert "<" in extra.get(library, ""), f"the test extra does not bound {library} from above: {extra}"
