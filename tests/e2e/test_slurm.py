"""The workflow on a real Slurm scheduler: a single-node cluster started on this machine
(tests/slurm_cluster.py: Debian's slurm-wlm and munge, installed when missing), driven by
`snakemake --workflow-profile profiles/slurm-test` (executor slurm). ViT-Toy-16 synthetic, batch sizes
1 and 2, on backend onnxruntime and on ascend with the stand-in atc/ais_bench.

Clones of the session's e2e workflow (its checkpoint, ONNX models and references are reused: hard
links, nothing rebuilt) run the same config per backend, one through Slurm and one locally, all four
at once. The Slurm run's jobs must each log the SLURM_JOB_ID Slurm gave them, the NPU jobs must have
asked Slurm for the `npu` generic resource, and each backend's two report.json must be equal but for
timings, performance figures and the environment."""
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline import paths as P
from conftest import E2E_ARCH, E2E_RESOLUTION, SNAKEMAKE, STANDINS, Workflow
from slurm_cluster import SlurmCluster, SlurmUnavailable, install_slurm

pytestmark = pytest.mark.e2e

VENV_BIN = str(Path(sys.executable).parent)
CHIP = "Ascend910B1"  # a chip no other test builds, so their plans and call counts are unaffected
BATCH_SIZES = [1, 2]
# what a report may differ in between two runs of one config: speed and the machine
TIMINGS = {"throughput_fps", "fastest_batch_size", "latency_ms", "ceiling_gflops", "achieved_gflops", "fraction_of_ceiling",
           "speedup_vs_torch_fp32", "torch_gflops", "onnxruntime_gflops", "wall_s", "longest_s", "peak_rss_mb",
           # what other processes used during the timed runs (issue 16): the host's state, not the run's
           "load", "offline_load", "quiet_wait",
           # the 95 % intervals, the runs they come from, and the speed-ups' noise verdicts (issue 26)
           "throughput_fps_ci95", "latency_ms_ci95", "seconds", "speedup_vs_torch_fp32_ci95",
           "speedup_vs_torch_fp32_within_noise", "speedup_vs_fp32", "speedup_vs_fp32_ci95", "speedup_vs_fp32_within_noise",
           # a device tool's host-device copy times (issue 33)
           "copies_ms"}
LOAD_WARNING = "measured under load"
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: .*/slurm_logs/rule_(\w+)/")


def link_or_copy(src: str, dst: str) -> None:
    """Hard link, except ONNX external data: onnx.load refuses a data file with several links."""
    if src.endswith((".extra_file", ".data")):
        shutil.copy2(src, dst)
    else:
        os.link(src, dst)


def clone(src: Path, dest: Path) -> Path:
    """A copy of a workflow directory that has run: results/ and resources/ hard-linked where possible
    (Snakemake deletes an output before rewriting it, so the source's files are never changed), the
    rest copied. Its exporter's record is wiped: that rule's inputs are absolute paths, so the copy
    would otherwise rebuild everything from the ONNX export on."""
    dest.mkdir(parents=True)
    for entry in src.iterdir():
        if entry.name in ("results", "resources"):
            shutil.copytree(entry, dest / entry.name, copy_function=link_or_copy, symlinks=True)
        elif entry.is_dir():
            shutil.copytree(entry, dest / entry.name, symlinks=True,
                            ignore=shutil.ignore_patterns("slurm_logs", "locks"))
        else:
            shutil.copy2(entry, dest / entry.name)
    subprocess.run([SNAKEMAKE, "--cleanup-metadata", "results/exporter/pytorch_to_onnx.py"], cwd=dest,
                   check=True, capture_output=True)
    return dest


class SlurmWorkflow(Workflow):
    """Snakemake through the test cluster: the slurm-test workflow profile instead of profiles/default."""

    def run(self, *extra: str, config: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.env}
        cmd = [SNAKEMAKE, "--workflow-profile", "profiles/slurm-test", *extra, *self.args(config)]
        result = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-4000:]}\n"
                                 f"{result.stderr[-8000:]}")
        return result


