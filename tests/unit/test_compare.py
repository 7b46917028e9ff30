"""Two runs' report.json side by side (reporting.compare; bench/compare.py and rule compare run it). Two
synthetic reports that differ in one known
way each (a version, a per-image cosine, a throughput whose intervals do not overlap, one that stays
within noise, a gate, a target only in one run): exactly those are listed, nothing else."""
import copy
import importlib.util
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reporting import compare as C

BENCH = Path(__file__).resolve().parents[2] / "bench" / "compare.py"
_spec = importlib.util.spec_from_file_location("bench_compare", BENCH)
CLI = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(CLI)

STEMS = ("cat", "dog", "rocket")


def pair(a, b, cosines):
    return {"a": a, "b": b, "cosine_min": min(cosines.values()), "cosine_mean": sum(cosines.values()) / len(cosines),
            "max_abs_err": 1e-3, "per_image": dict(cosines)}


def target(precision, fps, ci, torch_fps=2.0, torch_ci=(1.98, 2.02), cosine=0.99999):
    cosines = dict.fromkeys(STEMS, cosine)
    pairs = [pair("offline", "torch_fp32", cosines), pair("onnx_fp16", "torch_fp32", dict.fromkeys(STEMS, 0.9999))]
    gates = [{"a": p["a"], "b": p["b"], "threshold": 0.99, "cosine_min": p["cosine_min"], "passed": True} for p in pairs]
    return {"arch": "ViT-B-16", "tower": "image", "backend": "onnxruntime", "device": "cpu", "precision": precision,
            "name": f"onnxruntime/cpu {precision}", "dir": f"results/ViT-B-16/onnxruntime/cpu/{precision}",
            "accuracy": {"pairs": pairs, "gates": gates},
            "performance": [{"batch_size": 1, "loop": 100, "throughput_fps": fps, "throughput_fps_ci95": list(ci),
                             "latency_ms": {"mean": 1000 / fps, "p50": 1000 / fps, "p90": 1000 / fps,
                                            "p99": 1000 / fps},
                             "baseline_torch_fp32": {"batch_size": 1, "throughput_fps": torch_fps,
                                                     "throughput_fps_ci95": list(torch_ci)}}]}


def report(**versions):
    return {"verdict": "PASS", "model": {"arch": "ViT-B-16", "checkpoint": "synthetic", "checkpoint_sha256": "ab" * 32,
                                         "synthetic": True},
            "models": [{"arch": "ViT-B-16", "checkpoint": "synthetic", "checkpoint_sha256": "ab" * 32, "synthetic": True}],
            "targets": [target("fp32", 4.0, (3.9, 4.1)), target("int8", 10.0, (9.8, 10.2)),
                        target("fp16", 4.0, (3.8, 4.2))],
            "environment": {"python": "3.11.9", "cpu": "Some CPU", "physical_cores": 2,
                            "versions": {"torch": "2.3.1", "onnxruntime": "1.18.0", **versions},
                            "backend_tools": {"onnxruntime": "1.18.0"}}}


@pytest.fixture
def runs():
    """The baseline, and a current run that differs from it in one known way per kind."""
    base = report()
    cur = copy.deepcopy(base)
    cur["environment"]["versions"]["onnxruntime"] = "1.19.2"                  # a version
    fp32, int8, fp16 = cur["targets"]
    per_image = fp32["accuracy"]["pairs"][0]["per_image"]
    per_image["dog"] = 0.9995                                                   # a cosine, beyond the tolerance
    per_image["cat"] += 1e-9                                                    # one within it
    fp32["accuracy"]["pairs"][0].update(cosine_min=0.9995, cosine_mean=sum(per_image.values()) / 3)
    fp32["accuracy"]["gates"][0]["cosine_min"] = 0.9995
    int8["performance"][0].update(throughput_fps=8.0, throughput_fps_ci95=[7.9, 8.1])  # slower, intervals apart
    fp16["performance"][0].update(throughput_fps=4.1, throughput_fps_ci95=[3.9, 4.3])  # faster, but within noise
    return base, cur


