"""The device choices after the seed (issue 33), without an NPU: one dynamic-batch .om (ATC's
--dynamic_batch_size, ais_bench's --dymBatch), a benchmark over several NPUs (ais_bench --device 0,1), the
end-to-end throughput beside the pure-inference one, and how the run's matrix, the rules' resources and the
report carry them. The command lines follow CANN's ATC documentation and ais_bench's own argument checks."""
import pytest

from backends import ascend
from backends.ascend import aipp
from backends.ascend import commands as C
from backends.base import TensorSpec, model_inputs
from conftest import image_spec
from pipeline import paths as P
from pipeline.config_check import with_defaults
from pipeline.matrix import Matrix
from pipeline.paths import ConfigError


# ---- ATC: one model over several batch sizes ----------------------------------------------------------------

def test_a_dynamic_batch_model_is_compiled_with_minus_one_on_the_batch_axis_and_its_gears():
    cmd = C.atc_command("/m/a.onnx", "/r/model_bsdyn/model", (8, 1, 4), "Ascend910B4", image_spec(224))
    assert "--input_shape=image:-1,3,224,224" in cmd
    assert cmd[-1] == "--dynamic_batch_size=1,4,8"  # sorted, after the seed's arguments
    assert cmd[:5] == C.atc_command("/m/a.onnx", "/r/model_bsdyn/model", 1, "Ascend910B4", image_spec(224))[:5]


@pytest.mark.parametrize("gears, match", [((4,), "2 to 100 batch sizes"), ((1, 1), "2 to 100 batch sizes"),
                                          (tuple(range(1, 102)), "2 to 100 batch sizes"),
                                          ((1, 2049), r"gears in \[1, 2048\]")])
def test_dynamic_gears_follow_the_atc_documentation(gears, match):
    with pytest.raises(ValueError, match=match):
        C.atc_command("a.onnx", "o/model", gears, "Ascend910B4", image_spec(224))
    assert C.dynamic_gears(range(1, 101)) == list(range(1, 101))


# ---- ais_bench: --dymBatch, several devices, the copies -------------------------------------------------------

def test_ais_bench_picks_the_batch_of_a_dynamic_model_with_dymbatch():
    infer = C.ais_bench_infer_command("m.om", "in", "out", "dst", 0, dym_batch=1)
    assert infer[-2:] == ["--dymBatch", "1"]
    assert "--dymBatch" not in C.ais_bench_infer_command("m.om", "in", "out", "dst", 0)
    bench = C.ais_bench_benchmark_command("m.om", 100, 8, 5, 0, dynamic=True)
    assert bench[bench.index("--dymBatch") + 1] == "8" and bench[bench.index("--batchsize") + 1] == "8"


def test_a_benchmark_over_several_npus_passes_them_as_ais_bench_takes_them():
    cmd = C.ais_bench_benchmark_command("m.om", 10, 1, 0, [0, 3])
    assert cmd[cmd.index("--device") + 1] == "0,3"
    assert cmd[cmd.index("--display_all_summary") + 1] == "true"  # ais_bench then times the copies
    for bad in ([], [0, 0], [256], [-1]):
        with pytest.raises(ValueError, match="npu_devices"):
            C.ais_bench_benchmark_command("m.om", 10, 1, 0, bad)


MULTI_LOG = """\
[INFO] multidevice:[0, 1] run begin
[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(13.8): 72.46
[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(14.0): 71.43
[INFO] multidevice run end qsize:4 result:0
[INFO] i:0 device_0 throughput:72.46                 start_time:1700000000.1 end_time:1700000001.5
[INFO] i:1 device_1 throughput:71.43                 start_time:1700000000.2 end_time:1700000001.6
[INFO] summary throughput:143.89
"""


