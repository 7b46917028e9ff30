"""The report's rendering: report.json's contract keys, the verdict and the synthetic warning at the
top of report.html, a self-contained page, markdown and JSON that agree, the figures and tables."""
import base64
import csv
import html
import json
import re
from html.parser import HTMLParser

import pytest

import plots
from common import write_json
from report import (build_report, config_args, render_html, render_markdown, reproduce, target_entry,
                    write_report)

PLOT_NAMES = ("accuracy_chain", "throughput", "per_image", "latency")
TABLE_NAMES = ("accuracy", "performance", "artifacts")


def latency(ms, p90=True):
    return {"mean": ms, "p50": ms, "p90": ms if p90 else None, "p99": ms, "min": ms, "max": ms}


def pair(a, b, cosines: dict) -> dict:
    return {"a": a, "b": b, "cosine_min": min(cosines.values()), "cosine_mean": sum(cosines.values()) / len(cosines),
            "max_abs_err": 1e-3, "rel_err_max": 1e-4, "per_image": cosines}


def gate(a, b, threshold, cosine_min, worst):
    return {"a": a, "b": b, "threshold": threshold, "passed": cosine_min >= threshold, "cosine_min": cosine_min,
            "worst_image": worst}


def write_target(folder, name, offline_cos, batch_sizes=(1,), ascend=False):
    """Records of one target: compile manifests, similarity (offline vs onnx_fp16 cosine given), benchmarks."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "model.bin"
    model.write_bytes(b"model")
    manifests, benchmarks = [], []
    for bs in batch_sizes:
        record = {"backend": "ascend" if ascend else "onnxruntime", "batch_size": bs, "source": "m.img.fp16.onnx",
                  "model": str(model), "options": {"device": name},
                  "artifacts": [{"path": str(model), "bytes": 5, "sha256": "cd" * 32, "batch_size": bs}]}
        if ascend:
            record["command"] = ["atc", "--framework=5", f"--model={folder}/m.onnx", f"--soc_version={name}",
                                 f"--input_shape=image:{bs},3,224,224"]
        write_json(folder / f"compile_bs{bs}.json", record)
        manifests.append(str(folder / f"compile_bs{bs}.json"))
        base = {"batch_size": bs, "loop": 3, "warmup": 1, "threads": 2, "throughput_fps": 2.0 * bs,
                "latency_ms": latency(500.0)}
        bench = {**base, "throughput_fps": 4.0 * bs, "latency_ms": latency(250.0, p90=not ascend),
                 "baseline_torch_fp32": base}
        if ascend:
            bench.update(threads=None, ais_bench={"command": ["python3", "-m", "ais_bench", "--loop", "3"]},
                         notes=["p90 unavailable"])
        else:
            bench.update(fraction_of_ceiling=0.25, achieved_gflops=100.0, ceiling_gflops=400.0,
                         model_gflops_per_image=17.5, speedup_vs_torch_fp32=2.0)
        write_json(folder / f"benchmark_bs{bs}.json", bench)
        benchmarks.append(str(folder / f"benchmark_bs{bs}.json"))
    stems = {"cat <b>": offline_cos, "dog": 0.99999}
    pairs = [pair("offline", "onnx_fp16", stems), pair("offline", "torch_fp32", {"cat <b>": 0.9999, "dog": 0.9999}),
             pair("onnx_fp16", "torch_fp32", {"cat <b>": 0.9999, "dog": 0.99995}),
             pair("onnx_fp32", "torch_fp32", {"cat <b>": 1 - 1e-12, "dog": 1.0})]
    gates = [gate("offline", "onnx_fp16", 0.999, min(stems.values()), min(stems, key=stems.get))]
    gates += [gate(p["a"], p["b"], 0.99, p["cosine_min"], "cat <b>") for p in pairs[1:]]
    write_json(folder / "similarity.json", {"pairs": pairs, "gates": gates})
    return target_entry("ascend" if ascend else "onnxruntime", name, manifests, str(folder / "similarity.json"),
                        benchmarks)


def write_checkpoint(tmp_path, synthetic=True):
    write_json(tmp_path / "ckpt.json", {"arch": "ViT-B-16", "checkpoint": "synthetic" if synthetic else "/w/c.pt",
                                        "path": "c.pt", "bytes": 1, "checkpoint_sha256": "ab" * 32,
                                        "synthetic": synthetic})
    return str(tmp_path / "ckpt.json")


CONFIG = {"model_arch": "ViT-B-16", "checkpoint": "synthetic", "images": "", "backend": "onnxruntime",
          "precision": "fp32", "soc_version": "Ascend910B4", "soc_versions": [], "atc": {"precision_mode": ""},
          "batch_sizes": [1], "loop": 3, "warmup": 1, "seed": 0, "threads": 0,
          "gates": {"offline_vs_onnx_fp16": 0.999, "vs_torch_fp32": 0.99}}


@pytest.fixture
def failing(tmp_path):
    """A synthetic-weights report whose offline vs onnx_fp16 gate fails."""
    target = write_target(tmp_path / "cpu", "cpu", offline_cos=0.5)
    return build_report(write_checkpoint(tmp_path), [], [target], CONFIG)


@pytest.fixture
def passing_real(tmp_path):
    target = write_target(tmp_path / "cpu", "cpu", offline_cos=0.99999)
    return build_report(write_checkpoint(tmp_path, synthetic=False), [], [target],
                        {**CONFIG, "checkpoint": "/w/c.pt"})


@pytest.fixture
def ascend_two_chips(tmp_path):
    """Two Ascend targets, three batch sizes, no p90, no fraction_of_ceiling, ATC command lines."""
    config = {**CONFIG, "backend": "ascend", "soc_versions": ["Ascend910B4", "Ascend310P3"], "batch_sizes": [1, 4, 8],
              "atc": {"precision_mode": "must_keep_origin_dtype", "op_select_implmode": ""}}
    targets = [write_target(tmp_path / chip, chip, offline_cos=0.9999, batch_sizes=(1, 4, 8), ascend=True)
               for chip in ("Ascend910B4", "Ascend310P3")]
    return build_report(write_checkpoint(tmp_path, synthetic=False), [], targets, config)


def write_all(report, folder):
    write_report(report, str(folder / "r.json"), str(folder / "r.md"), str(folder / "r.html"),
                 plots={n: str(folder / "report" / f"{n}.png") for n in PLOT_NAMES},
                 tables={n: str(folder / "report" / f"{n}.csv") for n in TABLE_NAMES})
    return (folder / "r.html").read_text(encoding="utf-8"), (folder / "r.md").read_text(encoding="utf-8")


class Page(HTMLParser):
    """Every tag with its attributes, and the text, of an HTML page."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_report_json_contract_keys_and_fail_verdict(failing, tmp_path):
    r = failing
    assert r["verdict"] == "FAIL" and (r["gates_passed"], r["gates_total"]) == (3, 4)
    assert set(r) >= {"model", "targets", "baseline", "environment"}
    assert set(r["model"]) >= {"arch", "checkpoint", "checkpoint_sha256", "synthetic"}
    t = r["targets"][0]
    assert set(t) >= {"backend", "device", "artifacts", "accuracy", "performance"}
    for a in t["artifacts"]:
        assert set(a) >= {"path", "bytes", "sha256", "batch_size"}
    assert set(t["performance"][0]) >= {"batch_size", "loop", "throughput_fps", "latency_ms"}
    assert r["baseline"]["torch_fp32"][0]["throughput_fps"] == 2.0
    md = render_markdown(r)
    assert "Verdict: FAIL" in md and "**FAIL**" in md and "SYNTHETIC" in md
    page = render_html(r)
    assert "cat &lt;b&gt;" in page and "cat <b>" not in page
    assert 'class="verdict fail"' in page
    write_report(r, str(tmp_path / "r.json"), str(tmp_path / "r.md"), str(tmp_path / "r.html"))
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "FAIL"


