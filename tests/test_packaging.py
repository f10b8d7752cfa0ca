"""The project's shape: our generic package names, the console script, the asyncio boundary."""

from __future__ import annotations

import ast
import importlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.fresh_interpreter import loaded_modules

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("actors", "app", "config", "runtime", "supervisors", "sim")

# Backend and SDK adapters: the only modules allowed to import asyncio directly. Everything
# else reaches the event loop through anyio, so that it runs unchanged on trio.
ASYNCIO_ALLOWED = {
    "runtime/_backend_asyncio.py",
}


@pytest.mark.parametrize("name", PACKAGES)
def test_generic_package_names_import_from_this_repository(name: str) -> None:
    """config, runtime, ... also exist on PyPI: ours must be the ones imported."""
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == ROOT / name


def test_actorctl_is_installed_as_a_console_script() -> None:
    """pyproject declares `actorctl` pointing at the CLI's main()."""
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "actorctl"]
    assert script.value == "app.cli:main"
    assert callable(script.load())


def _imports_asyncio(path: Path, top: str = "asyncio") -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            alias.name.split(".")[0] == top for alias in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == top:
            return True
    return False


def test_only_the_ib_adapter_imports_ib_insync() -> None:
    """Vendor SDK shapes never leak: ib_insync is imported by the trading runtime's two IB
    adapters, actors/brokers/ib.py (orders, market data, history) and
    actors/brokers/ib_options.py (the options bot's chains, option quotes and equity), each
    parsing IB's objects into our domain types at its edge, and by app/data/fetch.py, the history
    download (`actorctl data fetch`), which turns IB's bars into a BarTable at its edge and is
    no part of trading."""
    importers = sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if _imports_asyncio(path, "ib_insync")
    )
    assert importers == [
        "actors/brokers/ib.py",
        "actors/brokers/ib_options.py",
        "app/data/fetch.py",
    ]


def test_only_the_alpaca_adapter_imports_alpaca_py() -> None:
    """alpaca-py is imported by actors/feeds/alpaca.py and by the history download,
    app/data/fetch.py (sim/alpaca is the server side and speaks the protocol with websockets
    and msgpack, never the SDK)."""
    importers = sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if _imports_asyncio(path, "alpaca")
    )
    assert importers == ["actors/feeds/alpaca.py", "app/data/fetch.py"]


def test_only_adapter_modules_import_asyncio() -> None:
    """Actors, supervisors and the runtime stay backend-neutral (they must run on trio)."""
    offenders = sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if _imports_asyncio(path) and str(path.relative_to(ROOT)) not in ASYNCIO_ALLOWED
    )
    assert offenders == []


# The layers (docs/architecture.md): app -> (actors : sim) -> supervisors -> runtime, config read
# by the app. import-linter checks the same in `make lint` ([tool.importlinter] in pyproject.toml);
# this walk of the source text also sees the imports inside function bodies, and names each one.
VOCABULARY = "actors.domain"
BANNED = {
    "runtime": {"supervisors", "actors", "sim", "config", "app"},
    "supervisors": {"actors", "sim", "config", "app"},
    "config": {"supervisors", "actors", "sim", "app"},
    "sim": {"actors", "config", "app"},
    "actors": {"sim", "app"},
}
# The one module of actors/ that may import sim/: the in-process broker port.
SIM_PORT = "actors/brokers/sim.py"


def _is_vocabulary(name: str) -> bool:
    return name == VOCABULARY or name.startswith(VOCABULARY + ".")


def layering_offences(root: Path) -> list[str]:
    """Each import under ``root`` that points the wrong way, as ``path:line imports name: why``."""
    offences = []
    for path in sorted(p for package in PACKAGES for p in (root / package).rglob("*.py")):
        relative = path.relative_to(root)
        package = relative.parts[0]
        in_vocabulary = relative.parts[:2] == ("actors", "domain")
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and in_vocabulary and node.level > 1:
                # `from .. import x` in actors/domain/: the rest of actors.
                names = [".." + (node.module or "")]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                why = None
                if in_vocabulary and (
                    name.startswith("..") or (top in PACKAGES and not _is_vocabulary(name))
                ):
                    why = "the vocabulary imports nothing else of ours"
                elif top in BANNED.get(package, ()) and top != package:
                    if package == "sim" and _is_vocabulary(name):
                        continue
                    if package == "actors" and top == "sim" and str(relative) == SIM_PORT:
                        continue
                    why = f"{package}/ may not import {top}/"
                if why is not None:
                    offences.append(f"{relative}:{node.lineno} imports {name}: {why}")
    return offences


