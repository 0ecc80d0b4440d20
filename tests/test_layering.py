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


PRODUCT = ("groundwork", "datasets", "classifier", "localize", "detector", "verify", "boxstrap")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_path(name: str) -> Path | None:
    for path in (ROOT / (name.replace(".", "/") + ".py"), ROOT / name.replace(".", "/") / "__init__.py"):
        if path.is_file():
            return path
    return None


def _declared_all(path: Path) -> list[str] | None:
    """A module's ``__all__`` when it is a literal list of strings, else None."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
            value = node.value
            if isinstance(value, (ast.List, ast.Tuple)) and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                                                 for e in value.elts):
                return [e.value for e in value.elts]
    return None


def _bound_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names, statements = set(), list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.If, ast.Try)):  # module-level blocks bind names too
            statements += node.body + node.orelse + getattr(node, "finalbody", [])
            statements += [s for handler in getattr(node, "handlers", []) for s in handler.body]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _private_imports(path: Path) -> list[str]:
    """``from boxstrap_module import name`` lines of ``path`` naming what that module does not export."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                and node.module.split(".")[0] in PRODUCT):
            continue
        target = _module_path(node.module)
        exported = _declared_all(target) if target is not None else None
        for alias in node.names:
            if _module_path(f"{node.module}.{alias.name}") is not None:
                continue  # a submodule
            if exported is None or alias.name not in exported:
                found.append(f"{path.name}:{node.lineno}: {node.module}.{alias.name}")
    return found


@pytest.mark.parametrize("package", PRODUCT)
def test_every_module_declares_what_it_exports(package):
    missing, unbound = [], {}
    for path in _sources(package):
        exported = _declared_all(path)
        if exported is None:
            missing.append(str(path.relative_to(ROOT)))
        elif set(exported) - _bound_names(path):
            unbound[str(path.relative_to(ROOT))] = sorted(set(exported) - _bound_names(path))
    assert missing == [] and unbound == {}


@pytest.mark.parametrize("package", (*PRODUCT, "benchmarks"))
def test_modules_import_only_what_other_modules_export(package):
    """The product and the benchmarks import only names in another module's ``__all__`` (tests may
    reach inside)."""
    assert [line for path in _sources(package) for line in _private_imports(path)] == []


def test_the_export_check_sees_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from localize.localize_photos import _Learned, localize_photos\n"
                   "from localize import localize_photos as module\n")
    assert [line.split(": ")[1] for line in _private_imports(bad)] == ["localize.localize_photos._Learned"]