def _top(page: str) -> str:
    """The part of the page before the detail sections: what a person sees first."""
    return page[:page.index('id="accuracy"')]


def test_synthetic_warning_shown_at_the_top(failing, passing_real):
    top = _top(render_html(failing))
    assert 'class="banner warn"' in top and "SYNTHETIC" in top and "WARNING" in top
    assert top.index("SYNTHETIC") < top.index("<table")
    assert "SYNTHETIC" not in render_html(passing_real)
    assert "WARNING" not in render_markdown(passing_real)


def test_fail_verdict_and_the_missed_gate_are_at_the_top(failing, tmp_path):
    page, _ = write_all(failing, tmp_path)
    top = _top(page)
    verdict = re.search(r'<div class="verdict (\w+)" id="verdict"><div class="word">(\w+)</div>', top)
    assert verdict and verdict.groups() == ("fail", "FAIL")
    assert top.index('id="verdict"') < top.index("<table") < top.index("<figure")
    # the missed gate is named in a banner and marked in the target's gate table
    banner = re.search(r'<div class="banner fail">(.*?)</div>', top).group(1)
    assert "offline vs onnx_fp16" in banner and "0.999" in banner and "cat &lt;b&gt;" in banner
    assert '<tr class="fail">' in top and '<span class="badge fail">FAIL</span>' in top
    # the two figures that answer "correct? how fast?" come before the detail tables
    assert 'id="fig-accuracy_chain"' in top and 'id="fig-throughput"' in top


