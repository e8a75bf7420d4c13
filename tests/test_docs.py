"""The documents belong to the repository: every relative link in them
resolves, none cites a file the repository does not have, and the examples'
instructions use the venv's interpreter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from authsvc.config import known_settings

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "bench" / "README.md", ROOT / "examples" / "README.md", *(ROOT / "docs").glob("*.md")]
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        assert (document.parent / target).exists(), f"{document.relative_to(ROOT)} links to missing {target}"


def test_no_document_or_module_cites_a_design_file_outside_the_repository() -> None:
    for path in [*DOCUMENTS, *ROOT.glob("authsvc/**/*.py"), *ROOT.glob("clients/python/authsvc_client/*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text and "issue notes" not in text, path.relative_to(ROOT)


def test_docs_name_only_settings_that_exist() -> None:
    known = known_settings()
    for path in (ROOT / "docs").glob("*.md"):
        for name in set(re.findall(r"\bAUTHSVC_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8"))):
            assert name in known, f"{path.relative_to(ROOT)} names {name}, which is not a setting"


def test_examples_are_listed_and_run_with_the_venvs_python() -> None:
    listing = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    for example in sorted((ROOT / "examples").rglob("*")):
        if example.is_file() and example.name != "README.md" and "__pycache__" not in example.parts:
            assert str(example.relative_to(ROOT / "examples")) in listing, f"examples/README.md omits {example.name}"
    for script in (ROOT / "examples").rglob("*.py"):
        text = script.read_text(encoding="utf-8")
        assert not re.search(r"(?<![/\w])python examples/", text), f"{script.name}: say .venv/bin/python"
        assert ".venv/bin/python examples/" in text
