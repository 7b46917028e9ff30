"""Stand-in for `python3 -m ais_bench` (tests only, never the product).

Same arguments as the real tool (argparse, so an unknown argument exits 2), same files, same lines:
- inference (`--input <dir|files>`): input files (.npy/.bin, natural order; symbolic links refused like
  recent ais_bench) are grouped by byte size into batches of the model input, as the real tool does;
  outputs go to <output>/<output_dirname>/<name>_<i>.npy where <name> is the input's file name cut at
  its first dot (`a.b.npy` -> `a_0.npy`), and <output>/<output_dirname>_summary.json beside them;
- pure inference (no --input): zeros, `--warmup_count` untimed then `--loop` timed runs;
- the real tool's path and permission rules (see security.py: ASCII-only paths, no symbolic links, inputs
  and the .om not group/other-writable, --output 0750 or stricter; STANDIN_AIS_BENCH_VERSION=2024 for the
  mid-2024 behaviour) and its bounds (--loop 1..100000, --warmup_count <= 10000, --batchsize <= 4096);
  output folders made 0750, output files 0640, like the real tool;
- both print `NPU_compute_time (ms): min = .., max = .., mean = .., median = .., percentile(99%) = ..` and
  `throughput 1000*batchsize.mean(<bs>)/NPU_compute_time.mean(<ms>): <fps>` via `[INFO]` log lines, and
  the summary JSON holds NPU_compute_time, throughput, npu_compute_time_list, filesinfo, args.
Environment: STANDIN_LOG=<file.jsonl> records each call; STANDIN_AIS_BENCH_FAIL=1 fails after loading;
- `--dump true [--dump_npy true]` (needs --output): every run's operator outputs in the real dump layout
  (class Dumper);
STANDIN_AIS_BENCH_FP16_STORAGE=1 stores every fp16 tensor in fp16 between nodes, as an NPU does (the
workflow's graph.segments.SegmentRunner, one session per node: slow), where ONNX Runtime's CPU would compute most
fp16 nodes in fp32 and hide an fp16 overflow (docs/accuracy.md).
"""
import argparse
import json
import logging
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
import standin_om  # noqa: E402
from ais_bench import security  # noqa: E402

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="[%(levelname)s] %(message)s")
logger = logging.getLogger("ais_bench")
SCALE = 99


def positive(value):
    ivalue = int(value)
    if ivalue <= 0:
        raise argparse.ArgumentTypeError(f"{value} is an invalid positive int value")
    return ivalue


def nonnegative(value):
    ivalue = int(value)
    if ivalue < 0:
        raise argparse.ArgumentTypeError(f"{value} is an invalid nonnegative int value")
    return ivalue


def device(value):
    ivalue = int(value)
    if not 0 <= ivalue <= 255:
        raise argparse.ArgumentTypeError(f"device:{value} is invalid. valid value range is [0, 255]")
    return ivalue


def loop_size(value):
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value} contains special characters other than numbers.")
    ivalue = int(value)
    if ivalue <= 0 or ivalue > security.LOOP_MAX:
        raise argparse.ArgumentTypeError(f"{value} is an invalid loop size value")
    return ivalue


def path_type(kind, perm, suffix=None):
    """args_check.check_*_path_legality: the argparse type of a path argument."""
    def check(value):
        for item in (value.split(",") if kind == "input" else [value]):
            if security.string_problem(item):
                logger.error(security.string_problem(item))
                raise argparse.ArgumentTypeError(f"{kind} path string is illegal. Please check.")
            problem = security.perm_problem(item, perm)
            if problem is None and suffix and os.path.isfile(item) and not item.endswith(suffix):
                problem = f"path:{item}, file type not in {[suffix.lstrip('.')]}"
            if problem is None and kind == "om" and os.path.getsize(item) > security.OM_MAX_BYTES:
                problem = f"file_size:{os.path.getsize(item)} byte out of max limit {security.OM_MAX_BYTES} byte"
            if problem:
                logger.error(problem)
                raise argparse.ArgumentTypeError(f"{kind} path:{item} is illegal. Please check.")
        return value
    return check


def output_type(value):
    if security.version() == "2024" and os.path.isdir(value) and not os.path.islink(value):
        os.chmod(value, 0o750)  # the mid-2024 copy tightened --output itself
    return path_type("output", "write")(value)


def str2bool(v):
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError("Boolean value expected true, 1, false, 0 with case insensitive.")