def test_the_multidevice_lines_give_each_device_and_the_summary():
    assert C.parse_multidevice_stdout(MULTI_LOG) == {"devices": {0: 72.46, 1: 71.43}, "summary_fps": 143.89}
    with pytest.raises(ValueError, match="summary throughput"):
        C.parse_multidevice_stdout(MULTI_LOG.rsplit("[INFO] summary", 1)[0])


def test_end_to_end_adds_the_copies_and_widens_the_interval_by_their_bound():
    copies = {"h2d": {"mean": 1.0, "min": 0.5, "max": 1.5, "count": 4}, "d2h": {"mean": 0.5, "min": 0.5, "max": 0.5,
                                                                                "count": 4}}
    e2e, notes = C.end_to_end([10.0] * 8, copies, 2)
    assert notes == []
    assert e2e["latency_ms"] == {"mean": 11.5, "h2d": 1.0, "compute": 10.0, "d2h": 0.5}
    assert e2e["throughput_fps"] == pytest.approx(2000 / 11.5)
    widen = C.Z95 * (1.5 - 0.5) / 2 / 2  # H2D's range bound; D2H has none
    assert e2e["latency_ms_ci95"] == pytest.approx([11.5 - widen, 11.5 + widen])
    assert e2e["throughput_fps_ci95"] == pytest.approx([2000 / (11.5 + widen), 2000 / (11.5 - widen)])
    once = C.end_to_end([10.0, 11.0], {"h2d": {**copies["h2d"], "count": 1}, "d2h": copies["d2h"]}, 1)[0]
    assert "H2D timed once" in once["method"]


def test_no_end_to_end_figure_is_invented_without_the_copies():
    e2e, notes = C.end_to_end([10.0, 11.0], C.copies({"H2D_latency": {"mean": 0.0, "count": 0}}), 1)
    assert e2e is None and "H2D/D2H_latency" in notes[0]


def test_the_summary_json_copy_times_are_read_as_ais_bench_writes_them():
    summary = {"NPU_compute_time": {"mean": 13.8, "count": 2}, "npu_compute_time_list": [13.7, 13.9],
               "H2D_latency": {"min": 0.2, "max": 0.4, "mean": 0.3, "median": 0.3, "percentile(99%)": 0.4, "count": 2},
               "D2H_latency": {"min": 0.1, "max": 0.1, "mean": 0.1, "median": 0.1, "percentile(99%)": 0.1, "count": 2}}
    parsed = C.parse_summary(summary)
    assert parsed["copies_ms"]["h2d"] == {"min": 0.2, "max": 0.4, "mean": 0.3, "p50": 0.3, "p99": 0.4, "count": 2}


# ---- the run's matrix, the rules' resources -------------------------------------------------------------------

def matrix(tmp_path, **config):
    images = tmp_path / "img"
    images.mkdir(exist_ok=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(images / "a.png")
    return Matrix(with_defaults({"backend": "ascend", "images": str(images), "checkpoint": "synthetic", **config}),
                  dry_run=True, main_process=True)


def test_the_matrix_compiles_static_dynamic_or_both_and_infer_takes_the_batch_1_model(tmp_path):
    static = matrix(tmp_path, batch_sizes=[1, 4])
    (t,) = static.targets
    assert static.compile_units(t) == ["1", "4"] and static.infer_unit(t) == "1"
    both = matrix(tmp_path, batch_sizes=[1, 4], ascend_dynamic_batch="both")
    assert both.compile_units(t) == ["1", "4", P.DYNAMIC] and both.infer_unit(t) == "1"
    assert both.benchmarks(t) == [t.benchmark(1), t.benchmark(4), t.benchmark(1, dynamic=True),
                                  t.benchmark(4, dynamic=True)]
    dynamic = matrix(tmp_path, batch_sizes=[1, 4], ascend_dynamic_batch=True)
    assert dynamic.compile_units(t) == [P.DYNAMIC] and dynamic.infer_unit(t) == P.DYNAMIC
    text = P.Target(t.arch, "text", t.backend, t.device, t.precision)
    assert dynamic.compile_units(text) == ["1"], "the text tower has one batch size: its static model"


def test_a_dynamic_model_over_one_batch_size_is_a_config_error_naming_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"backend ascend: .*2 to 100 batch sizes.*batch_sizes"):
        matrix(tmp_path, batch_sizes=[8], ascend_dynamic_batch=True)


