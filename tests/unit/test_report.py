"""The report package: report.json's contract keys and target coordinates, the verdict and the
warnings (synthetic weights, measured under load) at the top of report.html, a self-contained page,
markdown and JSON that agree, the matmul ceilings beside every speed-up, the figures (accuracy versus
speed included) and tables, and views that stay readable at 1,000 images."""
import base64
import csv
import html
import json
import os
import re
from html.parser import HTMLParser

import pytest

from pipeline.common import write_json
from reporting import build_report, failed_gates, load_targets, plots, render_html, render_markdown, write_report
from reporting.reproduce import config_args, reproduce
from reporting.rows import WORST_N

PLOT_NAMES = ("accuracy_chain", "throughput", "accuracy_vs_speed", "per_image", "latency")
TABLE_NAMES = ("accuracy", "performance", "artifacts")


def latency(ms, p90=True):
    return {"mean": ms, "p50": ms, "p90": ms if p90 else None, "p99": ms, "min": ms, "max": ms}


def pair(a, b, cosines: dict) -> dict:
    return {"a": a, "b": b, "cosine_min": min(cosines.values()), "cosine_mean": sum(cosines.values()) / len(cosines),
            "max_abs_err": 1e-3, "rel_err_max": 1e-4, "per_image": cosines}


def gate(a, b, threshold, cosine_min, worst):
    return {"a": a, "b": b, "threshold": threshold, "passed": cosine_min >= threshold, "cosine_min": cosine_min,
            "worst_image": worst}


CEILING = {"matmul_n": 4096, "threads": 2, "torch_gflops": 188.0, "onnxruntime_gflops": 168.0,
           "ceiling_gflops": 188.0}


def write_target(folder, name, offline_cos, batch_sizes=(1,), ascend=False, tower="image", precision=None,
                 arch="ViT-B-16", load=None, stems=None, fps=4.0, torch_cos=0.9999):
    """Records of one target (compile manifests, similarity with the offline vs onnx_fp16 cosine of the
    first image given, benchmarks) and its spec as the report rule passes it in params.targets."""
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
        bench = {**base, "throughput_fps": fps * bs, "latency_ms": latency(250.0, p90=not ascend),
                 "baseline_torch_fp32": base}
        if ascend:
            bench.update(threads=None, command=["python3", "-m", "ais_bench", "--loop", "3"],
                         notes=["p90 unavailable"])
        else:
            bench.update(fraction_of_ceiling=0.25, achieved_gflops=100.0, ceiling_gflops=400.0,
                         model_gflops_per_image=17.5, speedup_vs_torch_fp32=fps / 2.0, ceiling=CEILING)
        if load is not None:
            bench["load"] = load
        write_json(folder / f"benchmark_bs{bs}.json", bench)
        benchmarks.append(str(folder / f"benchmark_bs{bs}.json"))
    stems = stems or ["cat <b>", "dog"]
    first = {s: (offline_cos if k == 0 else 0.99999) for k, s in enumerate(stems)}
    pairs = [pair("offline", "onnx_fp16", first), pair("offline", "torch_fp32", dict.fromkeys(stems, torch_cos)),
             pair("onnx_fp16", "torch_fp32", {s: (0.9999 if k == 0 else 0.99995) for k, s in enumerate(stems)}),
             pair("onnx_fp32", "torch_fp32", {s: (1 - 1e-12 if k == 0 else 1.0) for k, s in enumerate(stems)})]
    gates = [gate("offline", "onnx_fp16", 0.999, min(first.values()), min(first, key=first.get))]
    gates += [gate(p["a"], p["b"], 0.99, p["cosine_min"], stems[0]) for p in pairs[1:]]
    write_json(folder / "similarity.json", {"pairs": pairs, "gates": gates})
    return {"arch": arch, "tower": tower, "backend": "ascend" if ascend else "onnxruntime", "device": name,
            "precision": precision or ("fp16" if ascend else "fp32"), "dir": str(folder), "manifests": manifests,
            "similarity": str(folder / "similarity.json"), "benchmarks": benchmarks, "zero_shot": None}


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
    targets = load_targets([write_target(tmp_path / "cpu", "cpu", offline_cos=0.5)])
    return build_report([write_checkpoint(tmp_path)], [], targets, CONFIG)


@pytest.fixture
def passing_real(tmp_path):
    targets = load_targets([write_target(tmp_path / "cpu", "cpu", offline_cos=0.99999)])
    return build_report([write_checkpoint(tmp_path, synthetic=False)], [], targets, {**CONFIG, "checkpoint": "/w/c.pt"})


