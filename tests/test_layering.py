"""The floors of the codebase (docs/ARCHITECTURE.md), checked on the source as a test.

groundwork <- datasets <- classifier <- localize, detector <- verify <- boxstrap: a package
imports only the floors below it (and itself); localize and detector do not import each other,
and verify reads the detector's contract but never localize; VGG16's layer names and
preprocessing live only in its backbone spec and weights reader.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What each package may import of boxstrap's own packages.
ALLOWED = {
    "groundwork": {"groundwork"},
    "datasets": {"groundwork", "datasets"},
    "classifier": {"groundwork", "datasets", "classifier"},
    "localize": {"groundwork", "datasets", "classifier", "localize"},
    "detector": {"groundwork", "datasets", "classifier", "detector"},
    "verify": {"groundwork", "datasets", "classifier", "detector", "verify"},
    "boxstrap": {"groundwork", "datasets", "classifier", "localize", "detector", "verify", "boxstrap"},
}
VGG_NAMES = re.compile(r"\bblock[1-5]_(conv[1-3]|pool)\b|Preprocessing\.vgg16")


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_floors_below_it(package):
    assert _sources(package), f"no sources found under {ROOT / package}"
    wrong = {str(p.relative_to(ROOT)): sorted(_imported_packages(p) - ALLOWED[package]) for p in _sources(package)}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_vgg16_names_live_only_in_its_backbone_spec():
    found = []
    for package in ("boxstrap", "datasets", "classifier", "localize", "detector", "verify"):
        for path in _sources(package):
            if path.parent.name == "backbones" and ("vgg" in path.name or "hed" in path.name):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if VGG_NAMES.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_check_sees_a_violation(tmp_path):
    """The import check is not vacuous: a stage importing the CLI package or a sibling is caught."""
    (tmp_path / "localize").mkdir()
    (tmp_path / "localize" / "bad.py").write_text("from boxstrap.pipeline import run_pipeline\nimport verify\n")
    assert _imported_packages(tmp_path / "localize" / "bad.py") - ALLOWED["localize"] == {"boxstrap", "verify"}
