"""Every artifact path of the workflow, in one place (used by rules/common.smk and by tests).

Layout (docs: ../CONTRACT.md):
  resources/checkpoints/...                      checkpoints (synthetic or downloaded)
  resources/images/                              the bundled sample images
  results/{arch}/checkpoint.json                 sha256 and provenance of the checkpoint
  results/{arch}/npy/{stem}.npy                  preprocessed inputs
  results/{arch}/onnx/{prefix}.img.fp32.onnx     + .extra_file (all weights), and .img.fp16.onnx
  results/{arch}/reference/{stage}/{stem}.npy    torch_fp32, onnx_fp32, onnx_fp16 features
  results/{arch}/{backend}/{device}/             one compiled target: model_bs{bs}/, compile_bs{bs}.json,
                                                 dst/{stem}_0.npy, similarity.json, benchmark_bs{bs}.json
  results/{arch}/text/                           the text tower (config towers: [image, text]), beside the image paths:
                                                 npy/{label}.npy (token ids), onnx/{prefix}.txt.fp32.onnx (+ .extra_file)
                                                 and .txt.fp16.onnx, reference/{stage}/{label}.npy,
                                                 {backend}/{device}/ (model_bs1/, compile_bs1.json, dst/, similarity.json)
  results/{arch}/{backend}/{device}/zero_shot.json   zero-shot and retrieval agreement of the pair of towers
  results/report.{md,html,json}
"""

import math
import os
from pathlib import Path

ARCHS = ("RN50", "ViT-B-16", "ViT-L-14", "ViT-L-14-336", "ViT-H-14")
STAGES = ("torch_fp32", "onnx_fp32", "onnx_fp16")
TOWERS = ("image", "text")
CONTEXT_LENGTH = 52  # cn_clip's default text context (tokens per prompt), the text ONNX input's second axis
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

SAMPLE_IMAGES_DIR = "resources/images"
# Real photographs shipped inside scikit-image's wheel (skimage/data/), no network needed.
SAMPLE_IMAGES = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "motorcycle_left": "motorcycle_left.png",
    "rocket": "rocket.jpg",
}

# Official checkpoints, as published by the Chinese-CLIP authors (the seed gives the ViT-H-14 one).
CHECKPOINT_URL = "https://clip-cn-beijing.oss-cn-beijing.aliyuncs.com/checkpoints/{filename}"
CHECKPOINT_FILES = {
    "RN50": "clip_cn_rn50.pt",
    "ViT-B-16": "clip_cn_vit-b-16.pt",
    "ViT-L-14": "clip_cn_vit-l-14.pt",
    "ViT-L-14-336": "clip_cn_vit-l-14-336.pt",
    "ViT-H-14": "clip_cn_vit-h-14.pt",
}


class ConfigError(ValueError):
    """A problem the user fixes in config or on disk; the message names what and how."""


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def device_name(backend: str, soc_version: str) -> str:
    return soc_version if backend == "ascend" else "cpu"


def devices(backend: str, soc_version: str, soc_versions: list[str]) -> list[str]:
    """The `{device}` parts of the targets to build: the chips for ascend, `cpu` otherwise."""
    if backend != "ascend":
        return ["cpu"]
    return list(soc_versions) or [soc_version]


def prefix(arch: str) -> str:
    """File prefix the upstream exporter and the seed use: ViT-H-14 -> vit-h-14."""
    return arch.lower()


def checkpoint_path(checkpoint: str, arch: str, seed: int) -> str:
    if checkpoint == "synthetic":
        return f"resources/checkpoints/synthetic/{arch}.seed{seed}.pt"
    if checkpoint == "download":
        return f"resources/checkpoints/{CHECKPOINT_FILES[arch]}"
    return checkpoint


def checkpoint_info(arch: str) -> str:
    return f"results/{arch}/checkpoint.json"


def npy(arch: str, stem: str) -> str:
    return f"results/{arch}/npy/{stem}.npy"


