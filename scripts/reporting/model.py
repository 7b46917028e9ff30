"""The data model of results/report.json: one TypedDict per object, the keys every reader may rely
on (readers: the renderers here, bench/summary.py, the tests, users' scripts). `total=False` marks
keys a record may lack (an older record, a backend that does not measure it)."""

from typing import Literal, TypedDict

Tower = Literal["image", "text"]


class Artifact(TypedDict, total=False):
    path: str
    bytes: int
    sha256: str
    batch_size: int


class Pair(TypedDict, total=False):
    a: str  # torch_fp32, onnx_fp32, onnx_fp16 or offline
    b: str
    cosine_min: float
    cosine_mean: float
    max_abs_err: float
    rel_err_max: float
    per_image: dict[str, float]  # {stem (label for the text tower): cosine}


class Gate(TypedDict, total=False):
    a: str
    b: str
    threshold: float
    passed: bool
    cosine_min: float
    worst_image: str


class Accuracy(TypedDict):
    pairs: list[Pair]
    gates: list[Gate]


class Latency(TypedDict, total=False):
    mean: float
    p50: float
    p90: float | None  # a device tool may give none
    p99: float
    min: float
    max: float


class Ceiling(TypedDict, total=False):
    """The host's fp32 matmul rate in GFLOP/s (an n x n matmul, config ceiling_matmul_size), measured in the
    benchmark job: torch's, and the reference runtime's as `<its NAME>_gflops` (backends.reference())."""
    matmul_n: int
    threads: int
    torch_gflops: float
    ceiling_gflops: float


class Load(TypedDict, total=False):
    """What other processes did to the machine during the timed runs."""
    others_cpu_cores: float
    loadavg_before: list[float]
    loadavg_after: list[float]
    under_load: bool


class Performance(TypedDict, total=False):
    batch_size: int
    loop: int  # runs timed
    loop_max: int  # the config's loop: the most it could have timed
    stopped_early: bool  # stopped before loop_max: the throughput interval was within ci_width
    ci_width: float
    warmup: int
    threads: int | None
    throughput_fps: float
    throughput_fps_ci95: list[float] | None  # [lo, hi], 95 % bootstrap interval; None: no per-run times
    latency_ms: Latency
    latency_ms_ci95: dict  # {mean, p50, p90, p99: [lo, hi] or None}
    seconds: list[float] | None  # every timed run
    bootstrap: dict  # how the intervals were computed (timing.BOOTSTRAP)
    speedup_vs_torch_fp32_ci95: list[float] | None
    speedup_vs_torch_fp32_within_noise: bool | None  # the interval contains 1.0
    speedup_vs_fp32: float  # non-fp32 targets: over the fp32 target of the same arch/tower/backend/device
    speedup_vs_fp32_ci95: list[float] | None
    speedup_vs_fp32_within_noise: bool | None
    speedup_vs_fp32_of: str  # that fp32 target's name
    model_gflops_per_image: float
    achieved_gflops: float
    ceiling_gflops: float
    fraction_of_ceiling: float
    speedup_vs_torch_fp32: float
    baseline_torch_fp32: dict
    ceiling: Ceiling
    load: Load
    measured_by: str
    method: str
    notes: list[str]
    record: str  # the benchmark record it was read from
    command: str  # the tool command line, when recorded


class Compiled(TypedDict):
    batch_size: int | None
    source: str | None
    model: str | None
    manifest: str
    command: str | None


class Target(TypedDict, total=False):
    """One point of the matrix: (arch, tower, backend, device, precision), every batch size."""
    name: str
    arch: str
    tower: Tower
    backend: str
    device: str
    precision: str
    dir: str  # the target's folder relative to the repository root (holding dst/)
    artifacts: list[Artifact]
    compile_options: dict
    compiled: list[Compiled]
    accuracy: Accuracy
    similarity_record: str
    performance: list[Performance]
    zero_shot: dict  # image targets whose text twin is deployed: zero_shot.json plus "record"
    text: dict  # image targets: their text twin's artifacts, compiled, accuracy and similarity_record
    locate: "Locate"  # when located (a missed gate, or on demand)
    repair: "Repair"  # when repaired (`repair: true` and a missed gate, or on demand)