def test_pass_verdict(passing_real):
    top = _top(render_html(passing_real))
    assert '<div class="word">PASS</div>' in top and "4 of 4 accuracy gates met" in top
    assert 'class="banner fail"' not in top


def test_html_is_self_contained(failing, tmp_path):
    page, _ = write_all(failing, tmp_path)
    parsed = Page(page)
    refs = [(tag, k, v) for tag, attrs in parsed.tags for k, v in attrs.items() if k in ("src", "href", "srcset")]
    assert refs, "the page has images and anchors"
    for tag, key, value in refs:
        assert not re.match(r"^\s*(https?:)?//", value), f"<{tag} {key}={value[:60]}> fetches from the network"
        if key == "href":
            assert value.startswith("#"), f"<{tag} href={value}> leaves the page"
    images = [attrs["src"] for tag, attrs in parsed.tags if tag == "img"]
    assert len(images) == len(PLOT_NAMES)
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert {tag for tag, _ in parsed.tags}.isdisjoint({"script", "link", "iframe", "object", "embed"})
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    assert "url(" not in style and "@import" not in style


def _md_gate_table(md: str) -> list[dict]:
    """The rows of the table under `## Verdicts`, as {column: cell}."""
    table = md.split("## Verdicts", 1)[1].strip().split("\n\n", 1)[0].splitlines()
    head = [c.strip() for c in table[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in row.strip("|").split("|")))) for row in table[2:]]


@pytest.mark.parametrize("which", ["failing", "passing_real", "ascend_two_chips"])
def test_markdown_and_json_agree_on_the_gates(which, request, tmp_path):
    r = request.getfixturevalue(which)
    _, md = write_all(r, tmp_path)
    saved = json.loads((tmp_path / "r.json").read_text())
    expected = [(f"{t['backend']}/{t['device']}", g["a"], g["b"], g["threshold"], "PASS" if g["passed"] else "FAIL")
                for t in saved["targets"] for g in t["accuracy"]["gates"]]
    rows = _md_gate_table(md)
    got = [(row["target"], row["a"], row["b"], float(row["threshold"]), row["result"].strip("*")) for row in rows]
    assert got == expected
    assert f"**Verdict: {saved['verdict']}**" in md
    html_verdict = re.search(r'<div class="word">(\w+)</div>', (tmp_path / "r.html").read_text()).group(1)
    assert html_verdict == saved["verdict"]
    with open(tmp_path / "report" / "accuracy.csv", newline="") as f:
        csv_gates = [(row["target"], row["a"], row["b"], float(row["gate_threshold"]), row["gate"])
                     for row in csv.DictReader(f) if row["gate"]]
    assert sorted(csv_gates) == sorted(expected)


