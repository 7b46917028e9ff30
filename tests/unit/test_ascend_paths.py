"""Issue 12: the Ascend path passes the real ais_bench's path and permission rules, whatever the user's
names, checkout path and umask. The stand-in ais_bench (tests/standins/ais_bench, rules in security.py)
enforces those rules in both behaviours: December 2025 (default) and mid-2024 (STANDIN_AIS_BENCH_VERSION=2024)."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from backends import ascend
from conftest import REPO, STANDINS, image_spec

VENV_BIN = str(Path(sys.executable).parent)
OPTIONS = {"threads": 1, "device": "Ascend910B4", "atc": {}, "ais_bench_python": "python3", "device_id": 0}
# what users name their images and labels, and where they check the repository out
USER_STEMS = ["猫", "a photo", "x;$(touch pwned)&'q\"", "café-1"]
CHECKOUT = "my work+dev@2026/clip repo"


@pytest.fixture
def standins(monkeypatch, tmp_path):
    log = tmp_path / "standin.jsonl"
    monkeypatch.setenv("PATH", os.pathsep.join([VENV_BIN, str(STANDINS), os.environ.get("PATH", "")]))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("STANDIN_LOG", str(log))
    for var in ("STANDIN_ATC_FAIL", "STANDIN_ATC_SLEEP", "STANDIN_AIS_BENCH_FAIL", "STANDIN_AIS_BENCH_VERSION"):
        monkeypatch.delenv(var, raising=False)

    def calls(tool=None):
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [r for r in records if tool is None or r["tool"] == tool]

    return calls


@pytest.fixture
def umask():
    """Set the process umask (inherited by the tools) for one test; restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(value):
        os.umask(value)

    yield set_umask
    os.umask(old)


def user_inputs(tiny_onnx, root: Path) -> list[Path]:
    """The tiny model's inputs, renamed after USER_STEMS, in a folder under `root`."""
    folder = root / "results" / "npy"
    folder.mkdir(parents=True)
    files = []
    for stem, src in zip(USER_STEMS, tiny_onnx["npy"] + tiny_onnx["npy"][:1]):
        dst = folder / f"{stem}.npy"
        dst.write_bytes(Path(src).read_bytes())
        files.append(dst)
    return files


def reference(model, npy):
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": np.load(npy)})[0]


# ---------------------------------------------------------------------------------------------
# the workflow's infer/benchmark pass the rules (these fail with the code before issue 12)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["2025", "2024"])
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_infer_and_benchmark_pass_ais_bench_rules_for_any_names_checkout_and_umask(
        tiny_onnx, tmp_path, standins, umask, monkeypatch, mask, version):
    monkeypatch.setenv("STANDIN_AIS_BENCH_VERSION", version)
    umask(mask)
    root = tmp_path / CHECKOUT
    inputs = user_inputs(tiny_onnx, root)
    target = root / "results" / "ascend" / "Ascend910B4"
    om = ascend.compile(tiny_onnx["fp16"], target / "model_bs1", 1, 16, OPTIONS)[0]
    dst = target / "dst"
    ascend.infer(om, inputs, dst, OPTIONS)
    assert sorted(p.name for p in dst.iterdir()) == sorted(f"{s}_0.npy" for s in USER_STEMS), "the user's own stems"
    for stem, npy in zip(USER_STEMS, inputs):
        np.testing.assert_allclose(np.load(dst / f"{stem}_0.npy"), reference(tiny_onnx["fp16"], npy),
                                   rtol=1e-3, atol=1e-3)
    names = json.loads((target / "dst_names.json").read_text())
    assert {v["stem"] for v in names["inputs"].values()} == set(USER_STEMS)
    assert all(k.isascii() and k.startswith("in_") for k in names["inputs"])
    assert (target / "dst_summary.json").is_file()
    result = ascend.benchmark(om, inputs, 1, 3, 1, OPTIONS)
    assert result["throughput_fps"] > 0 and result["latency_ms"]["p90"] is not None
    # ais_bench only ever saw safe paths, and nothing of ours was left behind
    for call in standins("ais_bench"):
        for arg in call["argv"]:
            assert arg.isascii() and " " not in arg, arg
        assert "ais_bench" in Path(call["cwd"]).name and not Path(call["cwd"]).exists()
    assert not list(target.glob(".ais_bench-*")), "no scratch beside the results"
    assert not (tmp_path / "pwned").exists()


