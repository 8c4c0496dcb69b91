"""Every document the code cites is in the repository, down to the section anchor.

Docstrings, comments and READMEs cite documents by path (``docs/reference_facts.md#b7-...``,
``config/README.md``, ``bench/results/scale.md``).  A citation of a file that is not in the
repository (notes kept elsewhere, a renamed section) leaves the reader with nothing; this test
resolves every ``*.md`` reference and every bug number (B1–B15) against the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SCANNED = ["src", "workflow", "tests", "bench", "docs", "config", "profiles", "scripts",
           "README.md", "Snakefile"]
TEXT_SUFFIXES = {".py", ".smk", ".md", ".rst", ".yaml", ".yml", ".json", ".sh", ".toml", ".txt"}
SKIPPED = {Path(__file__).resolve()}  # this file names the documents it forbids
# Paths that name a file a command writes, not a document to read.
NOT_CITATIONS = {
    "OUT.md",  # bench/quality.py's usage line: ``--markdown OUT.md``
    "bench/results/gpu_check.md",  # written by bench/gpu_check.sh on a GPU machine
}
# Folders a file names its references relative to, besides its own folder and the repository root:
# the README's performance table writes ``results/x.md`` for bench/results/x.md (it says so above).
SHORTHAND_BASES = {"README.md": ["bench"]}
# Documents that exist outside the repository only; a citation must be copied into docs/.
OUTSIDE_DOCUMENTS = ["PIPELINE_FACTS", "NETWORKS.md", "SCALE_FACTS", "ARCHIVAL_NEEDS",
                     "OFFICIAL_PERFORMANCE", "INSTALL_NOTES", "/work/shared", "shared/reference"]
FACTS = REPO / "docs" / "reference_facts.md"

MD_REFERENCE = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)*\w[\w./-]*?\.md)(#[\w-]+)?")
BUG_NUMBER = re.compile(r"\bB(1[0-5]|[1-9])\b")


def _scanned_files() -> list[Path]:
    files = []
    for entry in SCANNED:
        path = REPO / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in sorted(path.rglob("*"))
                      if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name == "Snakefile")
                      and "__pycache__" not in p.parts and ".snakemake" not in p.parts]
    return [p for p in files if p.resolve() not in SKIPPED]


FILES = _scanned_files()


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces → -."""
    text = re.sub(r"[`*_]{2,}|`", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", _text(markdown), flags=re.MULTILINE)
    return {github_anchor(h) for h in headings}


def _resolve(source: Path, reference: str) -> Path | None:
    relative = source.relative_to(REPO).as_posix()
    extra = [REPO / base for base in SHORTHAND_BASES.get(relative, [])]
    for base in [source.parent, REPO, *extra]:
        candidate = (base / reference).resolve()
        if candidate.is_file() and REPO in candidate.parents:
            return candidate
    return None


def test_scan_finds_the_known_citations():
    """The scan itself works: it sees the library's citations of the facts document."""
    assert any(p.name == "restore.py" for p in FILES)
    cited = {m.group(1) for m in MD_REFERENCE.finditer(_text(REPO / "src/oldphoto/restore.py"))}
    assert "docs/reference_facts.md" in cited
    assert github_anchor("B11: the warp back crashes on scikit-image 0.19 and later") == \
        "b11-the-warp-back-crashes-on-scikit-image-019-and-later"
    assert github_anchor("Stage 1: restoration glue") == "stage-1-restoration-glue"


def test_cited_documents_and_sections_exist():
    broken = []
    for path in FILES:
        for number, line in enumerate(_text(path).splitlines(), 1):
            for match in MD_REFERENCE.finditer(line):
                reference, anchor = match.group(1), match.group(2)
                if reference in NOT_CITATIONS:
                    continue
                target = _resolve(path, reference)
                where = f"{path.relative_to(REPO)}:{number}"
                if target is None:
                    broken.append(f"{where}: {reference} is not in the repository")
                elif anchor and anchor[1:] not in anchors(target):
                    broken.append(f"{where}: {reference} has no section {anchor}")
    assert not broken, "\n".join(broken)


SAME_FILE_ANCHOR = re.compile(r"\]\((#[\w-]+)\)")
README_SECTION = re.compile(r"README(?:'s|,) \*([^*]+)\*")
"""Prose that names a section of the top README: "see the README's *Report*"."""


def broken_section_references(source: Path, text: str) -> list[str]:
    """Links to an anchor of the same Markdown file (``[x](#anchor)``) and prose references
    to a README section (``the README's *Section*``) that lead nowhere."""
    broken = []
    readme = anchors(REPO / "README.md")
    own = anchors(source) if source.suffix == ".md" and source.is_file() else set()
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{source.relative_to(REPO)}:{number}"
        if source.suffix == ".md":
            for match in SAME_FILE_ANCHOR.finditer(line):
                if match.group(1)[1:] not in own:
                    broken.append(f"{where}: no section {match.group(1)} in this file")
        for match in README_SECTION.finditer(line):
            wanted = github_anchor(match.group(1))
            if not any(anchor.startswith(wanted) for anchor in readme):
                broken.append(f"{where}: the README has no section *{match.group(1)}*")
    return broken


def test_section_references_lead_somewhere():
    assert REPO / "config" / "README.md" in FILES
    broken = [b for path in FILES for b in broken_section_references(path, _text(path))]
    assert not broken, "\n".join(broken)


def test_section_reference_check_catches_a_renamed_section():
    config = REPO / "config" / "README.md"
    assert broken_section_references(config, "see the README's *Very large runs*.") == [
        "config/README.md:1: the README has no section *Very large runs*"]
    assert broken_section_references(config, "see the README's *Large collections*") == []
    readme = REPO / "README.md"
    assert broken_section_references(readme, "[x](#usage) [y](#no-such-part)") == [
        "README.md:1: no section #no-such-part in this file"]


@pytest.mark.parametrize("name", OUTSIDE_DOCUMENTS)
def test_no_citation_of_documents_outside_the_repository(name):
    citing = [f"{p.relative_to(REPO)}:{n}" for p in FILES
              for n, line in enumerate(_text(p).splitlines(), 1) if name in line]
    assert not citing, f"{name} is not in the repository; cite docs/reference_facts.md: {citing}"


def test_bug_numbers_point_at_their_section():
    """A file that names official bug Bn links docs/reference_facts.md#bn-... at least once."""
    sections = {a.split("-")[0] for a in anchors(FACTS) if re.fullmatch(r"b\d+-.*", a)}
    assert sections == {f"b{n}" for n in range(1, 16)}
    missing = []
    for path in FILES:
        if path == FACTS:
            continue
        text = _text(path)
        for number in sorted({int(n) for n in BUG_NUMBER.findall(text)}):
            if not re.search(rf"reference_facts\.md#b{number}-", text):
                missing.append(f"{path.relative_to(REPO)}: B{number}")
    assert not missing, "cite docs/reference_facts.md#bN-... for: " + ", ".join(missing)