def test_plots_and_tables_written_and_embedded(failing, tmp_path):
    page, md = write_all(failing, tmp_path)
    for name in PLOT_NAMES:
        png = tmp_path / "report" / f"{name}.png"
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
        assert base64.b64encode(data).decode() in page, f"{name} is embedded in the HTML"
        assert f"](report/{name}.png)" in md, f"{name} is linked from the markdown"
    for name in TABLE_NAMES:
        with open(tmp_path / "report" / f"{name}.csv", newline="") as f:
            assert list(csv.DictReader(f)), name


def test_missing_figures_and_records_are_handled(ascend_two_chips, tmp_path):
    """Ascend: p90 and fraction_of_ceiling absent, host threads None, several chips and batch sizes."""
    r = ascend_two_chips
    page, md = write_all(r, tmp_path)
    assert r["verdict"] == "PASS" and len(r["targets"]) == 2
    assert "ascend/Ascend310P3" in page and "ascend/Ascend910B4" in md
    perf_rows = [line for line in md.splitlines() if line.startswith("| offline | 4 |")]
    assert len(perf_rows) == 2 and all("n/a" in line for line in perf_rows)
    assert "p90 unavailable" in page and "p90 unavailable" in md
    assert "<img" not in render_html(r, plots={"throughput": str(tmp_path / "nope.png")})


def test_reproduce_commands(ascend_two_chips, failing):
    ascend = reproduce(ascend_two_chips)
    assert ascend["report"].startswith(".venv/bin/snakemake -c1 report --config model_arch=ViT-B-16 ")
    assert "backend=ascend" in ascend["report"] and "'soc_versions=[Ascend910B4, Ascend310P3]'" in ascend["report"]
    assert "'atc={precision_mode: must_keep_origin_dtype}'" in ascend["report"] and "precision=" not in ascend["report"]
    tools = [s["tool_command"] for s in ascend["steps"] if s.get("tool_command")]
    assert any(t.startswith("atc --framework=5") and "--soc_version=Ascend310P3" in t for t in tools)
    assert any(t.startswith("python3 -m ais_bench") for t in tools)
    md, page = render_markdown(ascend_two_chips), render_html(ascend_two_chips)
    atc = next(t for t in tools if t.startswith("atc"))
    assert atc in md and atc in html.unescape(page)
    cpu = config_args(failing["config"])
    assert "backend=onnxruntime" in cpu and "precision=fp32" in cpu and "seed=0" in cpu
    assert not any(a.startswith(("soc_version", "atc", "images")) for a in cpu)
    steps = reproduce(failing)["steps"]
    assert any(s["artifacts"][0].endswith("compile_bs1.json") and s["command"].split()[2].endswith("compile_bs1.json")
               for s in steps)


def test_plot_functions_cope_with_no_benchmarks(failing, tmp_path):
    failing["targets"][0]["performance"] = []
    written = plots.write_plots(failing, {n: tmp_path / f"{n}.png" for n in PLOT_NAMES})
    assert sorted(written) == sorted(PLOT_NAMES) and all((tmp_path / f"{n}.png").is_file() for n in PLOT_NAMES)
    assert "no benchmark records" in render_html(failing)


def test_gates_of_one_and_nan_cosines_still_give_every_figure(tmp_path):
    """Gates of 1.0 put the gate line at 1 - cosine = 0 (not on a log axis); a NaN cosine is a broken
    output. Neither may cost the report: the figures are drawn, the gate fails, the page says FAIL."""
    target = write_target(tmp_path / "cpu", "cpu", offline_cos=float("nan"))
    for g in target["accuracy"]["gates"]:
        g["threshold"], g["passed"] = 1.0, False
    target["accuracy"]["pairs"][3]["per_image"] = {"cat <b>": 1.0, "dog": 1.0}
    r = build_report(write_checkpoint(tmp_path), [], [target], {**CONFIG, "gates": {"offline_vs_onnx_fp16": 1.0,
                                                                                    "vs_torch_fp32": 1.0}})
    page, md = write_all(r, tmp_path / "out")
    assert r["verdict"] == "FAIL" and '<div class="word">FAIL</div>' in page and "Verdict: FAIL" in md
    for name in PLOT_NAMES:
        assert (tmp_path / "out" / "report" / f"{name}.png").stat().st_size > 5_000, name