def test_only_the_known_differences_are_listed(runs):
    base, cur = runs
    result = C.compare(base, cur)
    assert result["versions"] == [{"what": "onnxruntime", "kind": "package", "baseline": "1.18.0", "current": "1.19.2"}]
    assert result["only_in_baseline"] == [] and result["only_in_current"] == []
    by = {t["precision"]: t for t in result["targets"]}
    assert set(by) == {"fp32", "int8", "fp16"}
    fp32 = by["fp32"]
    assert [(c["image"], c["baseline"], c["current"]) for c in fp32["per_image"]] == [("dog", 0.99999, 0.9995)]
    figures = {(c["pair"], c["figure"]) for c in fp32["accuracy"]}
    assert figures == {("offline vs torch_fp32", "cosine_min"), ("offline vs torch_fp32", "cosine_mean")}
    assert [(g["gate"], g["field"]) for g in fp32["gates"]] == [("offline vs torch_fp32 cosine_min", "value")]
    assert not by["int8"]["accuracy"] and not by["int8"]["per_image"] and not by["int8"]["gates"]
    speed = {(t["precision"], s["model"]): s for t in result["targets"] for s in t["speed"]}
    assert speed[("int8", "offline")]["verdict"] == "slower" and speed[("int8", "offline")]["changed"] is True
    assert speed[("int8", "offline")]["ratio"] == pytest.approx(0.8)
    assert speed[("fp16", "offline")]["verdict"] == "within noise" and speed[("fp16", "offline")]["changed"] is False
    assert speed[("fp32", "offline")]["verdict"] == "within noise"
    assert speed[("fp32", "torch_fp32")]["verdict"] == "within noise"
    s = result["summary"]
    assert (s["targets_compared"], s["accuracy_changes"], s["per_image_changes"], s["gate_changes"],
            s["speed_changes"], s["version_changes"]) == (3, 2, 1, 1, 1, 1)
    assert s["within_noise"] == 5 and s["changed"] is True


def test_the_same_run_twice_is_unchanged(runs):
    base, _ = runs
    result = C.compare(base, copy.deepcopy(base))
    s = result["summary"]
    assert s["changed"] is False and s["speed_changes"] == s["accuracy_changes"] == s["version_changes"] == 0
    assert all(v["verdict"] == "within noise" for t in result["targets"] for v in t["speed"])


def test_a_faster_run_a_missing_interval_a_flipped_gate_and_targets_in_one_run(runs):
    base, cur = runs
    cur["targets"][0]["performance"][0].update(throughput_fps=5.0, throughput_fps_ci95=[4.9, 5.1])
    cur["targets"][1]["performance"][0]["throughput_fps_ci95"] = None
    gate = cur["targets"][2]["accuracy"]["gates"][1]
    gate.update(threshold=0.99999, passed=False)
    cur["targets"].append({**target("int8_dynamic", 9.0, (8.8, 9.2))})
    del base["targets"][0]["performance"][0]["baseline_torch_fp32"]["throughput_fps_ci95"]
    base["models"][0]["checkpoint_sha256"] = "cd" * 32
    result = C.compare(base, cur)
    speed = {(t["precision"], s["model"]): s for t in result["targets"] for s in t["speed"]}
    assert speed[("fp32", "offline")]["verdict"] == "faster"
    assert speed[("int8", "offline")]["verdict"] == "no interval in current" and speed[("int8", "offline")]["changed"] is None
    assert speed[("fp32", "torch_fp32")]["verdict"] == "no interval in baseline"
    gates = {(g["gate"], g["field"]): g for g in next(t for t in result["targets"] if t["precision"] == "fp16")["gates"]}
    assert gates[("onnx_fp16 vs torch_fp32 cosine_min", "passed")]["current"] is False
    assert gates[("onnx_fp16 vs torch_fp32 cosine_min", "threshold")]["current"] == 0.99999
    assert [t["precision"] for t in result["only_in_current"]] == ["int8_dynamic"] and result["only_in_baseline"] == []
    assert {"what": "checkpoint_sha256 (ViT-B-16)", "kind": "model", "baseline": "cd" * 32,
            "current": "ab" * 32} in result["versions"]
    assert result["summary"]["no_interval"] == 2


