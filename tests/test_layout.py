"""The layout is the architecture: a folder says who uses what it holds, so no module
imports from a folder whose code it has no business running."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Per folder, the project folders its modules may import from.
ALLOWED = {
    "shared": {"shared"},
    "functions": {"functions", "shared"},
    "index_builder": {"index_builder", "shared"},
}
# Modules of shared/ that make the bot's answers: the index builder has no use for them.
REPLY_MODULES = {"shared.render", "shared.texts"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _project_imports(folder: str) -> dict[str, set[str]]:
    projects = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    return {str(path.relative_to(REPO)): {name for name in _imports(path)
                                          if name.split(".")[0] in projects}
            for path in sorted((REPO / folder).glob("*.py"))}


def test_no_folder_imports_code_it_does_not_use():
    wrong = [f"{path} imports {name}"
             for folder, allowed in ALLOWED.items()
             for path, names in _project_imports(folder).items()
             for name in names if name.split(".")[0] not in allowed]
    assert not wrong, wrong


def test_the_index_builder_imports_no_reply_code():
    wrong = [f"{path} imports {name}"
             for path, names in _project_imports("index_builder").items()
             for name in names & REPLY_MODULES]
    assert not wrong, wrong


def test_worker_modules_are_the_workers_alone():
    """functions/worker_*.py serve the worker: the webhook, the CLI and shared/ never
    import them (the webhook would load the worker's face code)."""
    importers = {path: names for folder in ("shared", "functions", ".")
                 for path, names in _project_imports(folder).items()}
    wrong = [f"{path} imports {name}" for path, names in importers.items()
             for name in names
             if name.startswith("functions.worker_")
             and not Path(path).name.startswith("worker")]
    assert not wrong, wrong