@pytest.fixture
def ascend_two_chips(tmp_path):
    """Two Ascend targets, three batch sizes, no p90, no fraction_of_ceiling, ATC command lines."""
    config = {**CONFIG, "backend": "ascend", "soc_versions": ["Ascend910B4", "Ascend310P3"], "batch_sizes": [1, 4, 8],
              "precision": "fp32", "atc": {"op_select_implmode": "high_precision", "optypelist_for_implmode": ""}}
    targets = load_targets([write_target(tmp_path / chip, chip, offline_cos=0.9999, batch_sizes=(1, 4, 8), ascend=True)
                            for chip in ("Ascend910B4", "Ascend310P3")])
    return build_report([write_checkpoint(tmp_path, synthetic=False)], [], targets, config)


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
    expected = [(t["name"], g["a"], g["b"], g["threshold"], "PASS" if g["passed"] else "FAIL")
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
    assert "'atc={op_select_implmode: high_precision}'" in ascend["report"] and "precision=fp32" in ascend["report"]
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
    (target,) = load_targets([write_target(tmp_path / "cpu", "cpu", offline_cos=float("nan"))])
    for g in target["accuracy"]["gates"]:
        g["threshold"], g["passed"] = 1.0, False
    target["accuracy"]["pairs"][3]["per_image"] = {"cat <b>": 1.0, "dog": 1.0}
    r = build_report([write_checkpoint(tmp_path)], [], [target], {**CONFIG, "gates": {"offline_vs_onnx_fp16": 1.0,
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
    from reporting.load import workflow_costs

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
    assert rows["reference"] == {"rule": "reference", "jobs": 2, "wall_s": 10.0, "longest_s": 6.0,
                                 "peak_rss_mb": 2000.5, "missing": 0}
    assert costs["peak_rss_mb"] == 6225.61 and costs["wall_s"] == 48.4


def test_a_deleted_cost_record_is_counted_not_fatal(tmp_path):
    """The report reads the records by path (params: looking up a record per shard job would make the
    plan grow with images); one deleted by hand is counted as missing, and the rest still add up."""
    from reporting.load import workflow_costs
    from reporting.rows import cost_table

    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "a.tsv").write_text(head + "4.0\t0:00:04\t100\t1\t1\t1\t0\t0\t90\t4\n")
    costs = workflow_costs({"reference": [str(tmp_path / "a.tsv"), str(tmp_path / "gone.tsv")]})
    assert costs["rules"] == [{"rule": "reference", "jobs": 1, "wall_s": 4.0, "longest_s": 4.0,
                               "peak_rss_mb": 100.0, "missing": 1}]
    table = cost_table({"workflow": costs})
    assert "1 without a record" in str(table)


def test_a_matrix_report_has_one_row_per_arch_backend_device_and_batch_size(tmp_path):
    """model_archs x backends x chips x batch sizes: one report, every target named by its arch."""
    targets, infos = [], []
    for arch in ("ViT-B-16", "ViT-L-14"):
        write_json(tmp_path / f"{arch}.json", {"arch": arch, "checkpoint": "synthetic", "path": f"{arch}.pt",
                                               "bytes": 1, "checkpoint_sha256": "ab" * 32, "synthetic": True})
        infos.append(str(tmp_path / f"{arch}.json"))
        for backend, device in (("onnxruntime", "cpu"), ("ascend", "Ascend910B4")):
            targets.append(write_target(tmp_path / arch / device, device, 0.99999, batch_sizes=(1, 2),
                                        ascend=backend == "ascend", arch=arch))
    config = {**CONFIG, "model_archs": ["ViT-B-16", "ViT-L-14"], "backends": ["onnxruntime", "ascend"],
              "batch_sizes": [1, 2]}
    r = build_report(infos, [], load_targets(targets), config)
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


# ---- the rule's entry, target coordinates, load, ceilings, accuracy versus speed, many images ----

ZERO_SHOT = {"reference": "torch_fp32", "labels": ["猫", "火箭"], "images": ["cat <b>", "dog"],
             "predictions": {"cat <b>": {"label": "猫", "prob": 0.9}, "dog": {"label": "火箭", "prob": 0.6}},
             "stages": {"offline": {"top1_agreement": 1.0, "max_prob_change": 1e-3, "spearman_min": 1.0,
                                    "image_to_text_recall1_agreement": 1.0, "text_to_image_recall1_agreement": 1.0,
                                    "per_image": {}}},
             "gates": [{"a": "offline", "b": "torch_fp32", "top1_agreement": 1.0, "max_prob_change": 1e-3,
                        "threshold": 0.01, "passed": True}]}


def rule_job(tmp_path, specs, config=CONFIG):
    """What Snakemake hands the report rule's script: input, params, output, log."""
    from types import SimpleNamespace

    from reporting.plots import PLOTS
    from reporting.tables import TABLES

    out = tmp_path / "results"
    outputs = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html",
               **{n: out / "report" / f"{n}.png" for n in PLOTS},
               **{f"{n}_csv": out / "report" / f"{n}.csv" for n in TABLES}}
    return SimpleNamespace(
        input=SimpleNamespace(checkpoint=[write_checkpoint(tmp_path)], onnx=[]),
        params=SimpleNamespace(targets=specs, config=config, skipped={}, costs={}),
        output=SimpleNamespace(**{k: str(v) for k, v in outputs.items()}), log=[], rule="report")


def test_the_rule_writes_every_output_with_each_targets_coordinates(tmp_path):
    import report

    image = {**write_target(tmp_path / "cpu", "cpu", 0.99999), "zero_shot": str(tmp_path / "zero_shot.json")}
    text = {**write_target(tmp_path / "text", "cpu", 0.99999, tower="text", stems=["猫", "火箭"]), "benchmarks": []}
    write_json(tmp_path / "zero_shot.json", ZERO_SHOT)
    job = rule_job(tmp_path, [image, text])
    report.main(job)
    for name, path in vars(job.output).items():
        assert os.path.getsize(path) > 0, name
    r = json.loads(open(job.output.json, encoding="utf-8").read())
    img, txt = r["targets"]
    assert {k: img[k] for k in ("arch", "tower", "backend", "device", "precision", "dir")} == {
        "arch": "ViT-B-16", "tower": "image", "backend": "onnxruntime", "device": "cpu", "precision": "fp32",
        "dir": str(tmp_path / "cpu")}
    assert (txt["tower"], txt["dir"], txt["performance"], txt["name"]) == ("text", str(tmp_path / "text"), [],
                                                                          "onnxruntime/cpu text")
    # the image target keeps the text and zero_shot keys readers had before the tower was a coordinate
    assert img["text"]["accuracy"] == txt["accuracy"] and img["text"]["similarity_record"] == text["similarity"]
    assert img["zero_shot"]["record"] == str(tmp_path / "zero_shot.json")
    # each gate counted once: 4 image, 4 text, 1 zero-shot
    assert (r["verdict"], r["gates_passed"], r["gates_total"]) == ("PASS", 9, 9)
    assert [b["tower"] for b in r["baseline"]["torch_fp32"]] == ["image"]
    md = open(job.output.md, encoding="utf-8").read()
    assert "| onnxruntime/cpu text | offline | onnx_fp16 |" in md and "## Target onnxruntime/cpu text" in md
    assert "tower text" in md and f"`{tmp_path / 'text'}`" in md


def test_a_benchmark_measured_under_load_is_marked_and_warned_at_the_top(tmp_path):
    busy = {"others_cpu_cores": 0.8, "loadavg_before": [1.2, 1.0, 0.9], "loadavg_after": [1.5, 1.1, 0.9],
            "under_load": True}
    quiet = {**busy, "others_cpu_cores": 0.05, "under_load": False}
    specs = [write_target(tmp_path / "fp32", "cpu", 0.99999, batch_sizes=(1, 2), precision="fp32", load=quiet),
             write_target(tmp_path / "int8", "cpu", 0.99999, batch_sizes=(1, 2), precision="int8", load=busy)]
    r = build_report([write_checkpoint(tmp_path)], [], load_targets(specs), CONFIG)
    page, md = write_all(r, tmp_path / "out")
    (warning,) = [w for w in r["warnings"] if "under load" in w]
    assert "onnxruntime/cpu int8 batch 1" in warning and "0.80 CPU cores" in warning and "fp32" not in warning
    head = md.split("## Verdicts")[0]
    assert "WARNING: 2 benchmark(s) measured under load" in head
    marked = [line for line in md.splitlines() if "measured under load" in line and line.startswith("| ")]
    # the at-a-glance row and the offline and torch_fp32 rows of the int8 target, per batch size
    assert len(marked) == 2 + 2 * 2 and all("int8" in line or line.startswith(("| offline", "| torch_fp32"))
                                            for line in marked)
    perf_fp32 = md.split("## Target onnxruntime/cpu fp32")[1].split("## Target")[0]
    assert "under load" not in perf_fp32
    top = _top(page)
    assert top.index("measured under load") < top.index("<table")
    assert page.count('<tr class="loaded">') == 2 * 2  # the performance table's rows of the int8 target
    cards = re.findall(r'<div class="speed">(.*?)</div>', page)
    assert ["measured under load" in card for card in cards] == [False, True]
    with open(tmp_path / "out" / "report" / "performance.csv", newline="") as f:
        assert {(row["target"], row["under_load"]) for row in csv.DictReader(f)} == {
            ("onnxruntime/cpu fp32", "False"), ("onnxruntime/cpu int8", "True")}


def test_records_without_load_show_nothing_special(failing):
    assert "under load" not in render_markdown(failing) and "under load" not in render_html(failing)


def test_the_matmul_ceilings_are_printed_beside_every_speedup(passing_real, ascend_two_chips, tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("summary", Path(__file__).parents[2] / "bench" / "summary.py")
    summary = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summary)
    md = render_markdown(passing_real)
    speedups = [line for line in md.splitlines() if re.search(r"\| \d+\.\d\d× \|", line)]
    assert len(speedups) == 3  # at a glance, and the offline and torch_fp32 rows of the performance table
    assert all("| torch 188 / ORT 168 |" in line for line in speedups)
    card = re.search(r'<div class="speed">(.*?)</div>', render_html(passing_real)).group(1)
    assert "→ 2.00× (matmul GFLOP/s torch 188 / ORT 168)" in card
    table = summary.summary(passing_real).splitlines()
    (row,) = [line for line in table if "| 2.00x |" in line]
    assert "| 2.00x | 100 (matmul 188 / 168) |" in row and row.count("|") == 10
    # records without the ceilings (ais_bench jobs, older records) say so instead of leaving them out
    ascend = [line for line in render_markdown(ascend_two_chips).splitlines() if "×" in line and "| ascend/" in line]
    assert ascend and all("| n/a |" in line for line in ascend)


def test_accuracy_versus_speed_has_one_point_per_benchmarked_target_and_the_gate(tmp_path, monkeypatch):
    specs = [write_target(tmp_path / p, "cpu", 0.99999, batch_sizes=(1, 2), precision=p, fps=fps, torch_cos=cos)
             for p, fps, cos in (("fp32", 4.0, 0.99999), ("int8", 11.0, 0.9995), ("fp16", 5.0, 0.999))]
    specs.append({**write_target(tmp_path / "text", "cpu", 0.99999, tower="text"), "benchmarks": []})
    r = build_report([write_checkpoint(tmp_path)], [], load_targets(specs), CONFIG)
    points = {t["name"]: (p["batch_size"], p["throughput_fps"], y) for t, p, y, _ in plots.speed_points(r)}
    assert set(points) == {"onnxruntime/cpu fp32", "onnxruntime/cpu int8", "onnxruntime/cpu fp16"}
    assert points["onnxruntime/cpu int8"][:2] == (2, 22.0) and points["onnxruntime/cpu int8"][2] == pytest.approx(5e-4)
    drawn = []
    real = plots.plt.subplots
    monkeypatch.setattr(plots.plt, "subplots", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    plots.accuracy_vs_speed(r, tmp_path / "avs.png")
    ax = drawn[-1][1]
    xy = sorted(tuple(o) for c in ax.collections for o in c.get_offsets()
                if len(c.get_offsets()) == 1 and not c.get_label().startswith("deployment"))  # not the star
    expected = sorted((x, y) for _, x, y in points.values())
    assert len(xy) == 3 and all(a == pytest.approx(b) for a, b in zip(xy, expected))
    (star,) = [c for c in ax.collections if c.get_label().startswith("deployment")]
    fastest = next(d for d in r["deployments"] if d["tower"] == "image")
    assert tuple(star.get_offsets()[0]) == pytest.approx((fastest["throughput_fps"], points["onnxruntime/cpu int8"][2]))
    assert any(line.get_ydata()[0] == pytest.approx(1 - 0.99) for line in ax.lines), "the gate line"
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert {t.get_text().split("\n")[0] for t in ax.texts} >= set(points)
    page, md = write_all(r, tmp_path / "out")
    assert 'id="fig-accuracy_vs_speed"' in _top(page) and "](report/accuracy_vs_speed.png)" in md


def test_views_stay_readable_at_a_thousand_images(tmp_path):
    from PIL import Image

    stems = [f"img{i:04d}" for i in range(1000)]
    spec = write_target(tmp_path / "cpu", "cpu", 0.99999, stems=stems)
    (t,) = load_targets([spec])
    offline = next(p for p in t["accuracy"]["pairs"] if (p["a"], p["b"]) == ("offline", "torch_fp32"))
    offline["per_image"].update({"img0777": 0.995, "img0123": 0.998})  # the two worst, in that order
    r = build_report([write_checkpoint(tmp_path)], [], [t], CONFIG)
    page, md = write_all(r, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "r.json").read_text())
    assert all(len(p["per_image"]) == 1000 for p in saved["targets"][0]["accuracy"]["pairs"])
    image_rows = [line for line in md.splitlines() if line.startswith("| img")]
    assert len(image_rows) == WORST_N
    assert image_rows[0].startswith("| img0777 |") and image_rows[1].startswith("| img0123 |")
    assert f"The {WORST_N} worst of 1000 images" in md and "| offline vs torch_fp32 | 1000 | 0.99500000 |" in md
    worst = re.search(r"<details><summary>(.*?)</summary>(.*?)</details>", page)
    assert worst.group(1) == f"The {WORST_N} worst of 1000 images (cosine)"
    assert worst.group(2).count("<td>img") == WORST_N
    assert "img0500" not in page and "img0500" not in md
    with Image.open(tmp_path / "out" / "report" / "per_image.png") as png:
        assert png.height < 1200, "one row per target, not a row per image"


def test_ranking_gates_are_shown_apart_from_the_cosine_gate_of_the_same_pair(tmp_path):
    """similarity.json's ranking gates (kind "ranking") share (a, b) with a cosine gate: each keeps its
    own threshold in every view, and a missed one fails the verdict."""
    from reporting import failed_gates

    spec = write_target(tmp_path / "cpu", "cpu", 0.99999)
    sim = json.loads(open(spec["similarity"]).read())
    sim["gates"] += [{"a": "offline", "b": "torch_fp32", "kind": "ranking", "measure": m, "threshold": th,
                      "value": v, "passed": v >= th, "worst_image": "dog"}
                     for m, th, v in (("image_to_image_spearman_min", 0.9, 0.5), ("image_to_image_top1_agreement",
                                                                                  1.0, 1.0))]
    sim["ranking"] = {"stages": {"offline": {"image_to_image": {"spearman_min": 0.5, "top1_agreement": 1.0,
                                                                "mean_pairwise_cosine": 0.99,
                                                                "mean_pairwise_cosine_reference": 0.2}}}}
    write_json(spec["similarity"], sim)
    r = build_report([write_checkpoint(tmp_path)], [], load_targets([spec]), CONFIG)
    assert (r["verdict"], r["gates_passed"], r["gates_total"]) == ("FAIL", 5, 6)
    (line,) = failed_gates(r)
    assert "offline vs torch_fp32 image_to_image_spearman_min 0.5 below 0.9" in line
    page, md = write_all(r, tmp_path / "out")
    rows = _md_gate_table(md)
    assert [(row["measure"], row["threshold"], row["result"]) for row in rows if row["b"] == "torch_fp32"
            and row["a"] == "offline"] == [("cosine min", "0.99", "PASS"),
                                            ("image_to_image_spearman_min", "0.9", "**FAIL**"),
                                            ("image_to_image_top1_agreement", "1.0", "PASS")]
    assert "| offline | image-to-image | 0.5000 | 100% | 0.9900 (0.2000) |" in md
    assert "image_to_image_spearman_min 0.5000 below 0.9" in re.search(r'<div class="banner fail">(.*?)</div>',
                                                                         page).group(1)
    with open(tmp_path / "out" / "report" / "accuracy.csv", newline="") as f:
        thresholds = {(row["a"], row["b"]): row["gate_threshold"] for row in csv.DictReader(f)}
    assert thresholds[("offline", "torch_fp32")] == "0.99"


def test_every_backend_tool_record_is_a_row_of_the_environment(passing_real):
    """Whatever keys a backend reports (the Ascend ones: npu-smi, CANN, ais_bench, aclruntime, ...)."""
    tools = {"npu_smi": "23.0.rc3", "cann": "8.0.RC1", "aclruntime": "absent: no aclruntime distribution in python3",
             "a_new_tool": {"version": "1.2", "path": "/opt/x"}}
    passing_real["environment"]["backend_tools"] = tools
    md, page = render_markdown(passing_real), render_html(passing_real)
    for key, shown in (("npu_smi", "23.0.rc3"), ("cann", "8.0.RC1"),
                       ("aclruntime", "absent: no aclruntime distribution in python3"),
                       ("a_new_tool", "{version: 1.2, path: /opt/x}")):
        assert f"| {key} (backend tool) | `{shown}` |" in md
        assert f'<td>{key} (backend tool)</td><td><span class="mono">{html.escape(shown)}</span></td>' in page
    assert "cann 8.0.RC1" in _top(page) and "aclruntime absent" not in page


def test_a_located_and_repaired_target_shows_both_sections_and_stays_self_contained(tmp_path):
    """Real locate and repair records of a small overflowing model (test_repair's, on the Ascend proxy),
    beside a target that has neither: report.json gains `locate` and `repair` for the first only, every
    existing key stays; Markdown links the CSV and chart, the HTML page embeds the chart and links nothing
    outside."""
    import backends
    from accuracy import locate as L
    from accuracy import repair as R
    from test_repair import OPTIONS, block_name, case

    folder = tmp_path / "fp16"
    spec = write_target(folder, "cpu", offline_cos=0.5, precision="fp16")
    plan = backends.get("ascend")
    (tmp_path / "work").mkdir()
    fp32, npy, ref = case(tmp_path / "work", overflow=1)
    rows, summary = L.localise(plan, fp32, "fp16", npy, ref, 0.99, OPTIONS, tmp_path / "scratch")
    L.write_outputs(rows, summary, folder / "locate" / "locate.csv", folder / "locate" / "locate.png",
                    folder / "locate" / "locate.json")
    record = R.repair(plan, fp32, "fp16", npy, ref, 0.99, OPTIONS, summary, folder / "repair" / "model")
    plan.write_kept(folder / "repair" / "kept_fp32.txt", record["kept"])
    write_json(folder / "repair" / "repair.json", {**record, "kept_file": str(folder / "repair" / "kept_fp32.txt")})
    spec.update(locate=str(folder / "locate" / "locate.json"), repair=str(folder / "repair" / "repair.json"))
    plain = write_target(tmp_path / "fp32", "cpu", offline_cos=0.99999)
    plain.update(locate=str(tmp_path / "fp32" / "locate" / "locate.json"), repair=str(tmp_path / "fp32" / "nope.json"))
    r = build_report([write_checkpoint(tmp_path)], [], load_targets([spec, plain]), CONFIG)
    page, md = write_all(r, tmp_path)
    saved = json.loads((tmp_path / "r.json").read_text())
    located, other = saved["targets"]
    assert "locate" not in other and "repair" not in other
    assert {"backend", "device", "dir", "artifacts", "accuracy", "performance"} <= set(located)
    loc = located["locate"]
    assert loc["top_cause"]["unit"] == "resblocks.1" and loc["causes"]["units"][0]["unit"] == "resblocks.1"
    assert loc["first_jump"]["node"] == block_name(1, "fc1/MatMul") and loc["overflow"]
    assert loc["csv"].endswith("locate/locate.csv") and loc["chart"].endswith("locate/locate.png")
    rep = located["repair"]
    assert rep["before"]["cosine_min"] is None or rep["before"]["cosine_min"] < 0.99
    assert rep["after"]["cosine_min"] > 0.999 and rep["repaired"] and rep["kept_units"] == ["resblocks.1"]
    assert rep["kept"] and all("resblocks.1/" in n for n in rep["kept"]) and rep["grown"] == 1 and rep["shrunk"] > 0
    assert rep["kept_file"].endswith("kept_fp32.txt")
    # Markdown: both sections, the measured cause and the first jump, links relative to the report's folder
    assert "### Where accuracy is lost (locate)" in md and "### Repair (nodes kept in fp32)" in md
    assert "resblocks.1 inf/NaN" in md and block_name(1, "fc1/MatMul") in md
    assert "(<fp16/locate/locate.csv>)" in md and "(<fp16/locate/locate.png>)" in md
    assert "fp16/repair/kept_fp32.txt" in md and "ms unrepaired" in md
    assert md.count("### Where accuracy is lost") == 1
    # HTML: the same facts, the chart embedded, nothing fetched or linked outside the page
    assert "where accuracy is lost (locate)" in page and "repair (nodes kept in fp32)" in page
    parsed = Page(page)
    assert all(v.startswith("#") for tag, attrs in parsed.tags for k, v in attrs.items() if k == "href")
    images = [attrs["src"] for tag, attrs in parsed.tags if tag == "img"]
    assert len(images) == len(PLOT_NAMES) + 1 and all(src.startswith("data:image/png;base64,") for src in images)


def test_only_the_locate_records_the_rule_was_given_are_shown(tmp_path):
    """A locate.json left by an earlier failing run (or an on-demand one) is not this run's: the report
    shows the records of its `located` input only."""
    import report

    spec = write_target(tmp_path / "cpu", "cpu", 0.99999)
    record = tmp_path / "cpu" / "locate" / "locate.json"
    write_json(record, {"tensors_compared": 3, "first_jump": None, "op_types": [], "overflow_nodes": []})
    spec.update(locate=str(record), repair=str(tmp_path / "cpu" / "repair" / "repair.json"))
    for given, shown in (([], False), ([str(record)], True)):
        job = rule_job(tmp_path, [spec])
        job.input.located = given
        report.main(job)
        saved = json.loads(open(job.output.json).read())
        assert ("locate" in saved["targets"][0]) is shown
        assert ("Where accuracy is lost" in open(job.output.md).read()) is shown


# ---- 95 % intervals on every speed figure (issue 26 item 3) -------------------------------------------

def _runs(ms, spread, n=40):
    """Per-run seconds around `ms` milliseconds, spread ± `spread` ms, deterministic."""
    return [(ms + spread * ((7 * i) % 5 - 2) / 2) / 1000 for i in range(n)]


def write_timed(spec, offline_ms, spread=1.0, torch_ms=500.0):
    """Rewrite a target's benchmark records as scripts/benchmark.py writes them now: per-run seconds and
    the intervals of the offline model's and the baseline's runs, and the speed-up's."""
    from timing import latency_stats, ratio_ci, within_noise

    for path in spec["benchmarks"]:
        record = json.loads(open(path).read())
        bs = record["batch_size"]
        offline, base = _runs(offline_ms, spread), _runs(torch_ms, 5.0, n=20)
        ci = ratio_ci(offline, bs, base, bs)
        record.update(latency_stats(offline, bs), seconds=offline, loop=len(offline), loop_max=100, stopped_early=True,
                      ci_width=0.05, speedup_vs_torch_fp32_ci95=ci, speedup_vs_torch_fp32_within_noise=within_noise(ci))
        record["baseline_torch_fp32"] = {**record["baseline_torch_fp32"], **latency_stats(base, bs), "seconds": base,
                                         "loop": 20, "loop_max": 20, "stopped_early": False}
        record["speedup_vs_torch_fp32"] = record["throughput_fps"] / record["baseline_torch_fp32"]["throughput_fps"]
        write_json(path, record)
    return spec


@pytest.fixture
def timed(tmp_path):
    """fp32, int8 (clearly faster than fp32) and fp16 (as fast as fp32, within noise) on one CPU, and one
    target whose records predate the intervals."""
    specs = [write_timed(write_target(tmp_path / "fp32", "cpu", 0.99999, precision="fp32"), 250.0, spread=5.0),
             write_timed(write_target(tmp_path / "int8", "cpu", 0.99999, precision="int8"), 100.0),
             write_timed(write_target(tmp_path / "fp16", "cpu", 0.99999, precision="fp16"), 250.2, spread=20.0),
             write_target(tmp_path / "old", "Ascend910B4", 0.99999, ascend=True)]
    return build_report([write_checkpoint(tmp_path)], [], load_targets(specs), CONFIG)


def test_report_json_carries_every_speed_interval(timed, tmp_path):
    write_all(timed, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "r.json").read_text())
    fp32, int8, fp16, old = saved["targets"]
    p = fp32["performance"][0]
    lo, hi = p["throughput_fps_ci95"]
    assert lo < p["throughput_fps"] < hi
    assert set(p["latency_ms_ci95"]) == {"mean", "p50", "p90", "p99"} and len(p["seconds"]) == p["loop"] == 40
    assert (p["loop_max"], p["stopped_early"]) == (100, True)
    lo, hi = p["speedup_vs_torch_fp32_ci95"]
    assert lo < p["speedup_vs_torch_fp32"] < hi and p["speedup_vs_torch_fp32_within_noise"] is False
    # the contract's key is in every performance entry, null where the record has no per-run times
    assert old["performance"][0]["throughput_fps_ci95"] is None
    assert old["performance"][0]["speedup_vs_torch_fp32_ci95"] is None
    base = saved["baseline"]["torch_fp32"]
    assert len(base) == 4 and all("throughput_fps_ci95" in b for b in base)
    assert base[0]["throughput_fps_ci95"][0] < base[0]["throughput_fps"] < base[0]["throughput_fps_ci95"][1]
    # precision against fp32 of the same arch, tower, backend and device
    q = int8["performance"][0]
    assert q["speedup_vs_fp32"] == pytest.approx(2.5, rel=1e-3) and q["speedup_vs_fp32_within_noise"] is False
    assert q["speedup_vs_fp32_ci95"][0] > 2.3 and q["speedup_vs_fp32_of"] == fp32["name"]
    r = fp16["performance"][0]
    assert r["speedup_vs_fp32_ci95"][0] < 1.0 < r["speedup_vs_fp32_ci95"][1] and r["speedup_vs_fp32_within_noise"]
    assert "speedup_vs_fp32" not in p and "speedup_vs_fp32" not in old["performance"][0]


def test_an_interval_gains_decimals_until_its_bounds_differ():
    from reporting.rows import interval, ratio

    assert interval(4.0, [3.998, 4.002], ".2f") == "4.000 [3.998, 4.002]"
    assert interval(4.0, [3.9, 4.1], ".2f") == "4.00 [3.90, 4.10]"
    assert interval(101.0, [101.0, 101.0], ".1f") == "101.000 [101.000, 101.000]"
    assert interval(4.0, None, ".2f") == "4.00" and interval(None, [1, 2], ".2f") == "n/a"
    assert ratio(1.01, [0.97, 1.05], True) == "1.01× [0.97, 1.05] within noise"


def test_the_views_print_each_interval_and_mark_a_speedup_within_noise(timed, tmp_path):
    page, md = write_all(timed, tmp_path / "out")
    glance = md.split("## At a glance")[1].split("## Model")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in glance.splitlines() if line.startswith("| onnx")}
    p = timed["targets"][0]["performance"][0]
    lo, hi = p["throughput_fps_ci95"]
    assert f"{p['throughput_fps']:.2f} [{lo:.2f}, {hi:.2f}]" in rows["onnxruntime/cpu fp32"]
    s_lo, s_hi = p["speedup_vs_torch_fp32_ci95"]
    assert f"{p['speedup_vs_torch_fp32']:.2f}× [{s_lo:.2f}, {s_hi:.2f}]" in rows["onnxruntime/cpu fp32"]
    assert "within noise" not in rows["onnxruntime/cpu fp32"] and "within noise" not in rows["onnxruntime/cpu int8"]
    assert "2.50× [" in rows["onnxruntime/cpu int8"]
    assert "within noise" in rows["onnxruntime/cpu fp16"]
    assert "95 %" in glance and "within noise" in glance.split("|")[0]
    perf = md.split("## Target onnxruntime/cpu fp32")[1].split("## Target")[0]
    assert "| offline | 1 | 40 of 100 (interval reached) |" in perf
    assert f"{p['latency_ms']['p50']:.1f} [{p['latency_ms_ci95']['p50'][0]:.1f}, " in perf
    assert "within noise" in html.unescape(page) and f"[{s_lo:.2f}, {s_hi:.2f}]" in page
    card = re.findall(r'<div class="speed">(.*?)</div>', page)
    assert f"→ {p['speedup_vs_torch_fp32']:.2f}× [{s_lo:.2f}, {s_hi:.2f}]" in card[0] and "within noise" in card[2]
    # a record with no per-run times shows its figure alone, never an invented interval
    old = md.split("## Target ascend/Ascend910B4")[1].split("### Performance")[1].split("###")[0]
    assert "[" not in old.split("\n\n")[1]
    with open(tmp_path / "out" / "report" / "performance.csv", newline="") as f:
        csv_rows = [row for row in csv.DictReader(f) if row["model"] == "offline"]
    assert float(csv_rows[0]["throughput_fps_ci95_lo"]) == pytest.approx(lo)
    assert [row["speedup_vs_torch_fp32_within_noise"] for row in csv_rows] == ["False", "False", "False", ""]
    assert [row["speedup_vs_fp32_within_noise"] for row in csv_rows] == ["", "False", "True", ""]


