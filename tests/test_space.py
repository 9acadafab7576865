"""The web app's shape: its public API stays as scripts know it, its forms go by name, and the
library never depends on it."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from textinv_core.space import forms
from textinv_core.space.generate_tab import GenerateForm
from textinv_core.space.train_tab import TrainForm

PACKAGE = Path(__file__).resolve().parent.parent / "textinv_core"

# What scripts written against the Space call: endpoint names and their parameters, in order.
PUBLIC_API = {
    "/add_images": ["files"],
    "/clear_images": [],
    "/remove_image": ["name"],
    "/estimate": ["steps", "batch_size", "resolution", "preview_every", "stop_when_learned"],  # the last one optional
    "/train": ["name", "keyword", "concept_type", "init_word", "steps", "lr", "vectors", "batch_size", "resolution",
               "seed", "flip", "schedule", "preview_prompt", "preview_every", "stop_when_learned"],
    "/resume": [],
    "/stop": [],
    "/generate": ["prompt", "negative", "steps", "guidance", "width", "height", "seed", "num_images"],
    "/load_embedding": ["file", "keyword"],
    "/concepts": [],
    "/push": ["run_dir", "name", "namespace", "private", "license", "token_text"],
    "/search": ["query", "token_text"],
    "/load_selected": ["repo_id", "keyword", "token_text"],
    "/load_concept": ["source", "keyword", "token_text"],
    "/hub_notice": [],
}


def test_the_public_api_keeps_its_endpoints_and_parameters(tiny_sd):
    import app

    info = app.build_app(tiny_sd).get_api_info()["named_endpoints"]
    assert {name: [p["parameter_name"] for p in endpoint["parameters"]] for name, endpoint in info.items()} == PUBLIC_API


def test_the_toy_world_adds_one_endpoint_per_example_set(toyworld):
    import app

    info = app.build_app(toyworld).get_api_info()["named_endpoints"]
    examples = sorted(name for name in info if name.startswith("/example_"))
    assert examples == ["/example_blocky_style", "/example_red_rocket", "/example_teal_mug"]
    assert {name: [p["parameter_name"] for p in info[name]["parameters"]] for name in PUBLIC_API} == PUBLIC_API


def keyword_parameters(function) -> list[str]:
    return [p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]


@pytest.mark.parametrize("form, request_function, endpoint", [
    (TrainForm, forms.train_request, "/train"),
    (GenerateForm, forms.generate_request, "/generate"),
])
def test_a_form_and_its_check_name_the_same_fields(form, request_function, endpoint):
    """The button sends the form's fields by name: the form's record, the function that checks
    them and the endpoint's parameters must be one list, or a field goes missing or lands wrong."""
    names = [f.name for f in fields(form)]
    assert names == keyword_parameters(request_function) == PUBLIC_API[endpoint]


def library_modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "space" not in p.relative_to(PACKAGE).parts]


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module a file imports, relative imports resolved."""
    package = ".".join(("textinv_core", *path.relative_to(PACKAGE).parent.parts))
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def test_the_library_never_imports_the_web_app_or_gradio():
    offenders = {}
    for path in library_modules():
        bad = {m for m in imported_modules(path) if m.split(".")[0] == "gradio" or m.startswith("textinv_core.space")}
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert not offenders
    # and at run time: the command line loads no gradio
    code = "import sys, textinv_core.cli, textinv_core.toyworld.measure; print('gradio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_the_web_app_modules_import_each_other_without_cycles():
    """Module-level imports only: a cycle there breaks the first import of whichever module."""
    space = {p.stem: p for p in (PACKAGE / "space").glob("*.py")}
    graph = {}
    for name, path in space.items():
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = set()
        for node in top:
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        graph[name] = names & set(space)

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, " -> ".join((*trail, name))
        for other in graph[name]:
            visit(other, (*trail, name))

    for name in graph:
        visit(name, ())
