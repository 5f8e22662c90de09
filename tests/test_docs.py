"""The documentation cannot drift: every link of README.md, docs/*.md and config/README.md leads somewhere, and
config/README.md is what scripts/config_docs.py writes from the config schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "config" / "README.md"]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE = re.compile(r"`[^`\n]*`")


def links(text: str) -> list[str]:
    """Every Markdown link and image target, outside code blocks and code spans."""
    return LINK.findall(CODE.sub("", FENCE.sub("", text)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = re.sub(r"[`*]", "", text).strip().lower()
    return "".join(c for c in text if c.isalnum() or c in "-_ ").replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown file's headings, numbered -1, -2 ... when repeated, as GitHub numbers them."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", text), re.M):
        base = slug(heading)
        out.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return out


def broken(page: Path, text: str | None = None) -> list[str]:
    """The page's links (in text, if given) whose file, or whose #fragment among the target's headings, is missing."""
    text = page.read_text() if text is None else text
    problems = []
    for target in links(text):
        url = urlparse(target)
        if url.scheme in ("http", "https"):  # external: checked for form only, never fetched
            if not url.netloc or " " in target:
                problems.append(f"{target}: not a well-formed URL")
            continue
        if url.scheme:
            problems.append(f"{target}: unexpected scheme {url.scheme!r}")
            continue
        if not url.path:  # a heading of this page
            if url.fragment not in anchors(text):
                problems.append(f"{target}: no heading #{url.fragment} in {page.name}")
            continue
        path = (page.parent / unquote(url.path)).resolve()
        if not path.is_relative_to(ROOT) and not path.parents[-3].exists():
            continue  # beside the checkout (../shared/), where this checkout has no such neighbour
        if not path.exists():
            problems.append(f"{target}: no such file {path}")
        elif url.fragment and path.suffix == ".md" and url.fragment not in anchors(path.read_text()):
            problems.append(f"{target}: no heading #{url.fragment} in {path.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_link_and_image_leads_somewhere(page):
    assert page.exists(), f"{page} is missing"
    assert not broken(page), f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken(page))


def test_the_link_check_catches_a_broken_file_anchor_and_url():
    page = ROOT / "docs" / "broken-links-probe.md"  # never written: the check reads the text below as this page
    text = (
        "# A page\n\n## Its second part\n\n[ok](#its-second-part) [ok](tasks.md#tasks) ![ok](../figures/README.md)\n"
        "`[in code](nowhere.md)` [file](nowhere.md) [anchor](tasks.md#no-such-heading) ![image](../figures/none.png)"
        " [self](#nope) [url](https://) [ok](https://example.org/a)\n```\n[fenced](nowhere.md)\n```\n"
    )
    problems = broken(page, text)
    assert [problem.split(":")[0] for problem in problems] == [
        "nowhere.md",
        "tasks.md#no-such-heading",
        "../figures/none.png",
        "#nope",
        "https",
    ]


def test_github_slugs():
    assert slug("Run groups: the unit of execution") == "run-groups-the-unit-of-execution"
    assert slug("The papers' methods") == "the-papers-methods"
    assert slug("experiments.<name>.grid[]") == "experimentsnamegrid"
    assert slug("`tasks.copy`") == "taskscopy"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_config_readme_is_generated_from_the_schema():
    done = subprocess.run(
        [sys.executable, "scripts/config_docs.py"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        check=True,
    )
    committed = (ROOT / "config" / "README.md").read_text()
    assert done.stdout == committed, (
        "config/README.md differs from the config schema's keys: run `python scripts/config_docs.py > config/README.md`"
    )


def test_config_readme_lists_every_schema_key_with_a_description():
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    text = (ROOT / "config" / "README.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    for key in [
        *schema["properties"],
        *schema["$defs"]["train"]["properties"],
        *schema["$defs"]["grid_block"]["properties"],
    ]:
        assert any(row.startswith(f"| `{key}` |") for row in rows), f"config/README.md has no row for {key}"
    undescribed = [row.split(" | ")[0] for row in rows if row.rstrip().endswith("|  |")]
    assert not undescribed, f"schema keys without a description (add one in config.schema.yaml): {undescribed}"