def get_args(argv):
    parser = argparse.ArgumentParser(prog="ais_bench")
    parser.add_argument("--model", "-m", type=path_type("om", "read", ".om"), required=True)
    parser.add_argument("--input", "-i", type=path_type("input", "read"), default=None)
    parser.add_argument("--output", "-o", type=output_type, default=None)
    parser.add_argument("--output_dirname", type=path_type("output", "write"), default=None)
    parser.add_argument("--outfmt", default="BIN", choices=["NPY", "BIN", "TXT"])
    parser.add_argument("--loop", "-l", type=loop_size, default=1)
    parser.add_argument("--debug", type=str2bool, default=False)
    parser.add_argument("--device", "-d", type=device, default=0)
    parser.add_argument("--batchsize", type=positive, default=None)
    parser.add_argument("--pure_data_type", type=str, default="zero", choices=["zero", "random"])
    parser.add_argument("--display_all_summary", type=str2bool, default=False)
    parser.add_argument("--warmup_count", type=nonnegative, default=1)
    parser.add_argument("--output_batchsize_axis", type=nonnegative, default=0)
    parser.add_argument("--dump", type=str2bool, default=False)
    parser.add_argument("--dump_npy", type=str2bool, default=False)
    args = parser.parse_args(argv)
    if args.warmup_count > security.WARMUP_MAX:
        raise ValueError(f"--warmup_count: {args.warmup_count} is over {security.WARMUP_MAX}")
    if args.batchsize is not None and args.batchsize > security.BATCHSIZE_MAX:
        raise ValueError(f"--batchsize: {args.batchsize} is over {security.BATCHSIZE_MAX}")
    if args.output_dirname and args.output_dirname.startswith("/"):
        raise ValueError("--output_dirname do not support abs path!")
    if args.dump and args.output is None:
        logger.error("when dump or profiler, miss output path, please check them!")
        raise RuntimeError("miss output parameter!")
    if args.output is None and args.output_dirname is not None:
        logger.error("parameter --output_dirname cann't be used alone. Please use it together with the parameter --output!\n")
        raise RuntimeError("error bad parameters --output_dirname")
    return args


def natural_sort(names):
    return sorted(names, key=lambda t: [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", t)])


def input_files(spec):
    files = []
    for item in spec.split(","):
        if os.path.islink(item):
            raise RuntimeError(f"path :{item} is a soft link, not supported, please import file(or directory) directly")
        if os.path.isdir(item):
            for name in os.listdir(item):
                path = os.path.join(item, name)
                if os.path.islink(path):
                    raise RuntimeError(f"path :{path} is a soft link, not supported, please import file(or directory) directly")
                if name.lower().endswith((".npy", ".bin")) and os.path.isfile(path):
                    problem = security.check_path(path, "read")
                    if problem:
                        logger.error(problem)
                        raise RuntimeError(f"input path:{path} is illegal. Please check.")
                    files.append(path)
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise RuntimeError(f"error {item} not file or dir")
    if not files:
        raise RuntimeError(f"{spec} of input args not find valid file,valid file format:[*.npy *.NPY *.bin *.BIN]")
    return natural_sort(files)


def load_bytes(path, np):
    if path.lower().endswith(".npy"):
        return np.load(path).tobytes()
    with open(path, "rb") as f:
        return f.read()


def stats(times, np):
    if not times:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, f"percentile({SCALE}%)": 0.0, "count": 0}
    a = np.asarray(times, dtype=np.float64)
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "median": float(np.median(a)),
            f"percentile({SCALE}%)": float(np.percentile(a, SCALE)), "count": len(times)}


