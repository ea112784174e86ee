"""The test suite's own layout rules (docs/architecture.md, "Tests"):

- shared test code lives in tests/fixtures/ (the worker harness, the factories, the peers);
  a test module (test_*.py or conftest.py) imports no other test module and no other
  folder's helpers, only tests/fixtures/ and its own folder's helper modules; a fixtures
  module imports only other fixtures modules;
- no test skips itself silently: every `pytest.skip`, `pytest.mark.skip`/`skipif` and
  `pytest.importorskip` carries a reason, which `-ra` prints in the report (and
  tests/conftest.py turns a skip with an empty reason into a failure at run time).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"


def _modules() -> Iterator[Path]:
    yield from sorted(path for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)


def _is_test_module(path: Path) -> bool:
    return path.name.startswith("test_") or path.name == "conftest.py"


def _resolve(name: str) -> Path | None:
    """The file a dotted `tests.*` name refers to (a module or a package's __init__)."""
    parts = name.split(".")[1:]
    base = TESTS.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imported(tree: ast.AST) -> Iterator[tuple[int, str, Path | None]]:
    """Every `tests.*` module a file imports: (line, name, file)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tests":
                    yield node.lineno, alias.name, _resolve(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield node.lineno, f"relative import level {node.level}", None
                continue
            module = node.module or ""
            if module.split(".")[0] != "tests":
                continue
            for alias in node.names:
                submodule = _resolve(f"{module}.{alias.name}")
                if submodule is not None:
                    yield node.lineno, f"{module}.{alias.name}", submodule
                else:
                    yield node.lineno, module, _resolve(module)


def _allowed(importer: Path, target: Path | None) -> bool:
    if target is None:
        return False
    if target.is_relative_to(FIXTURES):
        return True
    if importer.is_relative_to(FIXTURES):
        return False
    return (
        target.parent == importer.parent
        and not _is_test_module(target)
        and target.name != "__init__.py"
    )


def test_test_modules_import_only_fixtures_and_their_own_folders_helpers() -> None:
    offences = []
    for path in _modules():
        for line, name, target in _imported(ast.parse(path.read_text(), str(path))):
            if not _allowed(path, target):
                offences.append(f"{path.relative_to(TESTS.parent)}:{line} imports {name}")
    assert offences == [], "\n".join(offences)


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


SKIPS = {"pytest.skip", "pytest.mark.skip", "pytest.mark.skipif", "pytest.importorskip"}


def _reason(call: ast.Call, name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg in ("reason", "msg"):
            return keyword.value
    if name in ("pytest.skip", "pytest.mark.skip") and call.args:
        return call.args[0]
    if name == "pytest.mark.skipif" and len(call.args) > 1:
        return call.args[1]
    return None


def _empty(reason: ast.expr | None) -> bool:
    return reason is None or (isinstance(reason, ast.Constant) and not str(reason.value).strip())


def test_every_skip_carries_a_reason() -> None:
    offences = []
    for path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        calls = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        for node in ast.walk(tree):
            where = f"{path.relative_to(TESTS.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and (name := _dotted(node.func)) in SKIPS:
                if _empty(_reason(node, name)):
                    offences.append(f"{where} {name} without a reason")
            elif (
                isinstance(node, ast.Attribute)
                and id(node) not in calls
                and _dotted(node) in ("pytest.mark.skip", "pytest.mark.skipif")
            ):
                # `@pytest.mark.skip` used bare, with no call and so no reason.
                offences.append(f"{where} bare {_dotted(node)}")
    assert offences == [], "\n".join(offences)
