"""The text tower on backend ascend with the stand-in atc and ais_bench (tests/standins), in the
session's workflow copy; the copy's onnxruntime report is restored afterwards."""
from pathlib import Path

import numpy as np
import pytest

from conftest import E2E_ARCH, E2E_EMBED

pytestmark = pytest.mark.e2e

TEXT = {"towers": ["image", "text"]}


def test_text_tower_on_the_ascend_standins(e2e_workflow, tmp_path):
    """ATC compiles the text ONNX with ND token-id input, the stand-in ais_bench runs it on int64 files."""
    import json
    import os
    import sys

    from conftest import STANDINS, Workflow

    log = tmp_path / "calls.jsonl"
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), str(STANDINS), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")])),
           "STANDIN_LOG": str(log)}
    wf = Workflow(e2e_workflow.root, {**e2e_workflow.config, "backend": "ascend", **TEXT}, env=env)
    try:
        wf.run("report")
        r = wf.report()
        (target,) = [t for t in r["targets"] if t.get("tower", "image") == "image"]
        assert r["verdict"] == "PASS" and target["backend"] == "ascend"
        from pipeline import paths as P

        text_dir = wf.root / P.Target(E2E_ARCH, "text", "ascend", target["device"], target["precision"]).dir
        assert (text_dir / "model_bs1" / "model.om").is_file()
        assert np.load(text_dir / "dst" / "猫_0.npy").shape == (1, E2E_EMBED)
        atc = [json.loads(line)["argv"] for line in log.read_text().splitlines()
               if json.loads(line)["tool"] == "atc"]
        assert any("--input_format=ND" in argv and "--input_shape=text:1,52" in argv for argv in atc)
        assert all(g["passed"] for g in target["text"]["accuracy"]["gates"])
        z = target["zero_shot"]
        assert all(g["passed"] for g in z["gates"]) and z["stages"]["offline"]["top1_agreement"] == 1.0
    finally:
        e2e_workflow.run("report")
