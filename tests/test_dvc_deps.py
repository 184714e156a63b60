"""DVC re-runs a stage only when one of its deps changes: every module a stage's script can
import (at module level or inside a function, followed transitively) must be one of them.

A module missing from the deps gives stale results silently: edit it, and `dvc repro` keeps
the old outputs. Read statically (no TensorFlow import), from the AST of each module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "transferlab"
PIPELINES = ("dvc.yaml", "tune/dvc.yaml", "study/dvc.yaml")


def module_file(name: str) -> Path | None:
    """``transferlab.a.b`` -> its file (a module, or a package's ``__init__.py``); None if absent."""
    parts = name.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Every ``transferlab`` module that ``path`` names in an import statement, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = None
    if PACKAGE in path.parents:
        package = "transferlab." + ".".join(path.relative_to(PACKAGE).parent.parts) if path.parent != PACKAGE \
            else "transferlab"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "transferlab")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside a package of transferlab
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.split(".")[0] != "transferlab":
                continue
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names if module_file(f"{module}.{a.name}"))
    return found


def reachable_files(script: Path) -> set[Path]:
    """The files of every transferlab module ``script`` reaches (parents' ``__init__`` included)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ too
                file = module_file(".".join(parts[:i]))
                if file is not None and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return seen


def stage_scripts() -> list[tuple[str, str, Path, list[Path]]]:
    """(pipeline, stage, script, resolved deps) of every stage whose command runs a stages/ script."""
    found = []
    for pipeline in PIPELINES:
        spec = yaml.safe_load((REPO / pipeline).read_text(encoding="utf-8"))
        for name, stage in spec["stages"].items():
            wdir = (REPO / pipeline).parent / stage.get("wdir", ".")
            body = stage.get("do", stage)  # matrix stages keep their cmd at the top level too
            script = next((w for w in str(body["cmd"]).split() if w.endswith(".py")), None)
            if script is None:
                continue
            deps = [(wdir / (d if isinstance(d, str) else next(iter(d)))).resolve() for d in body.get("deps", [])]
            found.append((pipeline, name, (wdir / script).resolve(), deps))
    return found


def covered(file: Path, deps: list[Path]) -> bool:
    return any(file == d or d in file.parents for d in deps)


@pytest.mark.parametrize("pipeline, stage, script, deps", stage_scripts(),
                         ids=[f"{p}:{s}" for p, s, _, _ in stage_scripts()])
def test_every_module_a_stage_reaches_is_one_of_its_deps(pipeline, stage, script, deps):
    assert covered(script, deps), f"{pipeline} stage {stage}: its script {script.relative_to(REPO)} is not a dep"
    missing = sorted(str(f.relative_to(REPO)) for f in reachable_files(script) if not covered(f, deps))
    assert not missing, f"{pipeline} stage {stage} imports modules its deps do not list: {missing}"


def test_the_reachability_check_follows_function_level_and_transitive_imports(tmp_path):
    train = reachable_files(REPO / "stages" / "train.py")
    assert PACKAGE / "train.py" in train
    assert PACKAGE / "training" / "engine.py" in train  # transferlab.train imports it
    assert PACKAGE / "tracking" / "__init__.py" in train  # imported inside train.run
    assert PACKAGE / "training" / "backbones" / "__init__.py" in train
    assert PACKAGE / "cli.py" not in train  # stages run through transferlab.stage, not the CLI
    assert not covered(PACKAGE / "training" / "engine.py", [PACKAGE / "train.py"])
    assert covered(PACKAGE / "training" / "backbones" / "layers.py", [PACKAGE / "training"])