# ---- the deployment the run chooses (issue 25 item 5) ---------------------------------------------

def _candidate(tmp_path, name, hardware, backend, precision, fps, passed, repaired_ratio=None):
    """A target spec on `hardware` with one benchmark at `fps` whose gates pass or not; repaired_ratio: a
    passing repair whose repaired model runs at that latency ratio to the unrepaired one."""
    spec = write_target(tmp_path / name, hardware, offline_cos=0.99999 if passed else 0.9, precision=precision)
    spec["backend"] = backend
    for path in spec["benchmarks"]:
        record = json.loads(open(path).read())
        record["throughput_fps"] = fps
        write_json(path, record)
    if repaired_ratio:
        write_json(tmp_path / name / "repair.json", {
            "precision": precision, "gate": 0.99, "passed": True, "repaired": True, "kept": ["n1", "n2"],
            "kept_units": ["resblocks.1"], "steps": [{"phase": "grow"}, {"phase": "shrink"}],
            "before": {"cosine_min": 0.9, "nonfinite": 0, "passed": False},
            "after": {"cosine_min": 0.995, "nonfinite": 0, "passed": True}, "model": "m.onnx",
            "speed": {"repaired_vs_unrepaired": repaired_ratio, "repaired_vs_fp32": 0.7,
                      "latency_ms_p50": {"repaired": 1.0, "unrepaired": 1.0, "fp32": 1.4}}})
        spec["repair"] = str(tmp_path / name / "repair.json")
    return spec


