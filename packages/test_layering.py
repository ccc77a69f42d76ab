"""The packages' layering, read from their source with ``ast`` (no imports run).

- No package imports another package's private module or private name
  (``django_aio.conn._pool``, ``from django_aio.conn import _loops``,
  ``testdb._from_url``): what an upper layer needs beyond the public API goes
  through a documented ``layers`` module.
- Each package imports only django-aio packages it declares in its
  ``[project].dependencies``, and only lower layers (conn <- atomic <- orm <- testing);
  and it imports every one it declares (metadata says what it really needs).
- No source module is longer than 400 lines.
- No package's modules import each other in a cycle (``from . import _x``
  counts as reading the package), and django_aio.conn's modules never import
  each other inside a function, where an import hides a dependency or a cycle.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parent
LAYERS = ["conn", "atomic", "orm", "testing"]
MAX_LINES = 400


def _sources() -> Iterator[tuple[str, Path]]:
    for name in LAYERS:
        root = PACKAGES / f"async-{name}" / "src" / "django_aio" / name
        for path in sorted(root.rglob("*.py")):
            yield name, path


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _is_module(package: str, dotted: list[str]) -> bool:
    base = PACKAGES / f"async-{package}" / "src" / "django_aio" / package
    target = base.joinpath(*dotted)
    return target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()


def cross_package_violations(owner: str, source: str) -> list[str]:
    """Each use of another django_aio package's private module or name in ``source``."""
    found: list[str] = []
    modules: dict[str, str] = {}  # local name -> the other package's module it is bound to

    def other_package(dotted: str) -> tuple[str, list[str]] | None:
        parts = dotted.split(".")
        if len(parts) < 2 or parts[0] != "django_aio" or parts[1] == owner:
            return None
        return parts[1], parts[2:]

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = other_package(alias.name)
                if target is None:
                    continue
                if any(_is_private(part) for part in target[1]):
                    found.append(f"line {node.lineno}: import {alias.name}")
                if alias.asname:
                    modules[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            target = other_package(node.module)
            if target is None:
                continue
            package, rest = target
            if any(_is_private(part) for part in rest):
                found.append(f"line {node.lineno}: from {node.module} import ...")
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                elif _is_module(package, [*rest, alias.name]):
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and _is_private(node.attr)
        ):
            found.append(f"line {node.lineno}: {modules[node.value.id]}.{node.attr}")
    return found


