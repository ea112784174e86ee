"""The domain graph's rules that import-linter cannot state (docs/architecture.md):

- another domain's `models` and `repository` modules are imported only by repositories (a
  read across domains is a query, and queries live in repositories) or by models (foreign
  keys, relationships);
- SQL is written only in repositories: no module of a domain outside its repositories
  builds a statement or executes one.

Composition roots (`app/main.py`, `app/wiring.py`, `app/models.py`, `app/worker/`, the CLI)
are outside the domains and exempt.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
NOT_DOMAINS = {"core", "outbox", "worker", "__pycache__"}
DOMAINS = sorted(p.name for p in APP.iterdir() if p.is_dir() and p.name not in NOT_DOMAINS)
# Statement builders: a module that imports one of these builds SQL.
SQL_BUILDERS = {
    "select",
    "insert",
    "update",
    "delete",
    "text",
    "exists",
    "union",
    "union_all",
    "values",
    "literal_column",
}
SESSION_CALLS = {"execute", "scalar", "scalars", "stream", "stream_scalars"}


def is_repository(path: Path) -> bool:
    return path.stem == "repository" or path.stem.endswith("_repository")


def domain_modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for domain in DOMAINS:
        for path in sorted((APP / domain).rglob("*.py")):
            yield domain, path, ast.parse(path.read_text(), str(path))


def imported_modules(tree: ast.Module) -> Iterator[tuple[str, list[str], int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno


def cross_domain_storage_imports() -> list[str]:
    found = []
    for domain, path, tree in domain_modules():
        if is_repository(path) or path.stem == "models":
            continue
        for module, names, line in imported_modules(tree):
            parts = module.split(".")
            if len(parts) < 3 or parts[0] != "app" or parts[1] == domain or parts[1] not in DOMAINS:
                continue
            targets = [parts[-1], *names] if len(parts) >= 3 else names
            if any(t == "models" or is_repository(Path(t)) for t in targets):
                found.append(f"{path.relative_to(APP.parent)}:{line}: {module}")
    return found


def sql_outside_repositories() -> list[str]:
    found = []
    for _, path, tree in domain_modules():
        if is_repository(path) or path.stem == "models":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                builders = {a.name for a in node.names} & SQL_BUILDERS
                if builders:
                    found.append(
                        f"{path.relative_to(APP.parent)}:{node.lineno}: {sorted(builders)}"
                    )
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SESSION_CALLS
                and "session" in ast.unparse(node.func.value)
            ):
                found.append(
                    f"{path.relative_to(APP.parent)}:{node.lineno}: session.{node.func.attr}"
                )
    return found


def test_another_domains_models_and_repositories_are_read_only_by_repositories() -> None:
    assert cross_domain_storage_imports() == []


def test_sql_lives_only_in_repositories() -> None:
    assert sql_outside_repositories() == []
