"""The run's matrix, from the validated config: its images and labels, the targets (arch x tower x
backend x device x precision, each backend asked for its own devices and precisions), the shards of
items, the batch sizes and gates. Built once at parse time (the Snakefile's `M`); the rules and their
input functions read it, and so do the modules that derive the report's parameters and the lock recovery."""

from __future__ import annotations

from pathlib import Path

import backends
from pipeline import paths as P
from pipeline.paths import ConfigError


def backend_precisions(plan, config: dict) -> list[str]:
    """The precisions of one backend's targets: config `precisions` (those in its vocabulary; `auto`: its
    plan's AUTO_PRECISIONS, fp32 and the reduced ones the run then checks, repairs and chooses among), else
    `precision`, else the backend's default."""
    wanted = config["precisions"]
    if wanted == "auto":
        return list(plan.AUTO_PRECISIONS)
    if wanted:
        return [p for p in wanted if p in plan.PRECISIONS]
    if config["precision"]:
        return [config["precision"]] if config["precision"] in plan.PRECISIONS else []
    return [plan.DEFAULT_PRECISION]


def check_precisions(config: dict, names: list[str]) -> None:
    """ConfigError naming the backend and its vocabulary when a backend of the run computes none of the
    precisions asked for, or a precision asked for is no backend's."""
    wanted = config["precisions"] if config["precisions"] not in ("auto", []) else \
        ([config["precision"]] if config["precision"] else [])
    for name in names:
        plan = backends.get(name)
        if not backend_precisions(plan, config):
            raise ConfigError(f"backend {name} computes none of the precisions asked for ({', '.join(wanted)}): "
                              f"its precisions are {', '.join(plan.PRECISIONS)} (config `precision`/`precisions`)")
    known = {p for name in names for p in backends.get(name).PRECISIONS}
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise ConfigError(f"precision(s) {', '.join(unknown)}: no backend of this run computes them "
                          f"({'; '.join(f'{n}: ' + ', '.join(backends.get(n).PRECISIONS) for n in names)})")