class _Page(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.tags = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_write_compare_renders_md_and_html_from_the_json(runs, tmp_path):
    base, cur = runs
    result = C.compare(base, cur)
    out = tmp_path / "out"
    C.write_compare(result, out / "compare.json", out / "compare.md", out / "compare.html")
    assert json.loads((out / "compare.json").read_text()) == json.loads(json.dumps(result))
    md = (out / "compare.md").read_text()
    assert md.startswith("# Comparison of two runs")
    assert "| onnxruntime | package | 1.18.0 | 1.19.2 |" in md
    assert re.search(r"\| onnxruntime/cpu fp32 \| offline vs torch_fp32 \| dog \| 0\.99999000 \| 0\.99950000 \| "
                     r"-4\.9e-04 \|", md)
    assert re.search(r"\| onnxruntime/cpu int8 \| offline \| 1 \| 10\.000 \[9\.800, 10\.200\] \| load n/a, ceiling n/a \| "
                     r"8\.000 \[7\.900, 8\.100\] \| load n/a, ceiling n/a \| 0\.80× \| \*\*slower\*\* \|", md)
    assert ("| onnxruntime/cpu fp16 | offline | 1 | 4.000 [3.800, 4.200] | load n/a, ceiling n/a | "
            "4.100 [3.900, 4.300] | load n/a, ceiling n/a | 1.02× | within noise |") in md
    assert "Targets only in one run\n\nNone." in md
    page = (out / "compare.html").read_text()
    assert "1.19.2" in page and "slower" in page and "within noise" in page
    parsed = _Page(page)
    assert {t for t, _ in parsed.tags}.isdisjoint({"script", "link", "img", "iframe"})
    assert all(v.startswith("#") for _, a in parsed.tags for k, v in a.items() if k == "href")


def test_load_report_takes_a_folder_or_a_file_and_the_cli_writes_beside_the_current(runs, tmp_path):
    base, cur = runs
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "old" / "report.json").write_text(json.dumps(base))
    (tmp_path / "new" / "report.json").write_text(json.dumps(cur))
    assert C.load_report(tmp_path / "old") == C.load_report(str(tmp_path / "old" / "report.json")) == base
    with pytest.raises(FileNotFoundError, match="report.json"):
        C.load_report(tmp_path / "nowhere")
    assert CLI.main([str(tmp_path / "old"), str(tmp_path / "new" / "report.json")]) == 0
    written = json.loads((tmp_path / "new" / "compare.json").read_text())
    assert written["baseline"]["source"] == str(tmp_path / "old" / "report.json")
    assert written["summary"]["speed_changes"] == 1
    assert (tmp_path / "new" / "compare.md").is_file() and (tmp_path / "new" / "compare.html").is_file()


def measured(fps, ci, others=0.0, ceiling=150.0):
    """A throughput record with the load of its timed runs and its job's matmul ceiling."""
    return {"throughput_fps": fps, "throughput_fps_ci95": list(ci),
            "load": {"others_cpu_cores": others, "under_load": others > 0.25}}, ceiling


def test_a_loaded_baseline_is_not_comparable_and_a_slower_host_is_scaled():
    """Issue 32: a run beside other work read 0.46x of the same target measured quietly just before. The same
    planted here: the baseline measured under load (others took 1.1 cores) reads 0.46x of the quiet current
    run; its intervals part, but the verdict is `not comparable: load`, not `faster`. Two quiet runs on hosts
    whose ceilings differ by 2x compare per GFLOP/s of each run's ceiling: half the throughput on half the
    ceiling is within noise; a host change that explains none of it is named. One run without a ceiling
    cannot be set beside one with."""
    (loaded, c0), (quiet, c1) = measured(1.84, (1.80, 1.88), others=1.1), measured(4.0, (3.9, 4.1))
    s = C.speed_change(loaded, quiet, c0, c1)
    assert s["verdict"] == C.NOT_COMPARABLE_LOAD and s["changed"] is None and s["ratio"] == pytest.approx(4.0 / 1.84)
    assert s["baseline_load"] == {"others_cpu_cores": 1.1, "under_load": True}
    (fast_host, c0), (slow_host, c1) = measured(4.0, (3.9, 4.1), ceiling=300.0), measured(2.0, (1.95, 2.05), ceiling=150.0)
    s = C.speed_change(fast_host, slow_host, c0, c1)
    assert s["scaled"] and s["verdict"] == "within noise (per GFLOP/s of each run's ceiling)" and s["changed"] is False
    (_, c1), (slower, _) = measured(0, (0, 0), ceiling=150.0), measured(1.0, (0.95, 1.05))
    s = C.speed_change(fast_host, slower, 300.0, c1)
    assert s["verdict"] == "slower (per GFLOP/s of each run's ceiling)" and s["changed"] is True
    assert C.speed_change(fast_host, slower, 300.0, None)["verdict"] == C.NOT_COMPARABLE_CEILING
    # the same host, both quiet: a plain verdict; what runs on a device is never scaled by the host's ceiling
    assert C.speed_change(quiet, measured(5.0, (4.9, 5.1))[0], 150.0, 155.0)["verdict"] == "faster"
    assert C.speed_change(fast_host, slower, 300.0, 150.0, on_host_cpu=False)["verdict"] == "slower"


def test_the_throughput_table_shows_each_runs_load_and_ceiling(runs):
    base, cur = runs
    base["targets"][1]["performance"][0].update(load={"others_cpu_cores": 1.1, "under_load": True},
                                                ceiling={"ceiling_gflops": 150.0})
    cur["targets"][1]["performance"][0]["ceiling"] = {"ceiling_gflops": 152.0}
    result = C.compare(base, cur)
    int8 = next(t for t in result["targets"] if t["precision"] == "int8")
    assert int8["speed"][0]["verdict"] == C.NOT_COMPARABLE_LOAD
    md = C.render_markdown(result)
    assert "others 1.10 cores (under load), 150 GFLOP/s" in md and "not comparable: load" in md
    assert result["summary"]["not_comparable"] >= 1
