"""The client is its own small package: it depends on httpx and rich only, and never imports the server."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

CLIENT = Path(__file__).parents[2] / "clients" / "python"


def test_it_declares_and_imports_only_httpx_and_rich() -> None:
    declared = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(d.split(">")[0].split("<")[0].split("=")[0] for d in declared) == ["httpx", "rich"]
    imported = set()
    for source in (CLIENT / "src" / "patientpdf_client").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"patientpdf_client", "__future__"}
    assert third_party == {"httpx", "rich"}


def test_importing_it_loads_nothing_of_the_server() -> None:
    check = "import sys, patientpdf_client, patientpdf_client.cli.main; print(sorted(m for m in sys.modules if m.split('.')[0] == 'patientpdf'))"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.strip() == "[]"