def onnx_fp32(arch: str) -> str:
    return f"results/{arch}/onnx/{prefix(arch)}.img.fp32.onnx"


def onnx_fp32_data(arch: str) -> str:
    return onnx_fp32(arch) + ".extra_file"


def onnx_fp16(arch: str) -> str:
    return f"results/{arch}/onnx/{prefix(arch)}.img.fp16.onnx"


def reference(arch: str, stage: str, stem: str) -> str:
    return f"results/{arch}/reference/{stage}/{stem}.npy"


def target_dir(arch: str, backend: str, device: str) -> str:
    return f"results/{arch}/{backend}/{device}"


def compiled_dir(arch: str, backend: str, device: str, bs) -> str:
    return f"{target_dir(arch, backend, device)}/model_bs{bs}"


def compiled_manifest(arch: str, backend: str, device: str, bs) -> str:
    return f"{target_dir(arch, backend, device)}/compile_bs{bs}.json"


def dst(arch: str, backend: str, device: str, stem: str) -> str:
    return f"{target_dir(arch, backend, device)}/dst/{stem}_0.npy"


def similarity(arch: str, backend: str, device: str) -> str:
    return f"{target_dir(arch, backend, device)}/similarity.json"


def benchmark(arch: str, backend: str, device: str, bs) -> str:
    return f"{target_dir(arch, backend, device)}/benchmark_bs{bs}.json"


def text_dir(arch: str) -> str:
    return f"results/{arch}/text"


def tokens(arch: str, label: str) -> str:
    """Token ids of one label's prompt: int64, shape 1 x CONTEXT_LENGTH."""
    return f"{text_dir(arch)}/npy/{label}.npy"


def text_onnx_fp32(arch: str) -> str:
    return f"{text_dir(arch)}/onnx/{prefix(arch)}.txt.fp32.onnx"


def text_onnx_fp32_data(arch: str) -> str:
    return text_onnx_fp32(arch) + ".extra_file"


def text_onnx_fp16(arch: str) -> str:
    return f"{text_dir(arch)}/onnx/{prefix(arch)}.txt.fp16.onnx"


def text_reference(arch: str, stage: str, label: str) -> str:
    return f"{text_dir(arch)}/reference/{stage}/{label}.npy"


def text_target_dir(arch: str, backend: str, device: str) -> str:
    return f"{text_dir(arch)}/{backend}/{device}"


def text_compiled_manifest(arch: str, backend: str, device: str, bs) -> str:
    return f"{text_target_dir(arch, backend, device)}/compile_bs{bs}.json"


def text_dst(arch: str, backend: str, device: str, label: str) -> str:
    return f"{text_target_dir(arch, backend, device)}/dst/{label}_0.npy"


def text_similarity(arch: str, backend: str, device: str) -> str:
    return f"{text_target_dir(arch, backend, device)}/similarity.json"


def zero_shot(arch: str, backend: str, device: str) -> str:
    return f"{target_dir(arch, backend, device)}/zero_shot.json"


def cost(arch: str, *parts: str) -> str:
    """Snakemake's `benchmark:` record of one job (wall time, peak RSS): benchmarks/{arch}/[{backend}/{device}/]{job}.tsv,
    parts = ([backend, device,] job). With "{wildcard}" arguments it is the rule's pattern."""
    return f"benchmarks/{arch}/" + "/".join(parts) + ".tsv"


