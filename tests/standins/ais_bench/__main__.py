"""Stand-in for `python3 -m ais_bench` (tests only, never the product).

Same arguments as the real tool (argparse, so an unknown argument exits 2), same files, same lines:
- inference (`--input <dir|files>`): input files (.npy/.bin, natural order; symbolic links refused like
  recent ais_bench) are grouped into batches of the model input as the real tool does (io_operations: the
  first file's size divides the input's size into files per batch, the last batch is padded with its first
  file's bytes, and each output is split back per file, the padding's part dropped);
  outputs go to <output>/<output_dirname>/<name>_<i>.npy where <name> is the input's file name cut at
  its first dot (`a.b.npy` -> `a_0.npy`), and <output>/<output_dirname>_summary.json beside them (its
  filesinfo per sample: {"0": {"infiles": [file], "outfiles": [...]}, ...});
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

Dynamic batch, several devices, H2D/D2H figures, AIPP and the cube precision mode, modelled on the real front
end (gitee Ascend/tools ais-bench_workload/tool/ais_bench/ais_bench/infer/*.py, read in the Yanguan619/aclruntime
mirror at 3eab4a9~1) and its aclruntime C++ (ais-bench_workload/tool/ais_bench/backend/ of the same tree):
- `--dymBatch N` (dest dym_batch; args_check.check_positive_integer, at most 4096 per
  utils.check_int_args_max_limit): on a .om whose header has "dynamic_batch_size", N must be one of its
  gears (model_process.cpp CheckDynamicBatchSize: "[ERROR] the dymBatch parameter is not correct", then
  "[ERROR] model has dynamic batch size:{[1][2][4]}, please set correct dynamic batch size", and the
  RuntimeError "[1][ACL: invalid parameter] " of PyInferenceSession::SetDynamicBatchsize); on a static .om it
  fails with "[ERROR] the dynamic_batch_size parameter is not specified for model conversion". The input
  then holds N (realsize: the N-batch bytes, which also group the --input files) and --batchsize defaults
  to N (miscellaneous.get_batchsize). A dynamic .om without --dymBatch fails in set_session_options with
  'dynamic batch om model detected, but dymbatch, dymdims or dymshape not set!' (with an explicit
  --batchsize the real tool goes on to aclmdlExecute without aclmdlSetDynamicBatchSize, which CANN documents
  as required; the stand-in refuses that too).
- `--device 0,1` (args_check.check_device_range_valid: integers 0..255, at most 256 of them, "0,x" refused):
  infer_process.multidevice_run, one process per device (a multiprocessing Pool, as the real tool), each
  running the whole model on all inputs, waiting for the others (up to 10 s) before inferring, and writing
  to <output>/<output_dirname>/device{dev}_{i}/ with its summary <output>/<output_dirname>/device{dev}_{i}_summary.json
  (main(): output_prefix per device; summary.report writes output_prefix + "_summary.json"); each prints
  its own Performance Summary; then the parent prints `multidevice run end qsize:.. result:..`, one
  `i:{i} device_{dev} throughput:{tp}                 start_time:{t0} end_time:{t1}` line per device that
  finished (the real f-string's line continuation keeps 17 spaces) and `summary throughput:{sum}`, and exits
  1 unless every device reported. STANDIN_AIS_BENCH_FAIL_DEVICE=<dev> makes that device's inference fail.
- H2D/D2H: the summary JSON always holds H2D_latency and D2H_latency ({min, max, mean, median,
  percentile(99%), count}); `--display_all_summary true` prints `H2D_latency (ms): ...` before and
  `D2H_latency (ms): ...` after the NPU_compute_time line (summary.display). Counts, as the real default
  path makes them: warm-up copies are dropped (warmup() resets MemorySummary); then each batch is copied to
  the device once per input (the array loop hands session.run a host array, InferBaseTensorVector copies it
  with CopyMemory2DeviceMemory; the tensor loop copies it once in create_tensor_from_arrays_to_device), the
  --loop runs of that batch execute on the device-side copy (LoopInference inside session.run), and each
  output comes back once (convert_tensors_to_host). So pure inference records 1 H2D and 1 D2H per output,
  whatever --loop is, and --input with B batches records B of each (per input / per output). Each copy is
  a real numpy copy of the same bytes timed with time.perf_counter (ais_bench/npu.py).
- AIPP (header "aipp"): the input is uint8 NHWC [N, H, W, 3] (zeros in pure inference, realsize N*H*W*3);
  each run applies AIPP's arithmetic in fp16 before the ONNX (ais_bench/npu.py aipp).
- cube_fp16in_fp32out (header precision_mode_v2, or precision_mode cube_fp16in_fp32out / force_fp32): the
  ONNX runs with every float input of MatMul, Gemm and Conv rounded to fp16 (ais_bench/npu.py cube_graph).
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
PADDING = "padding_infer_fake_file"  # io_operations.PADDING_INFER_FAKE_FILE: no file, no output


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


DEVICE_COUNT_MAX = 256
CPP_INT_MAX = 2 ** 31 - 1
DYMBATCH_MAX = 4096


def device(value):
    """args_check.check_device_range_valid: one id, or a comma-separated list of ids, each 0..255."""
    try:
        if "," in value:
            ilist = [int(v) for v in value.split(",")]
            if len(ilist) > DEVICE_COUNT_MAX:
                raise argparse.ArgumentTypeError(f"too much device id in --device, max permitted count is {DEVICE_COUNT_MAX}")
            for ivalue in ilist:
                if not 0 <= ivalue <= 255:
                    raise argparse.ArgumentTypeError(f"{ivalue} of device:{value} is invalid. valid value range is [0, 255]")
            return ilist
        if not value.isdigit():
            raise argparse.ArgumentTypeError(f"{value} contains special characters other than numbers.")
        ivalue = int(value)
        if ivalue > 255:
            raise argparse.ArgumentTypeError(f"device:{ivalue} is invalid. valid value range is [0, 255]")
        return ivalue
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"Argument npu-id invalid input value: {value}. Please provide a valid integer or "
                                         f"a comma-separated list of integers.") from err


def positive_integer(value):
    """args_check.check_positive_integer (the type of --dymBatch)."""
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value} contains special characters other than numbers.")
    ivalue = int(value)
    if ivalue <= 0:
        raise argparse.ArgumentTypeError(f"{value} is an invalid positive int value")
    if ivalue > CPP_INT_MAX:
        raise argparse.ArgumentTypeError(f"{value} is an invalid cpp int value")
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
    parser.add_argument("--dymBatch", dest="dym_batch", type=positive_integer, default=0)
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
    if args.dym_batch > DYMBATCH_MAX:
        raise ValueError(f"--dymBatch: {args.dym_batch} is over {DYMBATCH_MAX}")
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
    if isinstance(args.device, list):  # infer_process: several devices, one process each
        return multidevice_run(args, argv)
    return infer(args, argv)


def aclruntime_failed(*errors):
    """What aclruntime prints (its ERROR_LOG lines, then CHECK_RET_EQ's warning) before
    PyInferenceSession::SetDynamicBatchsize raises RuntimeError(GetError(1))."""
    for line in errors:
        logger.error(line)
    print("[WARN] Check failed:processModel->CheckDynamicBatchSize(batchsize, is_dymbatch), ret:1\n", flush=True)
    return RuntimeError("[1][ACL: invalid parameter] ")


def set_session_options(args, header, desc):
    """infer_process.set_session_options for --dymBatch (else the static batch) and get_batchsize."""
    gears = header.get("dynamic_batch_size") or []
    if args.dym_batch:
        if not gears:
            raise aclruntime_failed("the dynamic_batch_size parameter is not specified for model conversion")
        if args.dym_batch not in gears:
            raise aclruntime_failed("the dymBatch parameter is not correct",
                                    "model has dynamic batch size:{" + "".join(f"[{g}]" for g in gears) +
                                    "}, please set correct dynamic batch size")
        desc.set_batch(args.dym_batch)
    if args.batchsize is None:
        args.batchsize = desc.shape[0]  # get_batchsize: the --dymBatch value, else the model's batch axis
        logger.info(f"try get model batchsize:{args.batchsize}")
    if args.batchsize < 0 and not args.dym_batch:
        raise RuntimeError("dynamic batch om model detected, but dymbatch, dymdims or dymshape not set!")
    if gears and not args.dym_batch:
        raise RuntimeError("dynamic batch om model run without --dymBatch: aclmdlExecute needs aclmdlSetDynamicBatchSize "
                           "first (CANN docs, --dynamic_batch_size); the stand-in refuses it")


def wait_for_devices(index, msgq, count):
    """main(): a device process says it is ready and waits (at most ~10 s) for the others."""
    logger.info(f"subprocess_{index} qsize:{msgq.qsize()} now waiting")
    msgq.put(index)
    deadline = time.time() + 10
    while msgq.qsize() < count and time.time() < deadline:
        time.sleep(0.05)
    logger.info(f"subprocess_{index} qsize:{msgq.qsize()} ready to infer run")


def infer(args, argv, index=0, msgq=None, device_list=None):
    """infer_process.main for one device (index, msgq and device_list when one of several)."""
    if msgq is not None:
        logger.info(f"subprocess_{index} main run")
    import numpy as np
    import onnxruntime as ort

    from ais_bench import npu

    header, onnx_bytes = standin_om.read_om(args.model)
    if npu.cube_mode(header):
        onnx_bytes = npu.cube_graph(onnx_bytes)
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
    desc = npu.om_input(header, inp)
    onnx_dtype = npu.DTYPES.get(inp.type, np.float32)
    set_session_options(args, header, desc)
    shape, dtype, realsize = desc.shape, desc.dtype, desc.realsize
    if os.environ.get("STANDIN_AIS_BENCH_FAIL") == "1":
        logger.error("aclmdlExecute failed, ret[507011] (stand-in: STANDIN_AIS_BENCH_FAIL=1)")
        return 1

    output_prefix = None
    if args.output is not None:
        dirname = args.output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S")
        output_prefix = os.path.join(args.output, dirname)
        if device_list is not None and len(device_list) > 1:
            output_prefix = os.path.join(output_prefix, f"device{device_list[index]}_{index}")
        if not os.path.exists(output_prefix):
            security.makedirs_safe(output_prefix, 0o750)
        else:
            problem = security.check_path(output_prefix, "read")
            if problem:
                logger.error(problem)
                raise RuntimeError(f"output path:{output_prefix} is illegal. Please check.")
        logger.info(f"output path:{output_prefix}")

    # batches: (the files of one model input, their bytes). io_operations.get_files_count_per_batch: the first
    # file's size divides the input's realsize into files per batch; list_split pads the last batch with
    # PADDING marks, whose bytes are the batch's first file (get_narray_from_files_list)
    per_batch = 1
    if args.input is None:
        if args.pure_data_type == "zero":
            pure = np.zeros(shape, dtype)
        elif dtype == np.uint8:
            pure = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        else:
            pure = np.random.default_rng(0).random(shape).astype(dtype)
        batches = [(["pure_infer_data"], pure)]
    else:
        files = input_files(args.input)
        first = len(load_bytes(files[0], np))
        if first == 0 or realsize % first:
            raise RuntimeError(f"arg0 tensorsize: {realsize} filesize: {first} not match")
        per_batch, batches = realsize // first, []
        for k in range(0, len(files), per_batch):
            group = files[k:k + per_batch]
            data = b"".join(load_bytes(path, np) for path in group)
            data += load_bytes(group[0], np) * (per_batch - len(group))
            if len(data) != realsize:
                raise RuntimeError(f"ndata size:{len(data)} not match {realsize}" if per_batch > 1 else
                                   f"check i:0 name:{desc.name} in size:{len(data)} needsize:{realsize} not match")
            batches.append((group + [PADDING] * (per_batch - len(group)),
                            np.frombuffer(data, dtype=dtype).reshape(shape)))

    def feed(batch):  # what the model's first operator gets: the AIPP unit's output, or the input itself
        return {inp.name: npu.aipp(batch, desc.aipp, onnx_dtype) if desc.aipp else batch}

    dumper = Dumper(onnx_bytes, args.output, args.model, args.device, args.dump_npy) if args.dump else None
    for _ in range(args.warmup_count):
        session.run(None, feed(batches[0][1]))
        if dumper:
            dumper.run(feed(batches[0][1]))
    logger.info(f"warm up {args.warmup_count} done")  # after it: the summary and MemorySummary are reset

    if msgq is not None:
        wait_for_devices(index, msgq, len(device_list))
    if os.environ.get("STANDIN_AIS_BENCH_FAIL_DEVICE") == str(args.device):
        raise RuntimeError(f"aclmdlExecute failed, ret[507011] (stand-in: STANDIN_AIS_BENCH_FAIL_DEVICE={args.device})")
    times, h2d, d2h, filesinfo = [], [], [], {}
    on_device = np.empty(shape, dtype)
    start_time = time.time()
    for i, (files, batch) in enumerate(batches):
        h2d.append(npu.copy_ms(batch, on_device)[1])  # one H2D copy per input and batch
        for _ in range(args.loop):
            start = time.perf_counter()
            outputs = session.run(None, feed(on_device))
            times.append((time.perf_counter() - start) * 1000.0)
            if dumper:
                dumper.run(feed(on_device))
        copies = [npu.copy_ms(out) for out in outputs]  # one D2H copy per output and batch
        outputs = [copy for copy, _ in copies]
        d2h.extend(ms for _, ms in copies)
        if output_prefix is None:
            continue
        for j, out in enumerate(outputs):  # io_operations.save_tensors_to_file
            if per_batch > 1 and out.shape[args.output_batchsize_axis] % per_batch:
                raise RuntimeError(f"save out files error array shape:{out.shape} files_count_perbatch:{per_batch}")
            for k, (name, part) in enumerate(zip(files, np.array_split(out, per_batch, args.output_batchsize_axis))):
                if name == PADDING:
                    continue
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
                info = filesinfo.setdefault(i * per_batch + k, {"infiles": [name], "outfiles": []})  # per sample
                info["outfiles"].append(path)
    end_time = time.time()

    npu_time, h2d_latency, d2h_latency = stats(times, np), stats(h2d, np), stats(d2h, np)
    throughput = 0 if npu_time["mean"] == 0 else 1000 * args.batchsize / npu_time["mean"]
    line = "{0} (ms): min = {1}, max = {2}, mean = {3}, median = {4}, percentile({5}%) = {6}"

    def show(name, figures):
        logger.info(line.format(name, figures["min"], figures["max"], figures["mean"], figures["median"], SCALE,
                                figures[f"percentile({SCALE}%)"]))

    logger.info("-----------------Performance Summary------------------")
    if args.display_all_summary:
        show("H2D_latency", h2d_latency)
    show("NPU_compute_time", npu_time)
    if args.display_all_summary:
        show("D2H_latency", d2h_latency)
    logger.info("throughput 1000*batchsize.mean({})/NPU_compute_time.mean({}): {}".format(
        args.batchsize, npu_time["mean"], throughput))
    logger.info("------------------------------------------------------")
    if output_prefix is not None:
        summary = {"filesinfo": filesinfo, "args": [sys.argv[0], *argv], "NPU_compute_time": npu_time,
                   "H2D_latency": h2d_latency, "D2H_latency": d2h_latency, "npu_compute_time_list": times,
                   "throughput": throughput, "pid": os.getpid()}
        with security.open_for_write(output_prefix + "_summary.json") as f:
            f.write(json.dumps(summary).encode())
    if msgq is not None:
        msgq.put([index, throughput, start_time, end_time])
    logger.info("unload model success, model Id is 1")
    return 0


def multidevice_run(args, argv):
    """infer_process.multidevice_run: a Pool of one process per device, a queue each process puts its index
    on when ready and [index, throughput, start, end] when done; result 0 only if all 2 * n messages came."""
    import copy
    import multiprocessing

    logger.info(f"multidevice:{args.device} run begin")
    device_list = args.device
    sys.stdout.flush()
    ctx = multiprocessing.get_context("fork")
    manager = ctx.Manager()
    msgq = manager.Queue()
    pool = ctx.Pool(len(device_list))
    for i, dev in enumerate(device_list):
        cur = copy.deepcopy(args)
        cur.device = int(dev)
        pool.apply_async(infer, args=(cur, argv, i, msgq, device_list),
                         error_callback=lambda err: logger.error(f"subprocess run failed error_callback:{err}"))
    pool.close()
    pool.join()
    qsize = msgq.qsize()
    result = 0 if 2 * len(device_list) == qsize else 1
    logger.info(f"multidevice run end qsize:{qsize} result:{result}")
    tlist = []
    while msgq.qsize() != 0:
        ret = msgq.get()
        if isinstance(ret, list):
            logger.info(f"i:{ret[0]} device_{device_list[ret[0]]} throughput:{ret[1]} {' ' * 16}start_time:{ret[2]} "
                        f"end_time:{ret[3]}")
            tlist.append(ret[1])
    logger.info(f"summary throughput:{sum(tlist)}")
    manager.shutdown()
    return result


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (RuntimeError, ValueError) as exc:
        logger.error(str(exc))
        sys.exit(1)
