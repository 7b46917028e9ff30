"""Every artifact path of the workflow, derived from coordinates in this one module: the rules take
their output patterns from here (called with no coordinates, a function returns the rule's pattern,
"{wildcard}" for each coordinate), input functions and tests call the same functions with values.

A target is a point of the matrix: (arch, tower, backend, device, precision), compiled at each batch
size. Layout (README "Where things are"):

  resources/checkpoints/...                          checkpoints (synthetic or downloaded)
  resources/images/                                  the bundled sample images
  results/{arch}/checkpoint.json                     sha256 and provenance of the checkpoint
  results/{arch}/npy/{stem}.npy                      preprocessed images (the image tower's inputs), made a
                                                     shard of images per job (shards() below)
  results/{arch}/tokens/{label}.npy                  tokenised label prompts (the text tower's inputs)
  results/{arch}/onnx/{prefix}.{img|txt}.fp32.onnx   (+ .extra_file: all weights) and .{img|txt}.fp16.onnx
  results/{arch}/reference/{tower}/{item}.{stage}.npy    torch_fp32, onnx_fp32, onnx_fp16 features
  results/{arch}/{tower}/{backend}/{device}/{precision}/
                                                     one target: model_bs{bs}/, compile_bs{bs}.json,
                                                     dst/{item}_0.npy, similarity.json, benchmark_bs{bs}.json
                                                     (+ zero_shot.json in the image target when the text
                                                     twin exists; locate/locate.{json,csv,png} and
                                                     repair/{repair.json,model/,kept_fp32.txt} when a gate
                                                     fails or on demand)
  results/report.{md,html,json}, results/report/     the report
  logs/..., benchmarks/...                           each job's log and Snakemake benchmark record, at the
                                                     path of its main output with logs/ or benchmarks/
                                                     in place of results/
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

# cn_clip's own architectures (cn_clip.clip.utils._MODEL_INFO), then those this workflow defines in cn_clip's
# model-config format (config/model_configs/<arch>.json: the vision and text configs merged, as cn_clip's
# create_model merges them), such as ViT-Toy-16, a few-layer ViT the test suite runs end to end in seconds
CN_CLIP_ARCHS = ("RN50", "ViT-B-16", "ViT-L-14", "ViT-L-14-336", "ViT-H-14")
MODEL_CONFIGS_DIR = Path(__file__).resolve().parents[2] / "config" / "model_configs"
WORKFLOW_ARCHS = {p.stem: p for p in sorted(MODEL_CONFIGS_DIR.glob("*.json"))}
ARCHS = CN_CLIP_ARCHS + tuple(WORKFLOW_ARCHS)
# The stages of the chain, in order: torch_fp32 (cn_clip's PyTorch model, the ground truth), the exported ONNX
# on the reference runtime in fp32 and fp16 (the seed's online reference), and offline (a compiled target's)
STAGES = ("torch_fp32", "onnx_fp32", "onnx_fp16", "offline")
REFERENCE_STAGES = STAGES[:3]  # what the reference rule computes (the {stage} wildcard's values)
ZERO_SHOT_STAGES = ("torch_fp32", "onnx_fp16", "offline")  # the stages whose two towers zero_shot pairs
TOWERS = ("image", "text")
DTYPES = ("fp32", "fp16")  # the exported ONNX's dtypes (the upstream exporter's fp32 and fp16 models)
PART = {"image": "img", "text": "txt"}  # the upstream exporter's file-name part of each tower
TOWER_OF_PART = {v: k for k, v in PART.items()}
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


def prefix(arch: str = "{arch}") -> str:
    """File prefix the upstream exporter and the seed use: ViT-H-14 -> vit-h-14 ("{prefix}" in a pattern)."""
    return "{prefix}" if arch == "{arch}" else arch.lower()


def part(tower: str = "{tower}") -> str:
    return "{part}" if tower == "{tower}" else PART[tower]


# --------------------------------------------------------------------------------------------
# Per architecture
# --------------------------------------------------------------------------------------------

def checkpoint_path(checkpoint: str, arch: str, seed) -> str:
    if checkpoint == "synthetic":
        return f"resources/checkpoints/synthetic/{arch}.seed{seed}.pt"
    if checkpoint == "download":
        if arch not in CHECKPOINT_FILES:
            raise ConfigError(f"`checkpoint: download`: {arch} has no official checkpoint (it is defined by "
                              f"{WORKFLOW_ARCHS.get(arch, 'this workflow')}): use `checkpoint: synthetic` or a path")
        return f"resources/checkpoints/{CHECKPOINT_FILES[arch]}"
    return checkpoint


def checkpoint_info(arch: str = "{arch}") -> str:
    return f"results/{arch}/checkpoint.json"


def npy(arch: str = "{arch}", stem: str = "{stem}", pixels: bool = False) -> str:
    """An image's model input: cn_clip's float tensor, or (pixels) its uint8 HxWx3 pixels after cn_clip's resize
    and RGB conversion, for a target whose device normalises them itself (a plan's takes_pixels)."""
    return f"results/{arch}/{'pixels' if pixels else 'npy'}/{stem}.npy"


def npy_shard(arch: str = "{arch}", shard: str = "{shard}", pixels: bool = False) -> str:
    """A shard's list of its images' npy files (pipeline/common.py write_shard_list), written by the shard's
    preprocess job after them: the one input a shard's image jobs take in their place. Snakemake's
    scheduler stats every input of every job waiting for a core, in each of its rounds, and those rounds
    multiply as jobs finish (docs/performance.md): a file per image made that the run's main cost."""
    return f"results/{arch}/{'pixels' if pixels else 'npy'}/shards/{shard}.json"


def tokens(arch: str = "{arch}", label: str = "{label}") -> str:
    """Token ids of one label's prompt: int64, shape 1 x CONTEXT_LENGTH."""
    return f"results/{arch}/tokens/{label}.npy"


def model_input(arch: str, tower: str, item: str) -> str:
    """What a tower's model takes for one item: an image's npy, or a label's token ids."""
    return npy(arch, item) if tower == "image" else tokens(arch, item)


def onnx(arch: str = "{arch}", tower: str = "{tower}", dtype: str = "fp32") -> str:
    """The exported ONNX of one tower in one dtype (DTYPES): fp32 (weights in onnx_data) or fp16 (one file).
    A target's precision (its backend's vocabulary) names the dtype it starts from (a plan's PRECISIONS)."""
    return f"results/{arch}/onnx/{prefix(arch)}.{part(tower)}.{dtype}.onnx"


def onnx_data(arch: str = "{arch}", tower: str = "{tower}") -> str:
    return onnx(arch, tower, "fp32") + ".extra_file"


def exporter() -> str:
    return "results/exporter/pytorch_to_onnx.py"


def reference(arch: str = "{arch}", tower: str = "{tower}", stage: str = "{stage}", item: str = "{item}") -> str:
    """One item's features by one stage. The stage comes last: a shard's rule has one output per item with
    only {stage} left open, and Snakemake finds a file's rule by the path's part before the first wildcard
    (a shared prefix for every item would make that search, and so the plan, grow with images squared)."""
    return f"results/{arch}/reference/{tower}/{item}.{stage}.npy"


def reference_features(arch: str = "{arch}", tower: str = "{tower}", stage: str = "{stage}",
                       shard: str = "{shard}") -> str:
    """A shard's features by one stage, stacked in one file (pipeline/common.py write_features) by the job
    that writes the shard's per-item files: what similarity and zero_shot read, a file per shard."""
    return f"results/{arch}/reference/{tower}/shards/{shard}.{stage}.npz"


# --------------------------------------------------------------------------------------------
# Shards: the per-item jobs (preprocess, reference) each take a shard of items, so a job
# starts Python and loads its model once per shard, not once per image.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int
    items: tuple[str, ...]

    @property
    def label(self) -> str:
        """The shard in rule, log and cost-record names: shard1of1, shard3of8."""
        return f"shard{self.index + 1}of{self.count}"

    @functools.cached_property  # read per shard by each per-target job's input functions in a plan
    def name(self) -> str:
        """The shard in the names of the files that stand for all its items (its npy list, its stacked
        features): the label and a digest of the items' names, shard3of8.1f2e3d4c5b6a. One results
        folder sees several image sets (another `images`, a second config asking for one npy), and a
        set's shard1of1 must not overwrite another's, which would rerun it or feed it the wrong images."""
        digest = hashlib.sha256("\n".join(self.items).encode("utf-8")).hexdigest()[:12]
        return f"{self.label}.{digest}"

    def rule(self, name: str, *qualifiers: str) -> str:
        """The rule of this shard: its outputs are named files (one per item, the same paths as ever), so
        each shard (and architecture) is a rule of its own. Its name is the step's (preprocess, reference)
        while the run's items make one shard, with the qualifiers that tell this run's rules apart (an
        architecture of a matrix) and the shard (reference_3of8) when needed."""
        return "_".join([name, *qualifiers] + ([f"{self.index + 1}of{self.count}"] if self.count > 1 else []))


def shard_count(n_items: int, size: int) -> int:
    """1 while the items fit in one shard, else the power of two that keeps shards at most about
    `size` long: the count changes only when the number of items doubles or halves past it."""
    count = 1
    while n_items > count * size:
        count *= 2
    return count


def shard_of(item: str, count: int) -> int:
    """An item's shard depends on its name and the shard count only: adding an item reruns its own
    shard's jobs, and doubling the count splits each shard in two."""
    return int(hashlib.sha256(item.encode("utf-8")).hexdigest()[:12], 16) % count


def shards(items, size: int) -> list[Shard]:
    """The items (kept in their order) in shards of about `size`; empty shards are left out."""
    count = shard_count(len(items), size)
    members: list[list[str]] = [[] for _ in range(count)]
    for item in items:
        members[shard_of(item, count)].append(item)
    return [Shard(i, count, tuple(m)) for i, m in enumerate(members) if m]


# --------------------------------------------------------------------------------------------
# Per target
# --------------------------------------------------------------------------------------------

COORDINATES = ("arch", "tower", "backend", "device", "precision")
# the `bs` of a target's one dynamic-batch model (model_bsdyn/, compile_bsdyn.json), beside its static ones
DYNAMIC = "dyn"


@dataclass(frozen=True)
class Target:
    """One point of the matrix. Target() is the rules' pattern ("{arch}", ...); Target.of(wildcards)
    the job's own target."""

    arch: str = "{arch}"
    tower: str = "{tower}"
    backend: str = "{backend}"
    device: str = "{device}"  # what it runs on: a chip its backend compiles for (a soc_version), or cpu
    precision: str = "{precision}"  # what it computes in, in its backend's vocabulary

    @classmethod
    def of(cls, wildcards) -> "Target":
        """The target of a job's wildcards (or of any mapping of the coordinates)."""
        get = wildcards.get if isinstance(wildcards, dict) else lambda c: getattr(wildcards, c)
        return cls(*(get(c) for c in COORDINATES))

    def coordinates(self) -> dict:
        return asdict(self)

    def twin(self, tower: str) -> "Target":
        """The same deployment of the other tower (the pair zero_shot checks)."""
        return Target(self.arch, tower, self.backend, self.device, self.precision)

    @property
    def name(self) -> str:
        return f"{self.arch} {self.tower} {self.backend}/{self.device} {self.precision}"

    @property
    def dir(self) -> str:
        return f"results/{self.arch}/{self.tower}/{self.backend}/{self.device}/{self.precision}"

    def compiled(self, bs="{bs}") -> str:
        return f"{self.dir}/model_bs{bs}"

    def manifest(self, bs="{bs}") -> str:
        return f"{self.dir}/compile_bs{bs}.json"

    def dst(self, item: str = "{item}") -> str:
        return f"{self.dir}/dst/{item}_0.npy"

    def features(self, shard: str = "{shard}") -> str:
        """A shard's outputs (its dst files) stacked in one file, written by the shard's infer job."""
        return f"{self.dir}/features/{shard}.npz"

    def similarity(self) -> str:
        return f"{self.dir}/similarity.json"

    def benchmark(self, bs="{bs}", dynamic: bool = False) -> str:
        """A benchmark record at batch size bs: of that batch size's own model, or (dynamic) of the one
        dynamic-batch model (compiled(DYNAMIC)) run at that batch."""
        return f"{self.dir}/benchmark_{DYNAMIC + '_' if dynamic else ''}bs{bs}.json"

    def zero_shot(self) -> str:
        return f"{self.twin('image').dir}/zero_shot.json"

    def locate(self, kind: str = "json") -> str:
        """locate's outputs: `json` (summary: first jump, op types, overflow), `csv` (one row per
        compared tensor), `png` (error against depth)."""
        return f"{self.dir}/locate/locate.{kind}"

    def repair(self, kind: str = "json") -> str:
        """repair's outputs: `json` (the record: before, after, the kept set, the steps both ways, speed),
        `model` (a folder: the repaired model as its backend builds it), `kept` (the kept nodes in the form
        the backend's tool takes them, e.g. a device compiler's list of operators to keep)."""
        names = {"json": "repair.json", "model": "model", "kept": "kept_fp32.txt"}
        return f"{self.dir}/repair/{names[kind]}"

    def log(self, job: str) -> str:
        return log(f"{self.dir}/{job}")

    def cost(self, job: str) -> str:
        return cost(f"{self.dir}/{job}")


def _job(path: str) -> str:
    return path.removeprefix("results/").removesuffix(".json").removesuffix(".npy").removesuffix(".onnx")


def log(path: str) -> str:
    """The log of the job that makes `path` (a results/ path or pattern): logs/<the same>.log."""
    return f"logs/{_job(path)}.log"


def cost(path: str) -> str:
    """Snakemake's `benchmark:` record (wall time, peak RSS) of the job that makes `path`."""
    return f"benchmarks/{_job(path)}.tsv"


REPORT = {fmt: f"results/report.{fmt}" for fmt in ("md", "html", "json")}
COMPARE = {fmt: f"results/compare.{fmt}" for fmt in ("md", "html", "json")}  # this run against config `baseline`
REPORT_DIR = "results/report"


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

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
        if path.stem in found:
            clashes.append(f"{found[path.stem]} and {path}")
            continue
        found[path.stem] = str(path)
    if clashes:
        raise ConfigError(
            "images whose names would collide in the outputs (same stem with another extension); "
            "rename them: " + "; ".join(clashes)
        )
    if not found:
        raise ConfigError(
            f"images folder '{folder}' holds no images ({', '.join(IMAGE_EXTENSIONS)}): "
            f"put images there or point `images` at another folder"
        )
    return found