def test_a_benchmark_over_several_npus_holds_them_all_and_asks_the_scheduler_for_them(tmp_path):
    config = with_defaults({"npu_devices": [0, 1, 2]})
    assert ascend.options(config, "fp16")["benchmark_devices"] == [0, 1, 2]
    assert ascend.accelerators(config, "benchmark") == 3 and ascend.accelerators(config, "infer") == 1
    m = matrix(tmp_path, npu_devices=[0, 1, 2])
    assert m.accelerator_units(ascend.ACCELERATOR) == 3  # each job holds every device: none shares one
    one = with_defaults({})
    assert ascend.options(one, "fp16")["benchmark_devices"] == [0] and ascend.accelerators(one, "benchmark") == 1


# ---- the record and the report --------------------------------------------------------------------------------

def test_the_report_shows_each_device_and_both_throughputs(tmp_path):
    from reporting import rows

    e2e = {"throughput_fps": 60.0, "throughput_fps_ci95": [59.0, 61.0],
           "latency_ms": {"mean": 16.6, "h2d": 2.0, "compute": 13.8, "d2h": 0.8}}
    p = {"batch_size": 4, "dynamic_batch": [1, 4], "throughput_fps": 144.0, "throughput_fps_ci95": [143.0, 145.0],
         "end_to_end": {**e2e, "throughput_fps": 120.0},
         "devices": [{"device": 0, "throughput_fps": 72.0, "throughput_fps_ci95": [71.5, 72.5], "end_to_end": e2e},
                     {"device": 1, "throughput_fps": 72.0, "throughput_fps_ci95": [71.5, 72.5], "end_to_end": e2e}]}
    table = rows.device_table({"performance": [p]})
    assert [r[:2] for r in table["rows"]] == [["4 (dynamic 1,4)", "0"], ["4 (dynamic 1,4)", "1"],
                                              ["4 (dynamic 1,4)", "all 0,1"]]
    assert table["rows"][-1][2].startswith("144") and table["rows"][-1][3].startswith("120")
    assert rows.device_table({"performance": [{"batch_size": 1, "throughput_fps": 9.0}]}) is None


# ---- AIPP: cn_clip's normalisation on the device --------------------------------------------------------------

def test_the_aipp_configuration_is_cn_clips_normalisation_in_the_fields_atc_takes():

    mean, std = aipp.cn_clip_normalisation()
    assert mean == pytest.approx((0.48145466, 0.4578275, 0.40821073)) and std == pytest.approx(
        (0.26862954, 0.26130258, 0.27577711))
    fields = aipp.parse(aipp.config_text(224, mean, std))
    assert (fields["aipp_mode"], fields["input_format"], fields["src_image_size_w"], fields["crop"]) == \
        ("static", "RGB888_U8", 224, False)
    for c in range(3):
        assert isinstance(fields[f"mean_chn_{c}"], int)
        assert fields[f"mean_chn_{c}"] + fields[f"min_chn_{c}"] == pytest.approx(255 * mean[c])
        assert 0 <= fields[f"min_chn_{c}"] < 1
        assert fields[f"var_reci_chn_{c}"] == pytest.approx(1 / (255 * std[c]))
    aipp.check(fields, image_spec(224))


@pytest.mark.parametrize("change, match", [
    (("mean_chn_0: 122", "mean_chn_0: 300"), r"mean_chn_0: 300 outside \[0, 255\]"),
    (("min_chn_1: ", "min_chn_1: -"), "min_chn_1"),
    (("    input_format: RGB888_U8\n", ""), "misses input_format"),
    (("aipp_mode: static", "aipp_mode: static2"), "aipp_mode"),
    (("crop: false", "crop: yes"), "crop"),
])
def test_an_aipp_configuration_outside_the_documented_fields_and_ranges_is_refused(change, match):

    text = aipp.config_text(224, *aipp.cn_clip_normalisation())
    assert change[0] in text
    with pytest.raises(ValueError, match=match):
        aipp.parse(text.replace(*change, 1))