class Locate(TypedDict, total=False):
    """locate.json in short: why the target's precision loses accuracy: the measured causes, and node by
    node vs the fp32 ONNX."""
    record: str  # locate.json
    top_cause: dict | None  # {unit, error, method, why, node, tied_nodes, first_jump}: None when the
    # measurement could not tell (causes.why says why, from its figures)
    causes: dict  # {units: top 5 [{unit, nodes, error, cosine_min, nonfinite, passed}], complement: top 5 or
    # None, decided, why, method, nodes: top 5, tied_nodes, builds, inputs, target}
    csv: str  # one row per compared tensor
    chart: str  # error against depth (PNG)
    tensors_compared: int
    inputs: int
    fp16_storage: bool
    source: str | None  # what the target's tensors came from (the reference runtime, or the device's own dump)
    first_jump: dict | None  # {depth, node, op_type, tensor, block, one_minus_cosine, error, nonfinite_new, ...}
    first_nonfinite: dict | None
    op_types: list[dict]  # top 5: {op_type, increment_sum, share, nodes}
    blocks: list[dict]  # top 3: {block, increment_sum}
    overflow_nodes: list[str]  # nodes reading or writing a tensor past fp16's range
    overflow: bool
    final: dict | None


class Verified(TypedDict, total=False):
    cosine_min: float | None  # None: an output held inf/NaN
    nonfinite: int
    passed: bool
    gate: float
    fp16_storage: bool


class Repair(TypedDict, total=False):
    """repair.json in short: before/after vs torch_fp32, what was kept in fp32."""
    record: str
    precision: str
    gate: float
    passed: bool
    repaired: bool  # the target missed the gate and a kept set passes it
    before: Verified
    after: Verified
    kept: list[str]  # a 1-minimal set: no single node can be taken out without missing the gate
    closure: list[str]  # kept with them so their values stay fp32 (graph.closure.kept_closure), counted apart
    kept_units: list[str]
    not_acted_on: list[dict]  # missed gates repair cannot measure again, each with its value and why
    all_fp32: dict | None  # when every unit kept still fails: the all-fp32 candidate against the fp32 graph
    kept_command: list[str] | None  # the tool command that builds the repaired target from kept_file
    grown: int  # steps adding units
    shrunk: int  # trials taking nodes out
    grown_to: int | None
    builds: int
    reason: str | None  # why not repaired (from the figures in the record)
    model: str  # the repaired model's file
    kept_file: str  # the kept nodes in the form the backend's tool takes them
    speed: dict  # {latency_ms_p50: {repaired, unrepaired, fp32}, repaired_vs_unrepaired, repaired_vs_fp32, ...}


class Model(TypedDict, total=False):
    arch: str
    checkpoint: str
    checkpoint_path: str
    checkpoint_sha256: str
    checkpoint_bytes: int
    synthetic: bool


class Report(TypedDict, total=False):
    verdict: Literal["PASS", "FAIL"]
    gates_passed: int
    gates_total: int
    model: Model  # the first architecture's
    models: list[Model]
    warnings: list[str]
    inputs: dict  # {"skipped": [{"path", "reason"}]}
    onnx: list[Artifact]
    targets: list[Target]
    # per arch, tower and device: the fastest target (or repaired model) that meets every gate
    deployments: list[dict]  # {arch, tower, device, backend, dir, precision, repaired, throughput_fps, reason} and
    # `hardware`, a deprecated alias of `device` (CONTRACT.md), for one release
    undeployed: list[dict]  # where nothing passes: {arch, tower, device, closest, backend, precision, reason}
    baseline: dict  # {"torch_fp32": [{"batch_size", "throughput_fps", "latency_ms", ...}]}
    config: dict
    workflow: dict  # rule costs, see load.workflow_costs
    environment: dict  # python, platform, cpu, cores, versions, backend_tools
    reproduce: dict  # {"report": command, "steps": [...]}
