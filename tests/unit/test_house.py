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


def backend_facts() -> re.Pattern:
    """Every plan's words (its NAME, LABEL, SHORT, ACCELERATOR and FACTS: runtimes, abbreviations, tools,
    accelerator resources), as whole words."""
    import backends

    words = set()
    for name in backends.names():
        plan = backends.get(name)
        words |= {plan.NAME, plan.LABEL, plan.SHORT, *plan.FACTS} | ({plan.ACCELERATOR} if plan.ACCELERATOR else set())
    return re.compile(r"(?<![\w-])(" + "|".join(sorted(map(re.escape, words), key=len, reverse=True)) + r")(?![\w-])")


def outside_the_plans(root: Path) -> list[Path]:
    """The files that must name no backend fact: the Snakefile, the rules, the profiles, every script but the
    plans (scripts/backends/), the report's templates, and bench/."""
    return [root / "Snakefile", *sorted((root / "rules").glob("*.smk")), *sorted((root / "profiles").rglob("*.yaml")),
            *[p for p in sorted((root / "scripts").rglob("*")) if p.is_file() and p.suffix in (".py", ".j2", ".css")
              and "backends" not in p.relative_to(root / "scripts").parts],
            *sorted((root / "bench").glob("*.py"))]


def facts_outside_the_plans(root: Path, pattern: re.Pattern) -> list[str]:
    """`path:line: text` of every line (code, comment or docstring) outside the plans that names a backend
    fact; a usage line `--config backend=...` aside."""
    return [f"{path.relative_to(root)}:{n}: {line.strip()}" for path in outside_the_plans(root)
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if pattern.search(line) and "--config" not in line]


def test_no_file_outside_the_plans_names_a_backend_fact():
    """Backend knowledge lives in its plan (scripts/backends/<name>, base.py says what a plan declares): no
    other script, rule, profile, report template or bench names a backend, its runtime (or abbreviation), its
    tools or its accelerator resource, not even in a comment."""
    found = facts_outside_the_plans(REPO, backend_facts())
    assert not found, "backend facts outside scripts/backends/:\n" + "\n".join(found)


def test_backends_holds_the_registry_base_and_one_plan_per_backend():
    """scripts/backends/: __init__.py (the registry), base.py (the Protocol) and plans, nothing else; each
    plan is found by the registry, declares what base.Backend names, and exactly one holds the reference role."""
    import backends
    from backends.base import Backend

    folder = REPO / "scripts" / "backends"
    entries = sorted(p.name for p in folder.iterdir() if p.name != "__pycache__")
    plans = {p.removesuffix(".py") for p in entries} - {"__init__", "base"}
    assert set(backends.names()) == plans, entries
    for name in plans:
        assert isinstance(backends.get(name), Backend), name
    assert [n for n in plans if backends.get(n).REFERENCE] == [backends.reference().NAME]
    assert callable(backends.reference().graph_session)


NEW_PLAN = '''"""A backend made by a test: a GPU runtime, one module and nothing else (its work borrowed from the
reference plan, so that a dry run can plan it)."""
from backends.onnxruntime import (benchmark, build_reduced, compile, compile_command, infer, kept_command,  # noqa: F401
                                  load_reduced, options, preflight, reduced_graph, versions, write_kept)

NAME = "gpurt"
CONFIG_KEYS = ()
PRECISIONS = {"fp32": "fp32", "fp16": "fp16"}
DEFAULT_PRECISION = "fp16"
CALIBRATED = frozenset()
AUTO_PRECISIONS = ("fp32", "fp16")
REDUCED = frozenset({"fp16"})
ACCELERATOR = "gpu"
RUNS_ON_HOST_CPU = False
REFERENCE = False
LABEL, SHORT = "GPU Runtime", "GRT"
FACTS = ("gpurt", "GPU Runtime", "GRT", "gpu", "trtexec")


def devices(config):
    return ["gpu0"]
'''


def test_a_new_backend_is_one_module_its_tests_and_its_schema_entry(tmp_path):
    """A fourth backend (a GPU runtime whose jobs hold a `gpu`) added to a copy of the workflow: its module and
    its name in the schema's enum are the only changes, and a dry run plans its compile, infer and benchmark,
    the jobs that hold the accelerator asking Slurm for it (gres) by the resource the plan declares, and no
    file outside the plan names it."""
    from conftest import SNAKEMAKE, copy_workflow

    root = copy_workflow(tmp_path / "wf")
    (root / "scripts" / "backends" / "gpurt.py").write_text(NEW_PLAN)
    schema = root / "config" / "schema.yaml"
    schema.write_text(schema.read_text().replace("enum: [onnxruntime, ascend, openvino]",
                                                 "enum: [onnxruntime, ascend, openvino, gpurt]", 1))
    done = subprocess.run([SNAKEMAKE, "--workflow-profile", "profiles/slurm-test", "-n", "report", "--config",
                           "model_arch=ViT-Toy-16", "backend=gpurt"], cwd=root, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    jobs = dict(re.findall(r"^rule (\S+):\n((?:    .*\n)+)", out, flags=re.M))
    assert {"compile", "infer", "benchmark", "report"} <= set(jobs), sorted(jobs)
    assert "/gpurt/gpu0/fp16/" in jobs["compile"]
    for rule in ("infer", "benchmark"):
        assert re.search(r"\bgpu=1\b", jobs[rule]) and re.search(r"\bgres=gpu:1\b", jobs[rule]), jobs[rule]
    assert not re.search(r"\bgres=gpu", jobs["compile"])
    pattern = re.compile(r"(?<![\w-])(gpurt|GPU Runtime|GRT|gpu|trtexec)(?![\w-])")
    assert facts_outside_the_plans(root, pattern) == []


# what a comment, docstring or doc may point at: a file of this repository (from its root, or from scripts/ or
# tests/ as the modules name each other)
PATH_REFERENCE = re.compile(r"(?<![\w./-])((?:scripts|rules|tests|bench|docs|config|envs|profiles|patches|\.ci|"
                            r"accuracy|backends|pipeline|reporting|model|graph|timing|standins|unit|e2e)/[\w./-]*[\w-])")


def test_every_path_a_comment_or_doc_names_exists():
    """No stale path: every repository path named in the README, docs/, the rules, config, profiles, envs/,
    scripts/, bench/ or tests/ exists (a pattern with {wildcards}, <placeholders> or * aside)."""
    files = [REPO / "README.md", REPO / "Snakefile", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "rules").glob("*.smk")), *sorted((REPO / "config").glob("*.yaml")),
             *sorted((REPO / "profiles").rglob("*.yaml")), *sorted((REPO / "envs").glob("*")),
             *[p for p in sorted((REPO / "scripts").rglob("*")) if p.suffix in (".py", ".j2")],
             *sorted((REPO / "bench").glob("*.py")), *sorted((REPO / "tests").rglob("*.py")),
             *[p for p in sorted((REPO / "tests" / "standins").rglob("*")) if p.is_file() and not p.suffix]]
    stale = []
    for path in files:
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for m in PATH_REFERENCE.finditer(line.replace("\\", "")):  # a regex's escaped dot
                named = m.group(1).rstrip(".")
                if any(c in named for c in "{}*<>") or any((REPO / base / named).exists()
                                                           for base in ("", "scripts", "tests")):
                    continue
                stale.append(f"{path.relative_to(REPO)}:{n}: {named}")
    assert not stale, "paths that do not exist:\n" + "\n".join(stale)