class Dumper:
    """ais_bench --dump (acl.json with dump_mode all, written into --output): every run's operator outputs
    under <output>/dump/<timestamp>/<device>/<model name>/1/<run index>/, one file per operator named
    <OpType>.<op name>.<task id>.<stream id>.<time in us> (the op name is the ONNX node's, with / . \\ and
    space made _), raw bytes for the binary dump; with --dump_npy also converted, as msaccucmp does, into
    <output>/dump/<timestamp>_npy/.../<that name>.output.<index>.<shape, e.g. 1x197x768>.npy. The tensors are the model's own,
    computed node by node (locate.SegmentRunner; fp16 kept in fp16 between nodes with
    STANDIN_AIS_BENCH_FP16_STORAGE=1). Inputs of operators are not written (the real dump has them too)."""

    def __init__(self, onnx_bytes: bytes, output: str, model: str, device: int, npy: bool):
        import tempfile

        import onnx

        sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "..", "scripts"))
        from accuracy.node_view import activation_rows
        from backends.onnxruntime import graph_session
        from graph import tensor_types
        from graph.segments import SegmentRunner

        graph = onnx.load_from_string(onnx_bytes)
        types = tensor_types(graph)
        self.rows = [r for r in activation_rows(graph) if types.get(r["tensor"], 1) in (1, 10, 11)]
        self.file = tempfile.NamedTemporaryFile(suffix=".onnx")
        self.file.write(onnx_bytes)
        self.file.flush()
        storage = os.environ.get("STANDIN_AIS_BENCH_FP16_STORAGE") == "1"
        self.runner = SegmentRunner(self.file.name, [[r["tensor"] for r in self.rows]], graph_session, 1,
                                    fp16_storage=storage)
        self.root = os.path.join(output, "dump")
        security.makedirs_safe(self.root, 0o750)
        stamp = time.strftime("%Y%m%d%H%M%S")
        self.name = os.path.basename(model).rsplit(".", 1)[0]
        acl = {"dump": {"dump_path": self.root, "dump_mode": "all", "dump_list": [{"model_name": self.name}]}}
        with security.open_for_write(os.path.join(output, "acl.json"), 0o600) as f:
            f.write(json.dumps(acl, indent=4, sort_keys=True).encode())
        self.bin = os.path.join(self.root, stamp, str(device), self.name, "1")
        self.npy = os.path.join(self.root, stamp + "_npy", str(device), self.name, "1") if npy else None
        self.index = 0

    def run(self, feed):
        import numpy as np

        got = next(iter(self.runner.run(feed)))
        folders = [os.path.join(self.bin, str(self.index))] + ([os.path.join(self.npy, str(self.index))] if self.npy else [])
        for folder in folders:
            security.makedirs_safe(folder, 0o750)
        outputs: dict[str, list] = {}
        for r in self.rows:
            outputs.setdefault((r["op_type"], r["node"]), []).append(got[r["tensor"]])
        for task, ((op_type, node), arrays) in enumerate(outputs.items()):
            op = re.sub(r"[./\\ ]", "_", node)
            name = f"{op_type}.{op}.{task}.0.{int(time.time() * 1e6)}"
            with security.open_for_write(os.path.join(folders[0], name)) as f:
                f.write(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays))
            if self.npy:
                for i, a in enumerate(arrays):
                    shape = "x".join(map(str, a.shape))
                    with security.open_for_write(os.path.join(folders[1], f"{name}.output.{i}.{shape}.npy")) as f:
                        np.save(f, a)
        self.index += 1


class Fp16Storage:
    """session.run with every fp16 tensor stored in fp16 between nodes (the NPU's way), through the
    workflow's own locate.SegmentRunner (scripts/ of this checkout)."""

    def __init__(self, onnx_bytes: bytes, session):
        import tempfile

        sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "..", "scripts"))
        from backends.onnxruntime import graph_session
        from graph.segments import SegmentRunner

        self.session = session
        self.outputs = [o.name for o in session.get_outputs()]
        self.file = tempfile.NamedTemporaryFile(suffix=".onnx")
        self.file.write(onnx_bytes)
        self.file.flush()
        self.runner = SegmentRunner(self.file.name, [self.outputs], graph_session, 1, fp16_storage=True)

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, _names, feed):
        got = next(iter(self.runner.run(feed)))
        return [got[o] for o in self.outputs]