def test_a_failing_plot_becomes_a_placeholder(failing, tmp_path, monkeypatch):
    def broken(report, path):
        raise KeyError("a record of an unforeseen shape")

    monkeypatch.setattr(plots, "latency", broken)
    page, _ = write_all(failing, tmp_path)
    assert (tmp_path / "report" / "latency.png").read_bytes()[:4] == b"\x89PNG"
    assert page.count("data:image/png;base64,") == len(PLOT_NAMES)


def test_workflow_cost_per_rule_from_snakemake_benchmark_records(tmp_path):
    from report import workflow_costs

    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = {}
    for name, s, rss in (("export", "38.4", "6225.61"), ("ref_a", "4.0", "2000.5"), ("ref_b", "6.0", "NA")):
        f = tmp_path / f"{name}.tsv"
        f.write_text(head + f"{s}\t0:00:38\t{rss}\t1\t1\t1\t0\t0\t90\t70\n")
        files[name] = str(f)
    costs = workflow_costs({"export_onnx": [files["export"]], "reference": [files["ref_a"], files["ref_b"]],
                            "infer": []})
    rows = {r["rule"]: r for r in costs["rules"]}
    assert set(rows) == {"export_onnx", "reference"}, "a rule with no record is left out, not shown as zero"
    assert rows["reference"] == {"rule": "reference", "jobs": 2, "wall_s": 10.0, "longest_s": 6.0, "peak_rss_mb": 2000.5}
    assert costs["peak_rss_mb"] == 6225.61 and costs["wall_s"] == 48.4


def test_a_matrix_report_has_one_row_per_arch_backend_device_and_batch_size(tmp_path):
    """model_archs x backends x chips x batch sizes: one report, every target named by its arch."""
    targets, infos = [], []
    for arch in ("ViT-B-16", "ViT-L-14"):
        write_json(tmp_path / f"{arch}.json", {"arch": arch, "checkpoint": "synthetic", "path": f"{arch}.pt",
                                               "bytes": 1, "checkpoint_sha256": "ab" * 32, "synthetic": True})
        infos.append(str(tmp_path / f"{arch}.json"))
        for backend, device in (("onnxruntime", "cpu"), ("ascend", "Ascend910B4")):
            t = write_target(tmp_path / arch / device, device, 0.99999, batch_sizes=(1, 2), ascend=backend == "ascend")
            targets.append({**t, "arch": arch})
    config = {**CONFIG, "model_archs": ["ViT-B-16", "ViT-L-14"], "backends": ["onnxruntime", "ascend"],
              "batch_sizes": [1, 2]}
    r = build_report(infos, [], targets, config)
    assert r["model"]["arch"] == "ViT-B-16" and [m["arch"] for m in r["models"]] == ["ViT-B-16", "ViT-L-14"]
    rows = {(t["arch"], t["backend"], t["device"], p["batch_size"]) for t in r["targets"] for p in t["performance"]}
    assert len(rows) == 2 * 2 * 2
    names = [t["name"] for t in r["targets"]]
    assert names == ["ViT-B-16 onnxruntime/cpu", "ViT-B-16 ascend/Ascend910B4", "ViT-L-14 onnxruntime/cpu",
                     "ViT-L-14 ascend/Ascend910B4"]
    md, page = render_markdown(r), render_html(r)
    assert md.startswith("# Chinese-CLIP deployment report: ViT-B-16, ViT-L-14")
    assert all(f"Target {n}" in md for n in names) and all(html.escape(n) in page for n in names)
    args = config_args(config)
    assert "model_archs=[ViT-B-16, ViT-L-14]" in args and not any(a.startswith(("model_arch=", "backend=")) for a in args)
