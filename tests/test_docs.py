"""Docs that cannot rot: every file and section the READMEs and docstrings point to exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
SOURCES = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))

# `path` in backticks or (path) in a markdown link, for paths inside this repository
PATH_TOKEN = re.compile(r"[`(]((?:src|benchmarks|docs|scripts|tests)/[A-Za-z0-9_./-]+?)[`)]")
# a reference to a section: `benchmarks/README.md`, "Heading" (backticks single or double)
SECTION_REF = re.compile(r"`{1,2}((?:benchmarks/)?README\.md)`{1,2},\s+\"([^\"]+)\"", re.S)


def _headings(path: Path) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6} (.+)$", path.read_text(), re.M)]


def _normal(text: str) -> str:
    return " ".join(text.replace("#", " ").split())


def _references() -> list[tuple[Path, str, str]]:
    out = []
    for source in READMES + SOURCES:
        text = source.read_text()
        for m in SECTION_REF.finditer(text):
            out.append((source, m.group(1), _normal(m.group(2))))
    return out


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_readme_names_exists(readme: Path) -> None:
    missing = []
    for m in PATH_TOKEN.finditer(readme.read_text()):
        rel = m.group(1).rstrip(".")
        if any(ch in rel for ch in "*<>") or rel.endswith("/"):
            continue
        if not (ROOT / rel).exists():
            missing.append(rel)
    assert not missing, f"{readme.name} names files that do not exist: {sorted(set(missing))}"


def test_every_section_reference_has_its_heading() -> None:
    refs = _references()
    assert refs, "the pattern found no section references at all (the test would prove nothing)"
    bad = []
    for source, target, section in refs:
        headings = [_normal(h) for h in _headings(ROOT / target)]
        if not any(h.startswith(section) for h in headings):
            bad.append(f"{source.relative_to(ROOT)} → {target}, {section!r}")
    assert not bad, "references to sections that do not exist:\n" + "\n".join(bad)


def test_generated_blocks_are_balanced_and_unique() -> None:
    text = (ROOT / "benchmarks" / "README.md").read_text()
    begins = re.findall(r"<!-- BEGIN (\S+) ", text)
    ends = re.findall(r"<!-- END (\S+) -->", text)
    assert begins == ends, "BEGIN/END markers out of order"
    assert len(begins) == len(set(begins)), f"a generated block appears twice: {begins}"