def test_the_fastest_target_that_meets_every_gate_is_the_deployment_per_hardware(tmp_path):
    """CPU: ORT fp32 (passes, 100/s), OpenVINO int8 (misses, 300/s, not repaired), ORT int8 (misses, 250/s,
    repaired at 1.25x its latency: 200/s) -> the repaired ORT int8. A chip where nothing passes names the
    closest. `precisions: auto` passes when every hardware has a deployment."""
    specs = [_candidate(tmp_path, "a", "cpu", "onnxruntime", "fp32", 100.0, True),
             _candidate(tmp_path, "b", "cpu", "openvino", "int8", 300.0, False),
             _candidate(tmp_path, "c", "cpu", "onnxruntime", "int8", 250.0, False, repaired_ratio=1.25),
             _candidate(tmp_path, "d", "Ascend910B4", "ascend", "fp16", 900.0, False)]
    r = build_report([write_checkpoint(tmp_path)], [], load_targets(specs), {**CONFIG, "precisions": "auto"})
    (cpu,) = r["deployments"]
    assert (cpu["hardware"], cpu["backend"], cpu["precision"], cpu["repaired"]) == ("cpu", "onnxruntime", "int8", True)
    assert cpu["throughput_fps"] == pytest.approx(200.0) and cpu["dir"] == specs[2]["dir"]
    assert set(cpu) >= {"arch", "tower", "hardware", "backend", "device", "dir", "precision", "repaired",
                        "throughput_fps", "reason"}
    (chip,) = r["undeployed"]
    assert chip["hardware"] == "Ascend910B4" and "no target meets every gate" in chip["reason"]
    assert r["verdict"] == "FAIL" and failed_gates(r) == [f"ViT-B-16 image on Ascend910B4: {chip['reason']}"]
    page, md = write_all(r, tmp_path)
    assert "## Deployment" in md and "onnxruntime int8 (repaired)" in md and "Deployment</h2>" in page
    fine = build_report([write_checkpoint(tmp_path)], [], load_targets(specs[:3]), {**CONFIG, "precisions": "auto"})
    assert fine["verdict"] == "PASS" and not fine["undeployed"]


