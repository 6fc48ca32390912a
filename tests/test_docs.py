"""The manual's links hold: README.md and every docs/*.md page.

Every relative link (and image) must lead to an existing file, and a ``#anchor`` to a heading
of that file, with GitHub's anchor rules. Links inside fenced code blocks or inline code are
text, not links. Every docs page is reachable from the README.
"""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"(`+).*?\1")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def prose_lines(text):
    """(line number, line) of the lines outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor a Markdown file defines: its headings' slugs (repeats get -1, -2, ...)."""
    seen = {}
    result = set()
    for _, line in prose_lines(path.read_text()):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else "%s-%d" % (base, count))
    return result


def links(path):
    """(line number, target) of every link and image in a Markdown file's prose."""
    for number, line in prose_lines(path.read_text()):
        for match in _LINK.finditer(_INLINE_CODE.sub("", line)):
            yield number, match.group(1)


def broken_links(path, root):
    """One sentence per relative link of ``path`` that leads nowhere."""
    problems = []
    for number, target in links(path):
        if _EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = "%s:%d: link '%s'" % (path.relative_to(root), number, target)
        if not dest.exists():
            problems.append("%s: no file %s" % (where, dest))
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append("%s: %s has no heading with anchor '#%s'"
                            % (where, dest.relative_to(root), anchor))
    return problems


def manual_pages(root):
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


@pytest.mark.parametrize("page", manual_pages(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page, ROOT) == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / target.partition("#")[0]).resolve()
              for _, target in links(ROOT / "README.md") if not _EXTERNAL.match(target)}
    missing = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.md"))
               if p.resolve() not in linked]
    assert missing == [], "docs pages the README does not link: %s" % missing


@pytest.mark.parametrize("heading, anchor", [
    ("Security: what a node can and cannot do", "security-what-a-node-can-and-cannot-do"),
    ("The topology file and `lab.yml`", "the-topology-file-and-labyml"),
    ("Resource limits (`nslab_cgroup`)", "resource-limits-nslab_cgroup"),
    ("A node's files, binds, sysctls, exec commands and privileges",
     "a-nodes-files-binds-sysctls-exec-commands-and-privileges"),
])
def test_slug_follows_github(heading, anchor):
    assert slug(heading) == anchor


# The checker itself must fail on a broken manual, or the tests above prove nothing.
@pytest.mark.parametrize("readme, expected", [
    ("[a](docs/gone.md)", "no file"),
    ("[a](docs/page.md#nowhere)", "has no heading with anchor '#nowhere'"),
    ("[a](#nowhere)", "has no heading with anchor '#nowhere'"),
    ("![pic](docs/images/gone.svg)", "no file"),
])
def test_a_broken_link_is_reported(tmp_path, readme, expected):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Some part\n")
    (tmp_path / "README.md").write_text("# Top\n\n" + readme + "\n")
    problems = broken_links(tmp_path / "README.md", tmp_path)
    assert len(problems) == 1 and expected in problems[0], problems


def test_good_links_and_code_are_not_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Some part\n\n## Some part\n")
    (tmp_path / "README.md").write_text(
        "# Top\n\n[a](docs/page.md#some-part) [b](docs/page.md#some-part-1) [c](#top)\n"
        "[web](https://example.org/x) `[not](a-link.md)`\n\n```\n[not](a-link.md)\n```\n")
    assert broken_links(tmp_path / "README.md", tmp_path) == []
