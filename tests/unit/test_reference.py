"""What the reference jobs and the benchmark's FLOP count rely on: every stage computes on the
threads the workflow gives it, and the count is the model's whole work."""
import types

import numpy as np
import pytest


def test_every_reference_stage_computes_on_the_threads_it_is_given(tiny_onnx, monkeypatch):
    """Under `snakemake -c1` Snakemake sets a job's OMP_NUM_THREADS to its scaled threads (1), and
    torch took it: the default run's torch_fp32 reference ran on one thread (7.5 s per ViT-H-14 image
    against 4.4 s in the benchmark) while the ONNX Runtime stages, infer and the benchmark ran on
    `threads` (every core)."""
    import torch

    from model import clip as clip_model
    import reference
    from backends import onnxruntime as ort_backend

    real_session = ort_backend.graph_session
    seen = []
    monkeypatch.setattr(ort_backend, "graph_session",
                        lambda model, threads, *a, **kw: seen.append(threads) or real_session(model, threads, *a, **kw))
    monkeypatch.setattr(clip_model, "load_model",
                        lambda *a, **k: types.SimpleNamespace(encode_image=lambda x: x.flatten(1)))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        run = reference.reference_runner("torch_fp32", "RN50", "image", "ckpt.pt", threads=2)
        assert torch.get_num_threads() == 2
        x = np.load(tiny_onnx["npy"][0])
        assert run(x).shape == (1, x[0].size)
        for stage in ("fp32", "fp16"):
            assert reference.reference_runner(f"onnx_{stage}", "RN50", "image", tiny_onnx[stage], threads=2)(x).shape == (1, 16)
        assert seen == [2, 2]
    finally:
        torch.set_num_threads(before)


def test_the_reference_rule_passes_its_threads_to_the_stage(monkeypatch):
    import reference

    seen = {}
    monkeypatch.setattr(reference, "write_references", lambda *a, **k: seen.update(args=a, **k))
    monkeypatch.setattr(reference, "model_input_files", lambda files: list(files))
    smk = types.SimpleNamespace(
        wildcards=types.SimpleNamespace(stage="torch_fp32"),
        params=types.SimpleNamespace(arch="RN50", tower="image", threads=3),
        input=types.SimpleNamespace(model="m.pt", keys=lambda: ["model"]),
        output=types.SimpleNamespace(per_item=["r/a.npy"], features="r/f.npz"))
    monkeypatch.setattr(reference, "unnamed_inputs", lambda inputs: ["shard.json"])
    reference.main(smk)
    assert seen["threads"] == 3


def test_the_flop_count_includes_the_attention_products():
    """On the CPU, torch runs the attention in a fused kernel (_scaled_dot_product_flash_attention_for_cpu)
    that FlopCounterMode has no formula for, so its products went uncounted: the benchmark reported
    ViT-H-14 at 323.8 GFLOPs per image, 10.8 short (32 layers x 2 x 2 x 257^2 x 1280). The count is
    made on the meta device (no weights, no compute), where the attention's products are counted."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from benchmark import model_gflops
    from model.clip import new_model

    model = new_model("ViT-B-16").float().eval()

    def count():
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model.encode_image(torch.zeros(1, 3, 224, 224))
        return counter.get_total_flops() / 1e9

    fused = count()
    with sdpa_kernel(SDPBackend.MATH):  # attention as plain matmuls, which the counter sees
        every_product = count()
    attention = 12 * 2 * 2 * 197**2 * 768 / 1e9
    assert every_product - fused == pytest.approx(attention, rel=1e-6)
    assert model_gflops("ViT-B-16") == pytest.approx(every_product, rel=1e-9)
