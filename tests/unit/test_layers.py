"""The packages import downwards only: tools -> services -> shared (the kernel).

The kernel is what every service imports at run time; if it imported a service (or the tooling, which
imports services) a change inside one service could break all five. Every import is checked, including
the ones inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def upward_imports(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / package).rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in forbidden
    )


@pytest.mark.parametrize(
    ("package", "forbidden"), [("shared", ("services", "tools")), ("services", ("tools",))]
)
def test_no_package_imports_a_layer_above_it(package: str, forbidden: tuple[str, ...]) -> None:
    assert upward_imports(package, forbidden) == []


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from services.intake.app import app\n    import tools.cli\n")
    assert imported_modules(module) == {"services.intake.app", "tools.cli"}