def non_image_files(folder: str) -> dict[str, str]:
    """{path: reason} for the regular, non-hidden files in `folder` that are not named as images."""
    root = Path(folder)
    if not root.is_dir():
        return {}
    return {str(p): f"not an image (extension '{p.suffix or 'none'}'; images are {', '.join(IMAGE_EXTENSIONS)})"
            for p in sorted(root.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in IMAGE_EXTENSIONS}


def discover_images(folder: str, sample: bool = False) -> dict[str, str]:
    """{stem: path} of the images in `folder` (not recursive). Raises ConfigError naming the folder
    and the fix when it is missing or empty, or when two files share a stem."""
    if sample:
        return {stem: f"{folder}/{name}" for stem, name in SAMPLE_IMAGES.items()}
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(
            f"images folder '{folder}' does not exist: set `images` in config/config.yaml "
            f"(or --config images=PATH) to a folder of images, or leave it empty for the sample set"
        )
    found: dict[str, str] = {}
    clashes = []
    for path in sorted(root.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if "." in path.stem:
            clashes.append(f"{path} (a dot in the name: ais_bench would cut the name at the first dot)")
            continue
        if path.stem in found:
            clashes.append(f"{found[path.stem]} and {path}")
            continue
        found[path.stem] = str(path)
    if clashes:
        raise ConfigError(
            "images whose names would collide in the outputs (same stem with another extension, "
            "or a dot in the stem); rename them: " + "; ".join(clashes)
        )
    if not found:
        raise ConfigError(
            f"images folder '{folder}' holds no images ({', '.join(IMAGE_EXTENSIONS)}): "
            f"put images there or point `images` at another folder"
        )
    return found


# Peak RSS (MB) and wall time (s) per job, from Snakemake's benchmark: records (benchmarks/) of
# `.venv/bin/snakemake -c1 report` on this 2-core machine, 2026-11-27: ViT-H-14 from the default run on a
# fresh clone with nothing else running (loop 100, baseline_loop 20; 6 min 31 s in all, 7.2 GB max RSS),
# ViT-B-16 from the test suite's run (loop 3). Reference: the largest job of its rule (torch_fp32).
# Other architectures are interpolated by the size of their image tower between the two.
MEASURED = {
    "ViT-H-14": {"checkpoint": (4343, 14), "export": (6226, 30), "fp16": (6729, 24), "reference": (4673, 9),
                 "compile": (5613, 18), "infer": (2554, 8), "benchmark": (4415, 155)},
    "ViT-B-16": {"checkpoint": (1399, 5), "export": (2555, 15), "fp16": (1439, 6), "reference": (1799, 7),
                 "compile": (1374, 5), "infer": (427, 2), "benchmark": (918, 38)},
}
_SIZE = {"RN50": 0.0, "ViT-B-16": 0.0, "ViT-L-14": 0.45, "ViT-L-14-336": 0.5, "ViT-H-14": 1.0}
HEADROOM = 1.25  # mem_mb = measured peak x this, so a job is not killed by a scheduler at its own peak


def _measured(arch: str, step: str) -> tuple[float, float]:
    if arch in MEASURED:
        return MEASURED[arch][step]
    w = _SIZE.get(arch, 1.0)
    (b_mb, b_s), (h_mb, h_s) = MEASURED["ViT-B-16"][step], MEASURED["ViT-H-14"][step]
    return b_mb + w * (h_mb - b_mb), b_s + w * (h_s - b_s)


def mem_mb(arch: str, step: str) -> int:
    """`resources: mem_mb` of a job: its measured peak RSS with headroom, rounded up to 100 MB."""
    return int(math.ceil(_measured(arch, step)[0] * HEADROOM / 100.0) * 100)


def runtime_min(arch: str, step: str, scale: float = 1.0) -> int:
    """`resources: runtime` (minutes) of a job: 3x its measured wall time (x `scale`, e.g. the ratio of
    this run's benchmark loop to the measured one), at least 10 minutes: a scheduler limit, not an estimate."""
    return max(10, int(math.ceil(3 * _measured(arch, step)[1] * scale / 60.0)))


# Jobs that read images, JSON or a checkpoint's header only (preprocess, similarity, report, ...):
# Snakemake's own default memory floor, one thread, a 10-minute limit; a download gets an hour.
LIGHT = {"mem_mb": 1000, "runtime": 10}