def without_timings(value):
    if isinstance(value, dict):
        drop = TIMINGS | {"environment"}
        if str(value.get("path", "")).endswith(".om"):
            # the stand-in .om records how atc was called (absolute paths, its pid): compared by
            # its model payload instead (test_compiled_models_are_the_same)
            drop |= {"sha256", "bytes"}
        out = {k: without_timings(v) for k, v in value.items() if k not in drop}
        if isinstance(out.get("warnings"), list):
            out["warnings"] = [w for w in out["warnings"] if LOAD_WARNING not in w.lower()]
        return out
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def comparable(report: dict, root: Path) -> dict:
    """The report without timings and environment, its workflow directory written as <root> (the
    ATC command lines name absolute paths)."""
    text = json.dumps(without_timings(report))
    for path in {str(root), str(root.resolve())}:
        text = text.replace(path, "<root>")
    # the benchmark's scratch directory for ais_bench (tempfile.mkdtemp)
    text = re.sub(r"(ais_bench-bs\d+-)[A-Za-z0-9_]+", r"\1<tmp>", text)
    return json.loads(text)


def job_logs_with_slurm_ids(root: Path) -> dict[str, str]:
    """{SLURM_JOB_ID: rule log} over the workflow's logs/."""
    found = {}
    for log in (root / "logs").rglob("*.log"):
        for job_id in re.findall(r"SLURM_JOB_ID=(\d+)", log.read_text(errors="replace")):
            assert job_id not in found, f"Slurm job {job_id} logged in {found.get(job_id)} and {log}"
            found[job_id] = str(log.relative_to(root))
    return found


def scontrol(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", job_id], env={**os.environ, **cluster.env},
                         capture_output=True, text=True, check=True).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        install_slurm()
    except SlurmUnavailable as exc:
        pytest.skip(f"Slurm unavailable: {exc}")
    # the node in a PID namespace of its own: job steps cannot see the submitting Snakemake (a second node)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), node_pid_namespace=True).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def runs(e2e_workflow, cluster, tmp_path_factory):
    """{backend: {"slurm": run, "local": run}}, each run a dict (root, report; for Slurm also
    jobs {Slurm job id: rule}, their `scontrol show job` fields, {Slurm job id: rule log naming it}).
    All four runs go at once, each in its own clone: the Slurm runs mostly wait for Slurm's status
    checks, and the timings are not compared."""
    base = tmp_path_factory.mktemp("slurm-runs")
    config = {**e2e_workflow.config, "batch_sizes": BATCH_SIZES}
    backends = {"onnxruntime": {}, "ascend": {"backend": "ascend", "soc_version": CHIP}}

    def env(kind: str, backend: str) -> dict:
        env = dict(cluster.env) if kind == "slurm" else {}
        if backend == "ascend":  # the stand-ins, as tests/e2e/test_ascend_workflow.py sets them up
            env.update({"PATH": os.pathsep.join([VENV_BIN, str(STANDINS), cluster.env["PATH"]]),
                        "PYTHONPATH": os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")])),
                        "STANDIN_LOG": str(base / f"{kind}-standins.jsonl")})
        return env

    def run(kind: str, backend: str) -> dict:
        root = clone(e2e_workflow.root, base / f"{kind}-{backend}")
        cls = SlurmWorkflow if kind == "slurm" else Workflow
        wf = cls(root, config, env=env(kind, backend))
        result = wf.run("report", config=backends[backend])
        out = {"root": root, "report": wf.report()}
        if kind == "slurm":
            out["jobs"] = dict(SUBMITTED.findall(result.stdout + result.stderr))
            out["states"] = {job_id: scontrol(cluster, job_id) for job_id in out["jobs"]}  # before Slurm forgets
            out["logged"] = job_logs_with_slurm_ids(root)
        return out

    with ThreadPoolExecutor(4) as pool:
        futures = {(kind, backend): pool.submit(run, kind, backend)
                   for backend in backends for kind in ("slurm", "local")}
        out = {backend: {kind: futures[kind, backend].result() for kind in ("slurm", "local")}
               for backend in backends}
    return out


def test_job_steps_ran_where_the_submitting_run_is_not_visible(cluster, runs):
    inside = cluster.node_pid_namespace_id()
    assert inside is not None and inside != os.readlink("/proc/self/ns/pid")