def test_the_model_given_to_ais_bench_is_never_the_users_group_writable_file(tiny_onnx, tmp_path, standins, umask):
    """A .om made under umask 002 (0664) is not loosened further nor refused: ais_bench gets a private copy or
    a hard link whose mode was tightened (the workflow's own file, group write dropped)."""
    umask(0o002)
    om = Path(ascend.compile(tiny_onnx["fp16"], tmp_path / "t" / "model_bs1", 1, 16, OPTIONS)[0])
    assert not stat.S_IMODE(om.stat().st_mode) & 0o022, "compile() leaves its .om without group/other write"
    om.chmod(0o666)  # as an older run (or a user) may have left it
    ascend.infer(om, tiny_onnx["npy"], tmp_path / "t" / "dst", OPTIONS)
    assert len(list((tmp_path / "t" / "dst").glob("*_0.npy"))) == 3


def test_shards_of_one_target_keep_each_others_outputs_and_records(tiny_onnx, tmp_path, standins):
    """A sharded run's infer jobs write one target's dst/ in turn: each shard names its own ais_bench records
    (options["record"], as scripts/infer.py passes params.record) and leaves the other shard's outputs."""
    om = ascend.compile(tiny_onnx["fp16"], tmp_path / "t" / "model_bs1", 1, 16, OPTIONS)[0]
    dst = tmp_path / "t" / "dst"
    first, second = tiny_onnx["npy"][:2], tiny_onnx["npy"][2:]
    ascend.infer(om, first, dst, {**OPTIONS, "record": "dst_shard1of2"})
    ascend.infer(om, second, dst, {**OPTIONS, "record": "dst_shard2of2"})
    assert sorted(p.name for p in dst.iterdir()) == sorted(f"{Path(f).stem}_0.npy" for f in tiny_onnx["npy"])
    for record, files in (("dst_shard1of2", first), ("dst_shard2of2", second)):
        names = json.loads((tmp_path / "t" / f"{record}_names.json").read_text())
        assert sorted(v["source"] for v in names["inputs"].values()) == sorted(str(Path(f).resolve()) for f in files)
        assert (tmp_path / "t" / f"{record}_summary.json").is_file()
    assert not (tmp_path / "t" / "dst_names.json").exists()


# ---------------------------------------------------------------------------------------------
# the stand-in enforces the rules (so the tests above can fail)
# ---------------------------------------------------------------------------------------------

def run_ais_bench(args, cwd, version="2025"):
    env = {**os.environ, "PATH": os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")]),
           "PYTHONPATH": str(STANDINS), "STANDIN_AIS_BENCH_VERSION": version}
    env.pop("STANDIN_LOG", None)
    return subprocess.run([sys.executable, "-m", "ais_bench", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)


@pytest.fixture
def safe_om(tiny_onnx, tmp_path, standins):
    om = Path(ascend.compile(tiny_onnx["fp16"], tmp_path / "m", 1, 16, OPTIONS)[0])
    om.chmod(0o640)
    inputs = tmp_path / "in"
    inputs.mkdir(mode=0o700)
    inputs.chmod(0o700)
    for i, src in enumerate(tiny_onnx["npy"]):
        (inputs / f"in_{i}.npy").write_bytes(Path(src).read_bytes())
        (inputs / f"in_{i}.npy").chmod(0o600)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o750)
    return {"om": om, "input": inputs, "output": out, "cwd": tmp_path}


def test_standin_accepts_safe_paths_and_writes_0640_files_in_0750_folders(safe_om):
    r = run_ais_bench(["--model", safe_om["om"], "--input", safe_om["input"], "--output", safe_om["output"],
                       "--output_dirname", "dst", "--outfmt", "NPY"], safe_om["cwd"])
    assert r.returncode == 0, r.stdout + r.stderr
    dst = safe_om["output"] / "dst"
    assert stat.S_IMODE(dst.stat().st_mode) & 0o027 == 0
    assert sorted(p.name for p in dst.iterdir()) == ["in_0_0.npy", "in_1_0.npy", "in_2_0.npy"]
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o137 == 0 for p in dst.iterdir()), "files 0640 at most"
    assert (safe_om["output"] / "dst_summary.json").is_file()