def main(argv):
    standin_om.record("ais_bench")
    args = get_args(argv)
    import numpy as np
    import onnxruntime as ort

    header, onnx_bytes = standin_om.read_om(args.model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, sess_options=so, providers=["CPUExecutionProvider"])
    if os.environ.get("STANDIN_AIS_BENCH_FP16_STORAGE") == "1":
        session = Fp16Storage(onnx_bytes, session)
    logger.info("acl init success")
    logger.info(f"open device {args.device} success")
    logger.info(f"load model {args.model} success")
    logger.info("create model description success")
    (inp,) = session.get_inputs()
    shape = [int(d) for d in inp.shape]
    dtype = {"tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(
        inp.type, np.float32)
    realsize = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if args.batchsize is None:
        args.batchsize = shape[0]
        logger.info(f"try get model batchsize:{args.batchsize}")
    if os.environ.get("STANDIN_AIS_BENCH_FAIL") == "1":
        logger.error("aclmdlExecute failed, ret[507011] (stand-in: STANDIN_AIS_BENCH_FAIL=1)")
        return 1

    output_prefix = None
    if args.output is not None:
        dirname = args.output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S")
        output_prefix = os.path.join(args.output, dirname)
        if not os.path.exists(output_prefix):
            security.makedirs_safe(output_prefix, 0o750)
        else:
            problem = security.check_path(output_prefix, "read")
            if problem:
                logger.error(problem)
                raise RuntimeError(f"output path:{output_prefix} is illegal. Please check.")
        logger.info(f"output path:{output_prefix}")

    # batches: lists of files whose bytes together fill one model input (the real grouping, by size)
    if args.input is None:
        batches = [(None, np.zeros(shape, dtype) if args.pure_data_type == "zero"
                    else np.random.default_rng(0).random(shape).astype(dtype))]
    else:
        batches, group, filled = [], [], b""
        for path in input_files(args.input):
            data = load_bytes(path, np)
            if realsize % len(data):
                raise RuntimeError(f"file:{path} size:{len(data)} not match model input size:{realsize}")
            group.append(path)
            filled += data
            if len(filled) == realsize:
                batches.append((group, np.frombuffer(filled, dtype=dtype).reshape(shape)))
                group, filled = [], b""
        if group:  # the real tool pads the last batch with the last file
            while len(filled) < realsize:
                filled += load_bytes(group[-1], np)
            batches.append((group, np.frombuffer(filled, dtype=dtype).reshape(shape)))

    dumper = Dumper(onnx_bytes, args.output, args.model, args.device, args.dump_npy) if args.dump else None
    for _ in range(args.warmup_count):
        session.run(None, {inp.name: batches[0][1]})
        if dumper:
            dumper.run({inp.name: batches[0][1]})
    logger.info(f"warm up {args.warmup_count} done")

    times, filesinfo = [], {}
    for i, (files, batch) in enumerate(batches):
        for _ in range(args.loop):
            start = time.perf_counter()
            outputs = session.run(None, {inp.name: batch})
            times.append((time.perf_counter() - start) * 1000.0)
            if dumper:
                dumper.run({inp.name: batch})
        if output_prefix is None:
            continue
        infiles = files or ["pure_infer_data"]
        filesinfo[i] = {"infiles": infiles, "outfiles": []}
        for j, out in enumerate(outputs):
            parts = np.split(out, len(infiles), axis=args.output_batchsize_axis) if len(infiles) > 1 else [out]
            for name, part in zip(infiles, parts):
                stem = os.path.basename(name).split(".")[0]  # everything from the first dot is dropped
                path = os.path.join(output_prefix, f"{stem}_{j}")
                if args.outfmt == "NPY":
                    with security.open_for_write(path + ".npy") as f:  # 0640, like ms_open
                        np.save(f, part)
                    path += ".npy"
                elif args.outfmt == "BIN":
                    part.tofile(path + ".bin")
                    path += ".bin"
                else:
                    np.savetxt(path + ".txt", part.reshape(-1))
                    path += ".txt"
                filesinfo[i]["outfiles"].append(path)

    npu = stats(times, np)
    throughput = 0 if npu["mean"] == 0 else 1000 * args.batchsize / npu["mean"]
    logger.info("-----------------Performance Summary------------------")
    logger.info("NPU_compute_time (ms): min = {0}, max = {1}, mean = {2}, median = {3}, percentile({4}%) = {5}".format(
        npu["min"], npu["max"], npu["mean"], npu["median"], SCALE, npu[f"percentile({SCALE}%)"]))
    logger.info("throughput 1000*batchsize.mean({})/NPU_compute_time.mean({}): {}".format(
        args.batchsize, npu["mean"], throughput))
    logger.info("------------------------------------------------------")
    if output_prefix is not None:
        summary = {"filesinfo": filesinfo, "args": [sys.argv[0], *argv], "NPU_compute_time": npu,
                   "H2D_latency": stats([], np), "D2H_latency": stats([], np), "throughput": throughput,
                   "npu_compute_time_list": times, "pid": os.getpid()}
        with security.open_for_write(output_prefix + "_summary.json") as f:
            f.write(json.dumps(summary).encode())
    logger.info("unload model success, model Id is 1")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (RuntimeError, ValueError) as exc:
        logger.error(str(exc))
        sys.exit(1)
