"""Every `docs/...` citation in code, scripts and docs names a file and a section that exist in the repository."""
import re

from helpers import REPO_ROOT

CITED_FROM = ["ofa_sic", "criterions", "tests", "benchmarks", "run_scripts", "docs"]
CITATION = re.compile(r"docs/([\w-]+\.md)`?(?:,?\s*(?:§\s*(\d+(?:\.\d+)*)|(Appendix [A-Z])))?")


def citations():
    """(file that cites, cited doc, section or None) for every citation in the repository's text files."""
    files = [REPO_ROOT / "README.md", REPO_ROOT / "BENCHMARKS.md"]
    for folder in CITED_FROM:
        files += [p for p in sorted((REPO_ROOT / folder).rglob("*")) if p.suffix in (".py", ".sh", ".md")]
    for path in files:
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            yield path.relative_to(REPO_ROOT), match.group(1), match.group(2) or match.group(3)


def section_headings(doc: str):
    """Section numbers ("2", "2.1") and appendix names ("Appendix A") of the headings of docs/<doc>."""
    found = set()
    for line in (REPO_ROOT / "docs" / doc).read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#+\s+(?:(\d+(?:\.\d+)*)\.?\s|(Appendix [A-Z])\b)", line)
        if heading:
            found.add(heading.group(1) or heading.group(2))
    return found


def test_every_docs_citation_resolves():
    cited = list(citations())
    assert any(doc == "ofa-spec.md" and section == "6" for _, doc, section in cited)  # the scan finds citations
    problems = []
    for source, doc, section in cited:
        if not (REPO_ROOT / "docs" / doc).is_file():
            problems.append(f"{source}: docs/{doc} does not exist")
        elif section and section not in section_headings(doc):
            problems.append(f"{source}: docs/{doc} has no section {section}")
    assert problems == []