@pytest.mark.parametrize("version", ["2025", "2024"])
def test_standin_refuses_what_the_real_tool_refuses(safe_om, tmp_path, version):
    base = ["--model", safe_om["om"], "--input", safe_om["input"], "--output", safe_om["output"],
            "--output_dirname", "dst", "--outfmt", "NPY"]

    def refused(args, shown, cwd=safe_om["cwd"]):
        r = run_ais_bench(args, cwd, version)
        assert r.returncode != 0 and shown in r.stdout + r.stderr, (args, r.stdout + r.stderr)

    # a Chinese file name, a space, a '+', an '@' anywhere in a path
    for name in ("猫.npy", "a b.npy", "a+b.npy", "a@b.npy"):
        bad = tmp_path / "bad" / name
        bad.parent.mkdir(exist_ok=True)
        bad.write_bytes((safe_om["input"] / "in_0.npy").read_bytes())
        bad.chmod(0o600)
        refused([*base[:2], "--input", bad, *base[4:]], "illegal char")
    # a symbolic link as input or model
    link = tmp_path / "link.npy"
    link.symlink_to(safe_om["input"] / "in_0.npy")
    refused([*base[:2], "--input", link, *base[4:]], "soft link")
    # group-writable inputs and model
    (safe_om["input"] / "in_1.npy").chmod(0o660)
    refused(base, "group writable")
    (safe_om["input"] / "in_1.npy").chmod(0o600)
    safe_om["om"].chmod(0o660)
    refused(base, "group writable")
    safe_om["om"].chmod(0o640)
    # the bounds
    refused(["--model", safe_om["om"], "--loop", "100001"], "invalid loop size value")
    refused(["--model", safe_om["om"], "--loop", "0"], "invalid loop size value")
    refused(["--model", safe_om["om"], "--warmup_count", "10001"], "--warmup_count: 10001 is over 10000")
    refused(["--model", safe_om["om"], "--batchsize", "4097"], "--batchsize: 4097 is over 4096")
    # 33 levels deep
    deep = safe_om["cwd"].joinpath(*["d"] * 33)
    refused(["--model", safe_om["om"], "--output", deep], "path depth")


def test_output_folder_mode_2025_refuses_0755_where_2024_tightens_it(safe_om):
    args = ["--model", safe_om["om"], "--input", safe_om["input"], "--output", safe_om["output"],
            "--output_dirname", "dst", "--outfmt", "NPY"]
    safe_om["output"].chmod(0o755)  # made under umask 022
    r = run_ais_bench(args, safe_om["cwd"], "2025")
    assert r.returncode == 2 and f"output path:{safe_om['output']} is illegal" in r.stderr
    r = run_ais_bench(args, safe_om["cwd"], "2024")
    assert r.returncode == 0, r.stdout + r.stderr
    assert stat.S_IMODE(safe_om["output"].stat().st_mode) == 0o750
    safe_om["output"].chmod(0o775)
    r = run_ais_bench(args, safe_om["cwd"], "2024")
    assert r.returncode == 0, "the 2024 copy chmods --output to 0750 itself"


# ---------------------------------------------------------------------------------------------
# what cannot be made safe stops the run, naming the path, the rule and the fix
# ---------------------------------------------------------------------------------------------

def test_an_unsafe_temporary_folder_is_named_with_the_rule_and_the_fix(tmp_path, monkeypatch):
    import tempfile

    bad = tmp_path / "tmp dir+猫"
    bad.mkdir()
    monkeypatch.setenv("TMPDIR", str(bad))
    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(ascend.scratch.UnsafePathError) as err:
        ascend.scratch.check_scratch()
    message = str(err.value)
    assert str(bad) in message and "A-Z a-z 0-9 _ - / ." in message and "TMPDIR" in message
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    ascend.scratch.check_scratch()


def test_ais_bench_bounds_are_checked_before_running_it():
    with pytest.raises(ValueError, match="loop.*100000"):
        ascend.commands.ais_bench_benchmark_command("m.om", 100001, 1, 0)
    with pytest.raises(ValueError, match="warmup.*10000"):
        ascend.commands.ais_bench_benchmark_command("m.om", 10, 1, 10001)
    with pytest.raises(ValueError, match="batch.*4096"):
        ascend.commands.ais_bench_benchmark_command("m.om", 10, 4097, 1)


# ---------------------------------------------------------------------------------------------
# config: ais_bench's bounds and ATC's documented option values, at parse time, naming the key
# ---------------------------------------------------------------------------------------------

def schema_errors(**config):
    import yaml

    from pipeline.config_check import config_errors

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    return config_errors(config, schema)


@pytest.mark.parametrize("config, key", [
    ({"loop": 100001}, "'loop'"),
    ({"loop": 0}, "'loop'"),
    ({"warmup": 10001}, "'warmup'"),
    ({"batch_sizes": [1, 4097]}, "'batch_sizes[1]'"),
    ({"atc": {"precision_mode": "fp8_please"}}, "'atc.precision_mode'"),
    ({"atc": {"precision_mode_v2": "force_fp16"}}, "'atc.precision_mode_v2'"),
    ({"atc": {"op_select_implmode": "fastest"}}, "'atc.op_select_implmode'"),
])
def test_schema_bounds_and_atc_values_name_the_key(config, key):
    errors = schema_errors(**config)
    assert errors and all(key in e for e in errors), errors