def test_the_deployment_weighs_cube_fp16in_fp32out_like_any_other_target(tmp_path):
    """Issue 33: on a chip, `precisions: auto` builds fp32, fp16 and cube_fp16in_fp32out; the chooser takes the
    fastest that passes: cube_fp16in_fp32out (250/s) over fp32 (100/s) while fp16 (400/s) misses; where it misses
    too, its repaired model (at 1.25x its latency: 200/s) still beats fp32, and a fp16 repaired faster wins."""
    cube = "cube_fp16in_fp32out"
    fp32 = _candidate(tmp_path, "a", "Ascend910B4", "ascend", "fp32", 100.0, True)
    fp16 = _candidate(tmp_path, "b", "Ascend910B4", "ascend", "fp16", 400.0, False)
    specs = [fp32, fp16, _candidate(tmp_path, "c", "Ascend910B4", "ascend", cube, 250.0, True)]
    r = build_report([write_checkpoint(tmp_path)], [], load_targets(specs), {**CONFIG, "precisions": "auto"})
    (chip,) = r["deployments"]
    assert (chip["device"], chip["backend"], chip["precision"], chip["repaired"]) == ("Ascend910B4", "ascend", cube, False)
    assert chip["throughput_fps"] == pytest.approx(250.0) and "the fastest of 2 candidate(s)" in chip["reason"]
    assert r["verdict"] == "PASS" and not r["undeployed"]
    _, md = write_all(r, tmp_path)
    assert f"ascend {cube}" in md.split("## Deployment")[1]
    repaired = _candidate(tmp_path, "d", "Ascend910B4", "ascend", cube, 250.0, False, repaired_ratio=1.25)
    (chip,) = build_report([write_checkpoint(tmp_path)], [], load_targets([fp32, fp16, repaired]),
                           {**CONFIG, "precisions": "auto"})["deployments"]
    assert (chip["precision"], chip["repaired"], chip["throughput_fps"]) == (cube, True, pytest.approx(200.0))
    fp16_repaired = _candidate(tmp_path, "e", "Ascend910B4", "ascend", "fp16", 400.0, False, repaired_ratio=1.25)
    (chip,) = build_report([write_checkpoint(tmp_path)], [], load_targets([fp32, fp16_repaired, repaired]),
                           {**CONFIG, "precisions": "auto"})["deployments"]
    assert (chip["precision"], chip["repaired"], chip["throughput_fps"]) == ("fp16", True, pytest.approx(320.0))
