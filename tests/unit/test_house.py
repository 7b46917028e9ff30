"""The house is kept clean by the test suite (and so by CI): Snakemake's own linter, its formatter
and the Python linter (ruff.toml) pass on the workflow as committed."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("command", [
    ["snakemake", "--lint"],
    ["snakefmt", "--check", "Snakefile", "rules/"],
    ["ruff", "check", "."],
], ids=["snakemake-lint", "snakefmt", "ruff"])
def test_house_checks_pass(command):
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"`{' '.join(command)}` failed:\n{out[-4000:]}"
    if command[0] == "snakemake":
        assert "Congratulations" in out, out[-2000:]


# ---- the plan of the house (issue 24) ---------------------------------------------------------------

def workflow_modules() -> dict[str, Path]:
    """{dotted module name: file} of every Python module under scripts/ (scripts/ is the import root)."""
    out = {}
    for path in sorted((REPO / "scripts").rglob("*.py")):
        parts = list(path.relative_to(REPO / "scripts").with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The workflow modules `name` imports anywhere in its file (module level or inside functions)."""
    import ast

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # a submodule itself, else a name the module `base` defines
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def test_the_workflows_modules_import_each_other_in_no_circle():
    """No import cycle among scripts/'s modules: measures -> similarity, ranking, zero_shot -> locate -> repair,
    every package's imports in one direction."""
    modules = workflow_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other in a circle: {cycles}"
    assert "accuracy.locate" not in graph["accuracy.similarity"] and "accuracy.repair" not in graph["accuracy.locate"]


BACKEND_NAMES = ("ascend", "onnxruntime", "openvino")


def test_no_file_outside_scripts_backends_names_a_backend():
    """Backend knowledge lives in its plan (scripts/backends/<name>.py): the Snakefile, the rules, every other
    script and the profiles name no backend, not even in a comment (config examples aside: a profile's usage
    line `--config backend=...`)."""
    import backends

    assert set(backends.names()) <= set(BACKEND_NAMES) | set(backends.names())
    names = sorted(set(BACKEND_NAMES) | set(backends.names()))
    word = re.compile(r"\b(" + "|".join(names) + r")\b", re.IGNORECASE)
    files = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk")), *sorted((REPO / "profiles").rglob("*.yaml")),
             *[p for p in sorted((REPO / "scripts").rglob("*")) if p.is_file() and p.suffix in (".py", ".j2", ".yaml")
               and "backends" not in p.relative_to(REPO / "scripts").parts]]
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for path in files
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if word.search(line) and "--config" not in line]
    assert not found, "backend names outside scripts/backends/:\n" + "\n".join(found)
