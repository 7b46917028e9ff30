import json

import pytest

from common import write_json
from report import build_report, render_html, render_markdown, target_entry, write_report


def latency(ms):
    return {"mean": ms, "p50": ms, "p90": ms, "p99": ms, "min": ms, "max": ms}


@pytest.fixture
def records(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"model")
    write_json(tmp_path / "ckpt.json", {"arch": "ViT-B-16", "checkpoint": "synthetic", "path": "c.pt", "bytes": 1,
                                        "checkpoint_sha256": "ab" * 32, "synthetic": True})
    write_json(tmp_path / "compile.json", {"model": str(model), "options": {},
                                           "artifacts": [{"path": str(model), "bytes": 5, "sha256": "cd" * 32,
                                                          "batch_size": 1}]})
    pair = {"a": "offline", "b": "onnx_fp16", "cosine_min": 0.5, "cosine_mean": 0.7, "max_abs_err": 1.0,
            "rel_err_max": 0.5, "per_image": {"cat <b>": 0.5}}
    write_json(tmp_path / "sim.json", {"pairs": [pair], "gates": [{"a": "offline", "b": "onnx_fp16", "threshold": 0.999,
                                                                  "passed": False, "cosine_min": 0.5,
                                                                  "worst_image": "cat <b>"}]})
    base = {"batch_size": 1, "loop": 3, "warmup": 1, "threads": 2, "throughput_fps": 2.0, "latency_ms": latency(500.0)}
    write_json(tmp_path / "bench.json", {**base, "throughput_fps": 4.0, "latency_ms": latency(250.0),
                                         "baseline_torch_fp32": base})
    return tmp_path


def test_report_json_contract_keys_and_fail_verdict(records):
    target = target_entry("onnxruntime", "cpu", [str(records / "compile.json")], str(records / "sim.json"),
                          [str(records / "bench.json")])
    r = build_report(str(records / "ckpt.json"), [], [target], {"loop": 3})
    assert r["verdict"] == "FAIL"
    assert set(r) >= {"model", "targets", "baseline", "environment"}
    assert set(r["model"]) >= {"arch", "checkpoint", "checkpoint_sha256", "synthetic"}
    t = r["targets"][0]
    assert set(t) >= {"backend", "device", "artifacts", "accuracy", "performance"}
    assert r["baseline"]["torch_fp32"][0]["throughput_fps"] == 2.0
    md = render_markdown(r)
    assert "Verdict: FAIL" in md and "**FAIL**" in md and "SYNTHETIC" in md
    page = render_html(r, md)
    assert "cat &lt;b&gt;" in page and "cat <b>" not in page
    assert 'class="verdict fail"' in page and "http" not in page.split("<body>")[1]
    write_report(r, str(records / "r.json"), str(records / "r.md"), str(records / "r.html"))
    assert json.loads((records / "r.json").read_text())["verdict"] == "FAIL"