def imported_packages(source: str) -> set[str]:
    """The django_aio packages ``source`` imports (anywhere, functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            dotted = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            dotted = [node.module]
        else:
            continue
        for name in dotted:
            parts = name.split(".")
            if parts[0] == "django_aio" and len(parts) > 1:
                names.add(parts[1])
    return names


def _declared(package: str) -> set[str]:
    project = tomllib.loads((PACKAGES / f"async-{package}" / "pyproject.toml").read_text())
    declared = set()
    for requirement in project["project"]["dependencies"]:
        match = re.match(r"django-aio-(\w+)", requirement)
        if match:
            declared.add(match.group(1))
    return declared


def test_no_package_uses_another_packages_private_modules() -> None:
    found = [
        f"{path.relative_to(PACKAGES)} {violation}"
        for owner, path in _sources()
        for violation in cross_package_violations(owner, path.read_text())
    ]
    assert found == [], "use the other package's public API or its `layers` module"


def test_each_package_imports_only_declared_lower_layers() -> None:
    found = []
    for owner, path in _sources():
        for package in imported_packages(path.read_text()) - {owner}:
            if package not in _declared(owner):
                found.append(f"{path.relative_to(PACKAGES)} imports undeclared {package}")
            if package not in LAYERS or LAYERS.index(package) > LAYERS.index(owner):
                found.append(f"{path.relative_to(PACKAGES)} imports upper layer {package}")
    assert found == []


def test_each_package_imports_every_django_aio_package_it_declares() -> None:
    imported: dict[str, set[str]] = {name: set() for name in LAYERS}
    for owner, path in _sources():
        imported[owner] |= imported_packages(path.read_text()) - {owner}
    unused = {name: sorted(_declared(name) - imported[name]) for name in LAYERS}
    assert {name: deps for name, deps in unused.items() if deps} == {}, (
        "declare only the django-aio packages the source imports (tests' needs go "
        "in the dev dependency group)"
    )


def test_no_source_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(PACKAGES)): lines
        for _, path in _sources()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, "split these modules by concept"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from django_aio.conn._pool import AliasPool", ["line 1: from django_aio.conn._pool"]),
        ("import django_aio.conn._scope", ["line 1: import django_aio.conn._scope"]),
        ("from django_aio.conn import _loops", ["line 1: from django_aio.conn import _loops"]),
        (
            "from django_aio.conn import testdb\ntestdb._from_url('x')",
            ["line 2: django_aio.conn.testdb._from_url"],
        ),
        (
            "def f():\n    from django_aio.atomic._state import x",
            ["line 2: from django_aio.atomic"],
        ),
        ("from django_aio.conn import layers, run_sync\nlayers.drive", []),
        ("from django_aio.testing._internals import x", []),  # its own package
        ("from django_aio.conn import AsyncConnection\nAsyncConnection._reclaiming", []),
    ],
)
def test_the_private_import_check_catches_each_form(source: str, expected: list[str]) -> None:
    found = cross_package_violations("testing", source)
    assert len(found) == len(expected)
    for violation, start in zip(found, expected, strict=True):
        assert violation.startswith(start)


# -- each package's own import graph -----------------------------------------

CONN = PACKAGES / "async-conn" / "src" / "django_aio" / "conn"


def _root(package: str) -> Path:
    return PACKAGES / f"async-{package}" / "src" / "django_aio" / package


def _module_name(path: Path) -> str:
    root = next(_root(name) for name in LAYERS if path.is_relative_to(_root(name)))
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["django_aio", *parts])


def _resolve(module: str, node: ast.ImportFrom, alias: str) -> tuple[str, str]:
    """The conn modules a ``from ... import`` in ``module`` names (itself or its names)."""
    if node.level:
        # The containing package: for an __init__ the package itself.
        package = module.split(".")[:-1]
        base = package[: len(package) - node.level + 1]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    return target, f"{target}.{alias}"


def package_imports(path: Path) -> tuple[set[str], list[str]]:
    """Runtime module-level imports of other modules of its package, and function-level ones."""
    module = _module_name(path)
    if path.name == "__init__.py":
        module += ".__init__"
    package = module.split(".")[1]
    known = {_module_name(p) for p in _root(package).rglob("*.py")}
    top: set[str] = set()
    inner: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # never runs: no runtime edge
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, True)
                continue
            targets: list[str] = []
            if isinstance(child, ast.ImportFrom):
                for alias in child.names:
                    parent, submodule = _resolve(module, child, alias.name)
                    if submodule not in known:
                        targets.append(parent)  # a name defined in ``parent``
                        continue
                    targets.append(submodule)
                    if child.module is None:
                        # ``from . import _x`` reads the package, which is
                        # still being initialized if its __init__ led here.
                        targets.append(parent)
            elif isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            for target in targets:
                if target in known and target != _module_name(path):
                    if in_function:
                        inner.append(f"line {child.lineno}: {target}")
                    else:
                        top.add(target)
            visit(child, in_function)

    visit(ast.parse(path.read_text()), False)
    return top, inner


def test_conn_modules_import_each_other_only_at_module_level() -> None:
    found = {
        _module_name(path): inner
        for path in sorted(CONN.rglob("*.py"))
        if (inner := package_imports(path)[1])
    }
    assert found == {}, "an import inside a function hides a dependency (or a cycle)"


@pytest.mark.parametrize("package", LAYERS)
def test_import_graph_has_no_cycle(package: str) -> None:
    graph = {_module_name(path): package_imports(path)[0] for path in _root(package).rglob("*.py")}
    done: set[str] = set()

    def walk(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(graph.get(name, ())):
            walk(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        walk(name, [])
