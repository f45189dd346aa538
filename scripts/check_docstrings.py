#!/usr/bin/env python
# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""One docstring markup across the repository: Markdown code spans, as transformers writes them.

Docstrings use Google-style sections (`Args:`, `Returns:`, `Raises:`) and single backticks around names and literals,
with square brackets around a backticked class name for a link (as in the model files). This flags the
reStructuredText markup that crept in elsewhere (the patterns are in `_RULES`): roles, double-backtick literals, field
lists, simple tables and a line that ends in a double colon to open a literal block.

Only docstrings are read (module, class and function ones), not other strings: code that writes Markdown or reST for
others is left alone.

    python scripts/check_docstrings.py [PATH ...]          # report, exit 1 if anything is found (make check)
    python scripts/check_docstrings.py --fix [PATH ...]    # rewrite what can be rewritten, in place (make style)

Paths default to the Python files git lists (tracked, or untracked and not ignored). Field lists and tables are
reported but not rewritten: they need a section, or a Markdown table.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# (name, pattern, replacement or None when it cannot be rewritten mechanically). Each rewrite gives the Markdown form:
#   :func:`~lra.load_lra`  ->  `lra.load_lra`        (any role, with or without the domain and the tilde)
#   ``"sdpa"``             ->  `"sdpa"`
#   :param x: / :returns:  ->  an Args: / Returns: section (by hand)
#   "Example::"            ->  "Example:" (the indented block below stays)
#   ====  ====  tables     ->  | a | b | tables (by hand)
_RULES: tuple[tuple[str, re.Pattern[str], str | None], ...] = (
    (
        "reST role",
        re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|obj|exc|const|ref|doc):`~?([^`]+)`"),
        r"`\1`",
    ),
    ("reST double-backtick literal", re.compile(r"``((?:[^`\n]|\n(?![ \t]*\n))+?)``"), r"`\1`"),
    ("reST field list", re.compile(r"^[ \t]*:(?:param|type|returns?|rtype|raises?)\b[^:\n]*:", re.MULTILINE), None),
    ("reST literal-block marker '::'", re.compile(r"(?<=[^\s:]):: *$", re.MULTILINE), ":"),
    ("reST table (write a Markdown table)", re.compile(r"^ *=+(?: +=+)+ *$", re.MULTILINE), None),
)


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    rule: str
    text: str

    def __str__(self) -> str:
        path = self.path.resolve()
        shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else self.path
        return f"{shown}:{self.line}: {self.rule}: {self.text.strip()}"


def _docstring_nodes(tree: ast.Module) -> Iterator[ast.Constant]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    yield body[0].value


def _docstring_line_ranges(source: str, path: Path) -> list[tuple[int, int]]:
    """0-based, end-exclusive line ranges of the docstrings of `source`."""
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as error:
        raise SystemExit(f"{path}:{error.lineno}: cannot parse: {error.msg}") from None
    return sorted((node.lineno - 1, node.end_lineno) for node in _docstring_nodes(tree))


def check_source(source: str, path: Path, fix: bool = False) -> tuple[list[Finding], str]:
    """The findings in the docstrings of `source`, and the source with what can be rewritten rewritten (if `fix`).

    Each docstring is matched as one block, so a literal that wraps onto the next line is found too.
    """
    lines = source.splitlines(keepends=True)
    findings: list[Finding] = []
    for start, end in reversed(_docstring_line_ranges(source, path)):  # from the end: a fix may change line counts
        block = "".join(lines[start:end])
        for rule, pattern, replacement in _RULES:
            for match in pattern.finditer(block):
                line = start + block.count("\n", 0, match.start())
                findings.append(Finding(path, line + 1, rule, lines[line]))
            if fix and replacement is not None:
                block = pattern.sub(replacement, block)
        lines[start:end] = [block]
    findings.sort(key=lambda finding: (finding.line, finding.rule))
    return findings, "".join(lines)


def python_files(paths: list[str]) -> list[Path]:
    if paths:
        out: list[Path] = []
        for name in paths:
            path = Path(name)
            out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
        return out
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return [REPO_ROOT / name for name in listed if (REPO_ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"cannot list the repository's files with git ({error}): name the files or folders") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="files or folders (default: the Python files git tracks)")
    parser.add_argument("--fix", action="store_true", help="rewrite roles, double-backtick literals and '::' in place")
    args = parser.parse_args(argv)
    remaining = 0
    for path in python_files(args.paths):
        source = path.read_text(encoding="utf-8")
        findings, fixed = check_source(source, path, fix=args.fix)
        if args.fix and fixed != source:
            path.write_text(fixed, encoding="utf-8")
            findings = check_source(fixed, path)[0]
        for finding in findings:
            print(finding)
        remaining += len(findings)
    if remaining:
        hint = "" if args.fix else " (`make style` rewrites all but field lists and tables)"
        print(f"{remaining} docstring line(s) with reStructuredText markup{hint}", file=sys.stderr)
    return 1 if remaining else 0


if __name__ == "__main__":
    sys.exit(main())