def test_schema_accepts_the_limits_and_every_documented_atc_value():
    assert schema_errors(loop=100000, warmup=10000, batch_sizes=[1, 4096]) == []
    for mode in ("high_precision", "high_performance", "high_precision_for_all", "high_performance_for_all"):
        assert schema_errors(atc={"op_select_implmode": mode}) == [], mode
    for precision in ascend.PRECISIONS:
        assert schema_errors(precision=precision) == [], precision


# --precision_mode values CANN's ATC documentation lists (CANN 8.5, atlasatcparam_16_0067)
ATC_PRECISION_MODES = ("force_fp16", "force_fp32", "cube_fp16in_fp32out", "allow_fp32_to_fp16", "must_keep_origin_dtype",
                       "allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16")


def test_each_ascend_precision_is_one_documented_precision_mode_on_its_source_onnx():
    """The precision coordinate is what the target computes in; ATC's --precision_mode is its explicit
    mapping in the Ascend plan: fp16 (the seed's) passes none on the fp16 ONNX, the rest a documented
    value on the fp32 ONNX."""
    config = {"atc": {"op_select_implmode": "high_precision", "optypelist_for_implmode": ""},
              "ais_bench_python": "python3", "npu_device": 1, "locate_npu_dump": False}
    assert ascend.PRECISION_MODE["fp16"] is None and ascend.PRECISIONS["fp16"] == "fp16"
    assert "precision_mode" not in ascend.options(config, "fp16")["atc"]
    for precision, mode in ascend.PRECISION_MODE.items():
        if mode:
            assert mode in ATC_PRECISION_MODES and ascend.PRECISIONS[precision] == "fp32", precision
            assert ascend.options(config, precision)["atc"] == {"op_select_implmode": "high_precision",
                                                                "precision_mode": mode}
    assert ascend.options(config, "fp32")["device_id"] == 1


def test_precision_mode_and_v2_are_mutually_exclusive():
    with pytest.raises(ValueError, match="mutually exclusive"):
        ascend.commands.atc_command("m.onnx", "out/model", 1, "Ascend910B4", image_spec(224),
                           {"precision_mode": "force_fp16", "precision_mode_v2": "fp16"})
    cmd = ascend.commands.atc_command("m.onnx", "out/model", 1, "Ascend910B4", image_spec(224), {"precision_mode_v2": "origin"})
    assert "--precision_mode_v2=origin" in cmd and not any(a.startswith("--precision_mode=") for a in cmd)


# ---------------------------------------------------------------------------------------------
# what a support ticket needs: npu-smi, CANN, ais_bench, aclruntime; each absent one says why
# ---------------------------------------------------------------------------------------------

def test_versions_record_npu_smi_cann_ais_bench_and_aclruntime(standins, monkeypatch, tmp_path):
    home = tmp_path / "Ascend" / "ascend-toolkit" / "latest"
    (home / "aarch64-linux").mkdir(parents=True)
    (home / "aarch64-linux" / "ascend_toolkit_install.info").write_text("version=8.0.RC3\n")
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(home))
    v = ascend.versions({"ais_bench_python": "python3"})
    assert v["npu_smi"].startswith("23.0.6") and v["npu_chip"] == "910B4" and v["npu_driver"] == "23.0.6"
    assert v["npu_firmware"] == "7.1.0.5.220" and v["cann"] == "8.0.RC3"
    assert v["ais_bench"] == "0.0.2+standin" and v["aclruntime"].startswith("absent")
    assert all(isinstance(value, str) for value in v.values()), v


def test_versions_say_why_each_tool_is_absent(monkeypatch):
    monkeypatch.setenv("PATH", VENV_BIN)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    v = ascend.versions({"ais_bench_python": "python3"})
    assert v["npu_smi"].startswith("absent: npu-smi not on PATH") and v["npu_firmware"].startswith("absent")
    assert v["atc"].startswith("absent: atc not on PATH") and v["cann"].startswith("absent")
    assert v["ais_bench"].startswith("absent: ais_bench is not installed in python3")
    v = ascend.versions({"ais_bench_python": "python3.99-nowhere"})
    assert "python3.99-nowhere" in v["ais_bench"] and v["ais_bench"].startswith("absent")