class Matrix:
    """Everything the rules derive from config (see the module docstring)."""

    def __init__(self, config: dict, dry_run: bool, main_process: bool):
        self.config = config
        images_dir = config["images"] or P.SAMPLE_IMAGES_DIR
        self.images = P.discover_images(images_dir, sample=not config["images"])  # {stem: path}
        self.skipped_images = {}  # {path: why}: bad files left out with skip_bad_images
        if config["images"]:
            from pipeline.config_check import usable_images

            self.images, self.skipped_images = usable_images(self.images, images_dir, config["skip_bad_images"])
        self.labels = list(config["labels"])
        self.items = {"image": sorted(self.images), "text": self.labels}  # what each tower's model runs on
        self.threads = config["threads"] or P.physical_cores()
        self.archs = config["model_archs"] or [config["model_arch"]]
        self.backends = config["backends"] or [config["backend"]]
        self.towers = config["towers"]
        check_precisions(config, self.backends)
        self.targets = [
            P.Target(arch, tower, name, device, precision)
            for arch in self.archs
            for tower in self.towers
            for name in self.backends
            for device in backends.get(name).devices(config)
            for precision in backend_precisions(backends.get(name), config)
        ]
        # the per-item jobs (preprocess, reference, infer) work a shard of items each
        self.shards = {tower: P.shards(items, config["shard_size"]) for tower, items in self.items.items()}
        # the reference chain's middle stages run on a sample (chain_images: first_shard), the ground truth
        # and the targets on every item
        self.chain_all = config["chain_images"] == "all"
        self.batch_sizes = sorted(config["batch_sizes"])
        # the text tower is compiled at batch 1 (infer's) and not benchmarked
        self.tower_batch_sizes = {"image": self.batch_sizes, "text": [1]}
        # the cosine gates similarity applies (the zero-shot bound is zero_shot's own)
        self.cosine_gates = {k: v for k, v in config["gates"].items() if k != "zero_shot_max_prob_change"}
        self._check_checkpoint()
        # whether some image target takes uint8 pixels (its plan's takes_pixels): preprocess then writes them too
        self.pixels = "image" in self.towers and any(backends.takes_pixels(backends.get(n), config)
                                                     for n in self.backends)
        self._models = {}  # backend -> the models its targets' batch sizes get (batch_models)
        for name in self.backends:
            try:
                self._models[name] = backends.batch_models(backends.get(name), config)
            except ValueError as exc:
                raise ConfigError(f"backend {name}: {exc}") from exc
        # the wildcard values this config's jobs take (others belong to another config's run)
        self.wildcard_values = {
            "arch": set(self.archs),
            "prefix": {P.prefix(arch) for arch in self.archs},
            "tower": set(self.towers),
            "part": {P.part(tower) for tower in self.towers},
            "backend": set(self.backends),
            "device": {t.device for t in self.targets},
            "precision": {t.precision for t in self.targets},
            "bs": {str(bs) for bs in self.batch_sizes} | {u for t in self.targets for u in self.compile_units(t)},
            "seed": {str(config["seed"])},
        }

    def _check_checkpoint(self) -> None:
        checkpoint = self.config["checkpoint"]
        if checkpoint in ("synthetic", "download"):
            return
        if len(self.archs) > 1:
            raise ConfigError(
                f"checkpoint '{checkpoint}' is one file, but model_archs names {len(self.archs)} architectures: use "
                f"`checkpoint: synthetic` or `download` for a matrix, or one model_arch")
        if not Path(checkpoint).is_file():
            raise ConfigError(
                f"checkpoint '{checkpoint}' does not exist: set `checkpoint` to the path of an official Chinese-CLIP "
                f".pt file of {self.archs[0]} (e.g. clip_cn_{P.prefix(self.archs[0])}.pt), `synthetic` or `download`")

    def stage_shards(self, tower: str, stage: str) -> list:
        """The shards a reference stage runs on: every shard for torch_fp32 (the gates' ground truth) and
        with `chain_images: all`; the first shard (the sample) for onnx_fp32 and onnx_fp16, which say which
        stage lost accuracy as well on a sample as on every image."""
        shards = self.shards[tower]
        return shards if stage == "torch_fp32" or self.chain_all else shards[:1]

    def shard_stages(self, tower: str, shard) -> list[str]:
        """The reference stages a shard's jobs make (stage_shards, the other way round)."""
        return [stage for stage in P.REFERENCE_STAGES if shard in self.stage_shards(tower, stage)]

    def arch_qualifier(self, arch: str) -> list[str]:
        """An architecture in a sharded rule's name: only when the run has several."""
        return [arch] if len(self.archs) > 1 else []

    def target_qualifier(self, t: P.Target) -> list[str]:
        """A target in a sharded rule's name: the fewest of its coordinates that tell this run's targets of
        its tower apart (none for one target: infer_3of8; infer_ascend_3of8 beside another backend's
        target). None for a pattern (while the items make one shard, `infer` serves every target)."""
        from itertools import combinations

        if t not in self.targets:
            return []
        peers = [x for x in self.targets if x.tower == t.tower]
        names = [c for c in P.COORDINATES if c != "tower"]
        for n in range(len(names) + 1):
            for chosen in combinations(names, n):
                if len({tuple(getattr(x, c) for c in chosen) for x in peers}) == len(peers):
                    return [getattr(t, c) for c in chosen]
        return []

    def infer_rules(self):
        """(target, shard) of each infer rule. A tower whose items make one shard has one rule for every
        target: a pattern (Target with only the tower named). Several shards: a rule per target and shard
        with named outputs (a pattern's outputs, all under `results/`, would make Snakemake scan every
        item's output for every file it looks up: a plan growing with items squared)."""
        for tower in self.towers:
            if len(self.shards[tower]) == 1:
                yield P.Target(tower=tower), self.shards[tower][0]
            else:
                for t in self.targets:
                    if t.tower == tower:
                        for shard in self.shards[tower]:
                            yield t, shard

    def batch_models(self, t: P.Target) -> tuple[str, ...]:
        """The models target t's batch sizes get (its plan's batch_models): a tower with one batch size (the
        text tower's 1) has its static model only."""
        if len(self.tower_batch_sizes[t.tower]) < 2:
            return ("static",)
        return self._models[t.backend]

    def compile_units(self, t: P.Target) -> list[str]:
        """The `bs` of every model target t compiles: its batch sizes, and P.DYNAMIC for its dynamic-batch one."""
        models = self.batch_models(t)
        return ([str(bs) for bs in self.tower_batch_sizes[t.tower]] if "static" in models else []) + \
            ([P.DYNAMIC] if "dynamic" in models else [])

    def infer_unit(self, t: P.Target) -> str:
        """The model infer runs: batch size 1's, or the dynamic-batch model (at its batch-1 gear)."""
        return "1" if "static" in self.batch_models(t) else P.DYNAMIC

    def benchmarks(self, t: P.Target) -> list[str]:
        """Every benchmark record of an image target: each batch size of each of its models."""
        if t.tower != "image":
            return []
        models = self.batch_models(t)
        return [t.benchmark(bs, dynamic=(m == "dynamic")) for m in ("static", "dynamic") if m in models
                for bs in self.batch_sizes]

    def takes_pixels(self, t: P.Target) -> bool:
        """Whether target t's model takes uint8 pixels (an image target of a plan that says so)."""
        return t.tower == "image" and backends.takes_pixels(backends.get(t.backend), self.config)

    def accelerator_units(self, accelerator: str) -> int:
        """What each job holding `accelerator` takes of it: the most devices any of this run's jobs uses (a
        benchmark over several), so that, capped at that (the Snakefile), two jobs never share a device."""
        plans = [backends.get(n) for n in self.backends if backends.get(n).ACCELERATOR == accelerator]
        return max([backends.accelerator_count(p, self.config, job) for p in plans
                    for job in ("infer", "benchmark", "locate")] or [1])

    def reduced(self, t: P.Target) -> bool:
        """Whether a target computes in a precision whose loss locate measures and repair can win back."""
        return t.precision in backends.get(t.backend).REDUCED