def test_an_aipp_configuration_must_fit_the_model_input():

    fields = aipp.parse(aipp.config_text(224, *aipp.cn_clip_normalisation()))
    with pytest.raises(ValueError, match="source size"):
        aipp.check(fields, image_spec(336))
    with pytest.raises(ValueError, match="4-d NCHW"):
        aipp.check(fields, TensorSpec("text", ("batch", 52), "int64"))


def test_aipp_emulation_matches_cn_clips_float_transform_within_fp16_rounding():
    import numpy as np


    mean, std = aipp.cn_clip_normalisation()
    pixels = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    got = aipp.emulate(pixels, aipp.parameters(mean, std))
    assert got.dtype == np.float16 and got.shape == (2, 3, 16, 16)
    want = (pixels.transpose(0, 3, 1, 2) / 255.0 - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    err = np.abs(got.astype(np.float64) - want)
    assert err.max() <= 4 * np.spacing(np.float16(2.2)).astype(np.float64), "a few fp16 steps at most"
    assert err.max() > 0, "fp16 arithmetic: not exactly the float transform"


def test_the_pixels_preprocess_writes_are_cn_clips_and_its_float_tensor_gives_them_back(tmp_path):
    import numpy as np
    from PIL import Image

    from preprocess import image_pixels, preprocess_image

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (20, 50), dtype=np.uint8)).save(tmp_path / "g.png")  # greyscale -> RGB
    for name in ("a.png", "g.png"):
        pixels = image_pixels(tmp_path / name, 32)
        assert pixels.dtype == np.uint8 and pixels.shape == (1, 32, 32, 3)
        tensor = preprocess_image(tmp_path / name, 32)
        assert np.array_equal(aipp.to_pixels(tensor, *aipp.cn_clip_normalisation()), pixels)
    assert pixels.nbytes * 4 == tensor.nbytes, "a quarter of the bytes of float32 NCHW"
    with pytest.raises(ValueError, match="not cn_clip's normalised pixels"):
        aipp.to_pixels(tensor + 0.01, *aipp.cn_clip_normalisation())


def test_atc_gets_the_aipp_configuration_written_beside_the_model(tmp_path, tiny_onnx):
    options = {"device": "Ascend910B4", "atc": {}, "aipp": True, "tower": "image"}
    cmd = ascend.compile_command(tiny_onnx["fp16"], tmp_path / "model_bs1", 1, 16, options)
    assert cmd[-1] == f"--insert_op_conf={(tmp_path / 'model_bs1' / ascend.AIPP_CONFIG).resolve()}"
    assert not any(a.startswith("--insert_op_conf") for a in
                   ascend.compile_command(tiny_onnx["fp16"], tmp_path / "m", 1, 16, {**options, "aipp": False}))
    path = ascend.write_aipp_config(tiny_onnx["fp16"], tmp_path)
    fields = aipp.parse(path.read_text())
    assert fields["src_image_size_w"] == 16
    (spec,) = model_inputs(tiny_onnx["fp16"])
    assert ascend.device_input(spec, options)["bytes_per_item"] == 16 * 16 * 3
    assert ascend.device_input(spec, {**options, "tower": "text"}) is None


def test_the_npu_dump_of_a_dynamic_model_picks_its_batch_1_gear():
    assert C.ais_bench_dump_command("m.om", "in/a.npy", "out", 0, dym_batch=1)[-2:] == ["--dymBatch", "1"]
    assert "--dymBatch" not in C.ais_bench_dump_command("m.om", "in/a.npy", "out", 0)