def test_imports_point_one_way() -> None:
    """runtime <- supervisors <- (actors : sim) <- app, config read by the app: no import in
    the tree points back up (the exact rules: BANNED, SIM_PORT, VOCABULARY)."""
    offences = layering_offences(ROOT)
    assert offences == [], "imports that point the wrong way:\n" + "\n".join(offences)


def test_the_layering_check_names_each_offending_import(tmp_path: Path) -> None:
    """The walk finds an import pointing up, lazy or not, and says where and why; the allowed
    exceptions (sim's vocabulary, the broker port) pass."""
    files = {
        "runtime/_x.py": "def f():\n    from actors.symbol import SymbolActor\n",
        "sim/engine.py": "from actors.domain import Bar\nfrom actors.broker import BrokerActor\n",
        "actors/brokers/sim.py": "from sim.engine import Engine\n",
        "actors/replay_feed.py": "import sim.replay\n",
        "actors/domain/_market.py": "from .sessions import Session\nfrom .. import ledger\n",
        "config/schema.py": "from runtime.store import Durability\nimport app.cli\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert layering_offences(tmp_path) == [
        "actors/domain/_market.py:2 imports ..: the vocabulary imports nothing else of ours",
        "actors/replay_feed.py:1 imports sim.replay: actors/ may not import sim/",
        "config/schema.py:2 imports app.cli: config/ may not import app/",
        "runtime/_x.py:2 imports actors.symbol: runtime/ may not import actors/",
        "sim/engine.py:2 imports actors.broker: sim/ may not import actors/",
    ]


# What only runtime.telemetry and runtime.metrics may load: the OTel SDK, its OTLP exporter and
# the exporter's protobuf (some 200 modules).
EXPORTER_PACKAGES = ("opentelemetry", "google.protobuf")


@pytest.mark.parametrize("module", ["runtime", "supervisors", "supervisors.service"])
def test_importing_the_runtime_or_the_supervisors_loads_no_opentelemetry_nor_protobuf(
    module: str,
) -> None:
    """Supervisors reach tracing through runtime.SupervisorHooks: importing them (in a fresh
    interpreter) loads no exporter; the composition root hands them runtime.telemetry's hook."""
    assert loaded_modules(f"import {module}", EXPORTER_PACKAGES) == []


def test_the_start_path_loads_no_http_client_until_an_alert_channel_needs_one() -> None:
    """httpx (about 60 ms of every start) is imported where the alerts actor makes its client,
    only with a channel or a heartbeat configured: ``actorctl start``'s modules load none."""
    statements = "import app.cli.start, app.compose, actors.alerts, actors.alerts_http"
    assert loaded_modules(statements, ("httpx", "httpcore")) == []


def test_the_container_image_copies_every_package_and_installs_from_the_lock() -> None:
    """docker-compose.yml builds the Dockerfile (unrun here: no Docker engine): a package left
    out of its COPY lines would be missing from the image; the install is the hashed lock's."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    assert set(PACKAGES) <= copied
    assert "--require-hashes -r requirements/run.lock" in dockerfile
    compose = (ROOT / "docker-compose.yml").read_text()
    for needed in (':16686:16686"', ':4318:4318"', "jaegertracing/jaeger:2.", "build: ."):
        assert needed in compose
    assert "OTEL_EXPORTER_OTLP_ENDPOINT: http://jaeger:4318" in compose


def test_the_distribution_holds_every_package_of_the_tree() -> None:
    """An installed (non-editable) copy, as the container image makes, must hold every
    subpackage (actors.brokers, sim.tws, ...), not only the top-level names."""
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(find_packages(where=str(ROOT), include=include))
    tree = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for name in PACKAGES
        for path in (ROOT / name).rglob("__init__.py")
    }
    assert tree <= found
    assert {p.split(".")[0] for p in found} == set(PACKAGES)