def test_slurm_ran_the_jobs_each_logs_its_slurm_job_id(runs):
    expected = {
        # the session's run built batch size 1; batch size 2 and the report are new
        "onnxruntime": ["benchmark", "compile", "report"],
        # a new chip: its whole target (locate: an fp16 target's, which locates only a missed gate)
        "ascend": ["benchmark", "benchmark", "compile", "compile", "infer", "locate", "report", "similarity"],
    }
    seen = set()
    for backend, rules in expected.items():
        on_slurm = runs[backend]["slurm"]
        jobs, states, logged = on_slurm["jobs"], on_slurm["states"], on_slurm["logged"]
        assert sorted(jobs.values()) == rules, backend
        assert not seen & set(jobs), "each job is a Slurm job of its own"
        seen |= set(jobs)
        assert set(logged) == set(jobs), f"rule logs name Slurm jobs {sorted(logged)}; Slurm ran {sorted(jobs)}"
        for job_id, rule in jobs.items():
            assert Path(logged[job_id]).name.startswith(rule), (job_id, rule, logged[job_id])
            assert states[job_id]["JobState"] == "COMPLETED" and states[job_id]["Partition"] == "cnclip"


def test_npu_jobs_hold_the_npu_generic_resource(runs):
    """infer and benchmark on ascend asked Slurm for `--gres=npu:1` (the profile's default-resources over
    the job's `manifest` input, not its rule name: infer_3of8 in a sharded run); no other job did, the
    ascend compile (ATC on the CPU) included. tests/unit/test_profiles.py checks a sharded plan."""
    for backend in ("onnxruntime", "ascend"):
        on_slurm = runs[backend]["slurm"]
        assert "compile" in on_slurm["jobs"].values()
        for job_id, rule in on_slurm["jobs"].items():
            state = on_slurm["states"][job_id]
            holds_npu = backend == "ascend" and rule.startswith(("infer", "benchmark"))
            assert ("npu:1" in state.get("TresPerNode", "")) == holds_npu, (backend, rule, state)


def test_standins_ran_inside_slurm_jobs(runs):
    root = runs["ascend"]["slurm"]["root"]
    calls = [json.loads(line) for line in (root.parent / "slurm-standins.jsonl").read_text().splitlines()]
    assert {c["tool"] for c in calls} == {"atc", "ais_bench"}
    assert all(f"--soc_version={CHIP}" in c["argv"] for c in calls if c["tool"] == "atc")
    assert all(Path(c["cwd"]).resolve() != root.resolve() for c in calls if c["tool"] == "atc"), "ATC's own scratch"


@pytest.mark.parametrize("bs", BATCH_SIZES)
def test_compiled_models_are_the_same(runs, bs):
    """The stand-in .om built in a Slurm job holds the very model the local run's holds."""
    sys.path.insert(0, str(STANDINS))
    from standin_om import read_om

    (slurm_header, slurm_onnx), (local_header, local_onnx) = [
        read_om(runs["ascend"][kind]["root"] / P.Target(E2E_ARCH, "image", "ascend", CHIP, "fp16")
                .compiled(bs) / "model.om")
        for kind in ("slurm", "local")]
    assert slurm_onnx == local_onnx
    assert slurm_header["input_shape"] == local_header["input_shape"] == f"image:{bs},3,{E2E_RESOLUTION},{E2E_RESOLUTION}"


@pytest.mark.parametrize("backend", ["onnxruntime", "ascend"])
def test_report_equals_the_local_runs_but_for_timings(runs, backend):
    on_slurm, local = runs[backend]["slurm"], runs[backend]["local"]
    assert on_slurm["report"]["verdict"] == local["report"]["verdict"] == "PASS"
    (target,) = on_slurm["report"]["targets"]
    assert target["backend"] == backend and [p["batch_size"] for p in target["performance"]] == BATCH_SIZES
    assert all(a["sha256"] for a in target["artifacts"] if not a["path"].endswith(".om"))
    assert comparable(on_slurm["report"], on_slurm["root"]) == comparable(local["report"], local["root"])
