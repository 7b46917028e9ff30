"""The rows every view shares (Markdown, HTML, CSV, bench/summary.py's reader): facts picked from
report.json and formatted once, so the views cannot disagree. A table is {"head", "rows", "numeric"
(column indexes aligned right), "row_class"}; a cell is a string or a Cell with a style the
renderer maps to its own markup."""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import backends
from pipeline.paths import STAGES

from .load import UNDER_LOAD, target_gates, under_load
from .model import Performance, Report, Target
from .reproduce import yaml_flow

def stage_description(stage: str) -> str:
    """What each stage of the chain (paths.STAGES) is, naming the reference runtime (backends.reference())."""
    runtime = backends.reference().LABEL
    return {"torch_fp32": "cn_clip PyTorch model, fp32 (ground truth)",
            "onnx_fp32": f"fp32 ONNX on {runtime}",
            "onnx_fp16": f"fp16 ONNX on {runtime} (the seed's online reference)",
            "offline": "the compiled model on the target"}[stage]
WORST_N = 10  # images listed by name per target; the others are summed up as a distribution
QUANTILES = (("worst", 0.0), ("1%", 0.01), ("5%", 0.05), ("median", 0.5), ("best", 1.0))
ZERO_SHOT_HEAD = ["target", "stage vs torch_fp32", "top-1 agreement", "largest prob change", "bound",
                  "Spearman min", "image→text R@1 agreement", "text→image R@1 agreement", "result"]
COST_NOTE = ("Each job's wall time and peak resident memory as Snakemake's benchmark: directive recorded them "
             "(benchmarks/); one job at a time with -c1, so the run's peak is the largest job's.")
FIGURES = {  # name: (title, caption), in the order the report shows them
    "accuracy_chain": ("Precision chain", "1 − cosine against the PyTorch fp32 model at each stage, log scale: each "
                       "stage's added drift is the step from the point before. Bold: worst image; band: 90% of "
                       "the images; red band: below the gate (FAIL)."),
    "throughput": ("Throughput", "Images per second per batch size, the offline model beside the PyTorch fp32 "
                   "model measured in the same job; the speed-up is written over the offline bar, the host's "
                   "matmul ceilings in the title."),
    "accuracy_vs_speed": ("Accuracy versus speed", "One point per target: throughput at its best batch size "
                          "(log) against its worst image's 1 − cosine vs PyTorch fp32; red line: the gate."),
    "per_image": ("Accuracy per image", "Per target: the distribution of 1 − cosine over every image for each pair "
                  f"of stages, and the {WORST_N} worst images by name; red lines: the gates."),
    "latency": ("Latency", "Milliseconds per batch: mean (hatched), p50, p90, p99."),
}


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""  # pass, fail (a verdict), bold, mono, hash, note


def table(head: list[str], rows: list[list], numeric=(), row_class: list[str] | None = None) -> dict:
    return {"head": head, "rows": rows, "numeric": set(numeric), "row_class": row_class or [""] * len(rows)}


def num(value, fmt: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{suffix}"


def size(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def drift_label(cosine: float | None) -> str:
    """1 - cosine (plots.drift) as text, the distance from a perfect match, readable where 0.99999999 is not."""
    if cosine is None:
        return "n/a"
    d = 1.0 - cosine
    return "0" if d <= 0 else f"{d:.1e}"


def verdict(passed: bool) -> Cell:
    return Cell("PASS", "pass") if passed else Cell("FAIL", "fail")


def models(r: Report) -> list[dict]:
    return r.get("models") or [r["model"]]


def archs(r: Report) -> str:
    return ", ".join(m["arch"] for m in models(r))


def title(r: Report) -> str:
    return f"Chinese-CLIP deployment report: {archs(r)}"


def target_passed(t: Target) -> bool:
    return all(g["passed"] for g in target_gates(t))


def verdict_line(r: Report) -> str:
    n = len(r["targets"])
    names = ", ".join(t["name"] for t in r["targets"])
    return (f"{r['gates_passed']} of {r['gates_total']} accuracy gates met on {n} target{'s' * (n != 1)} "
            f"({names})")


# ---- accuracy -------------------------------------------------------------------------------

def gate_rows(r: Report) -> list[dict]:
    """Every cosine gate of every target, flattened."""
    return [{"target": t["name"], **g} for t in r["targets"] for g in target_gates(t) if g.get("kind") != "zero_shot"]


def is_cosine(g: dict) -> bool:
    """A cosine gate (similarity's own), not a ranking (kind "ranking") or zero-shot gate."""
    return not g.get("kind")


def cosine_gates(t: Target) -> dict:
    """{(a, b): gate} of a target's cosine gates."""
    return {(g["a"], g["b"]): g for g in t["accuracy"]["gates"] if is_cosine(g)}


def measure(g: dict) -> str:
    return "cosine min" if is_cosine(g) else g.get("measure") or g["kind"]


def value(g: dict) -> str:
    return num(g.get("cosine_min"), ".8f") if is_cosine(g) else num(g.get("value"), ".4f")


def _gate_cells(g: dict) -> list:
    return [f"{g['threshold']}", value(g), drift_label(g.get("cosine_min")) if is_cosine(g) else "",
            g.get("worst_image", "n/a"), verdict(g["passed"])]


def deployments_table(r: Report) -> dict | None:
    """The deployment chosen per arch, tower and device (reporting.deploy), and where none passes."""
    chosen, missing = r.get("deployments") or [], r.get("undeployed") or []
    if not chosen and not missing:
        return None
    rows = [[f"{d['arch']} {d['tower']}", d["device"], Cell(f"{d['backend']} {d['precision']}"
                                                             + (" (repaired)" if d["repaired"] else ""), "pass"),
             num(d.get("throughput_fps"), ".2f") + (f" (batch {d['fastest_batch_size']}"
                                                   + (" on the dynamic-batch model" if d.get("fastest_dynamic_batch")
                                                      else "") + ")" if d.get("fastest_batch_size") else ""),
             d["reason"]] for d in chosen]
    rows += [[f"{u['arch']} {u['tower']}", u["device"], Cell("none", "fail"), "n/a", u["reason"]] for u in missing]
    return table(["model", "device", "deployment", "images/s", "why"], rows, numeric={3})


def gates_table(r: Report) -> dict:
    """Every cosine and ranking gate of every target (the zero-shot gates have their own table)."""
    gates = gate_rows(r)
    return table(["target", "a", "b", "measure", "threshold", "value", "1 − cosine", "worst image", "result"],
                 [[g["target"], g["a"], g["b"], measure(g), *_gate_cells(g)] for g in gates],
                 numeric={4, 5, 6}, row_class=["" if g["passed"] else "fail" for g in gates])


def target_gates_table(t: Target) -> dict:
    """The summary card's gates of one target."""
    gates = t["accuracy"]["gates"]
    return table(["gate", "needs", "worst", "1 − cos", "worst image", "result"],
                 [[f"{g['a']} vs {g['b']}" + ("" if is_cosine(g) else f" ({measure(g)})"), *_gate_cells(g)]
                  for g in gates], numeric={2, 3}, row_class=["" if g["passed"] else "fail" for g in gates])


def failed_banners(r: Report) -> dict[str, list[str]]:
    """{banner title: one line per missed gate}, for the banners at the top."""
    return {"FAIL": [f"{g['target']}: {g['a']} vs {g['b']} {measure(g)} {value(g)} below {g['threshold']} "
                     f"(worst image {g.get('worst_image', 'n/a')})" for g in gate_rows(r) if not g["passed"]],
            "FAIL (zero-shot)": [f"{z['target']}: {z['stage']} top-1 agreement {z['top1_agreement']:.0%}, largest "
                                 f"probability change {z['max_prob_change']:.3g} (bound {z['threshold']})"
                                 for z in zero_shot_rows(r) if not z["passed"]]}


def ranking_table(t: Target) -> dict | None:
    """The ranking each stage keeps against torch_fp32 (similarity's `ranking` section), when measured."""
    stages = (t["accuracy"].get("ranking") or {}).get("stages") or {}
    rows = [[stage, what.replace("_", "-"), num(m.get("spearman_min"), ".4f"), num(m.get("top1_agreement"), ".0%"),
             f"{num(m.get('mean_pairwise_cosine'), '.4f')} ({num(m.get('mean_pairwise_cosine_reference'), '.4f')})"
             if "mean_pairwise_cosine" in m else ""]
            for stage, entry in stages.items() for what, m in entry.items()]
    return table(["stage vs torch_fp32", "ranking", "Spearman min", "top-1 agreement",
                  "mean cosine between images (torch_fp32)"], rows, numeric={2, 3, 4}) if rows else None


# ---- locate and repair ------------------------------------------------------------------------

def link(path: str | None, base: str | os.PathLike = ".") -> Cell | str:
    """A file of the run as a link relative to the folder the report is written to."""
    if not path:
        return "n/a"
    return Cell(Path(os.path.relpath(path, base)).as_posix(), "link")


def _cos(value) -> str:
    return "inf/NaN" if value is None else f"{value:.6f}"


def _node(n: dict | None) -> str:
    if not n:
        return "none"
    block = f", block {n['block']}" if n.get("block") is not None else ""
    return f"{n['node']} ({n['op_type']}, depth {n['depth']}{block})"


def _err(x: dict) -> str:
    return "inf/NaN" if x.get("nonfinite") else f"{x['error']:.3g}"


def locate_table(t: Target, base: str | os.PathLike = ".") -> dict | None:
    """Where the target's precision loses accuracy (locate.json), when located."""
    loc = t.get("locate")
    if not loc:
        return None
    jump = loc.get("first_jump")
    causes = loc.get("causes") or {}
    units = [u for u in causes.get("units") or [] if u["error"] > 0]
    nodes = [n for n in causes.get("nodes") or [] if n["error"] > 0]
    top = loc.get("top_cause")
    measured = [["cause", Cell(f"{top['unit']} ({top['method']})", "fail") if top
                 else Cell("none named: the measurement cannot tell", "note")],
                ["why", causes.get("why") or "n/a"],
                ["each unit alone at the target's precision (1 − cosine min)",
                 ", ".join(f"{u['unit']} {_err(u)}" for u in units[:3]) or "none"]] if causes else []
    if causes.get("complement"):
        measured.append(["each unit alone in fp32, the rest reduced (1 − cosine min)",
                         ", ".join(f"{u['unit']} {_err(u)}" for u in causes["complement"][:3])])
    if causes:
        tied = causes.get("tied_nodes") or []
        measured += [["worst nodes of the cause", ("tied: " + ", ".join(tied[:4]) + (" …" if len(tied) > 4 else ""))
                      if tied else ", ".join(f"{n['node']} ({n['op_type']}) {_err(n)}" for n in nodes[:3]) or "n/a"],
                     ["first jump beside it", ("agrees" if top["first_jump"]["agrees"] else "differs: "
                                               + str(top["first_jump"]["unit"]))
                      if top and top.get("first_jump") else "n/a"],
                     ["measured with", f"{causes.get('builds')} builds on {causes.get('inputs')} input(s)"]]
    shares = [o for o in loc.get("op_types") or [] if o["share"] > 0]
    ops = ", ".join(f"{o['op_type']} {o['share']:.1%}" for o in shares[:1] + [o for o in shares[1:] if o["share"] >= 5e-4])
    ops = ops or "none"
    blocks = ", ".join(f"{b['block']}" for b in loc.get("blocks") or []) or "n/a"
    overflow = loc.get("overflow_nodes") or []
    rows = measured + [["first jump (node by node)", Cell(_node(jump), "fail") if jump else "none"],
            ["its 1 − cosine", f"{jump['one_minus_cosine']:.3g}" + (" (new inf/NaN)" if jump.get("nonfinite_new") else "")
             if jump else "n/a"],
            ["first inf/NaN", _node(loc.get("first_nonfinite"))],
            ["op types carrying the error", ops],
            ["worst blocks", blocks],
            ["past fp16's range (65504)", f"{len(overflow)} node(s): " + ", ".join(overflow[:6])
             + (" …" if len(overflow) > 6 else "") if overflow else "none"],
            ["compared", f"{loc.get('tensors_compared')} tensors over {loc.get('inputs')} input(s)"
             + (", fp16 stored between nodes" if loc.get("fp16_storage") else "")
             + (f"; from {loc['source']}" if loc.get("source") else "")],
            ["per node (CSV)", link(loc.get("csv"), base)],
            ["error against depth (chart)", link(loc.get("chart"), base)]]
    return table(["locate", "value"], rows)


def repair_table(t: Target, base: str | os.PathLike = ".") -> dict | None:
    """Before and after the repair (repair.json), when repaired."""
    rep = t.get("repair")
    if not rep:
        return None
    before, after = rep.get("before") or {}, rep.get("after") or {}
    result = ("repaired" if rep.get("repaired") else "gate already met, nothing kept") if rep.get("passed") \
        else "not repaired"
    kept = rep.get("kept") or []
    speed = rep.get("speed")
    rows = [["result", Cell(result, "pass" if rep.get("passed") else "fail")],
            [f"before: cosine min vs torch_fp32 (gate {rep.get('gate')})",
             _cos(before.get("cosine_min")) + (f", {before['nonfinite']} inf/NaN" if before.get("nonfinite") else "")],
            ["after", _cos(after.get("cosine_min")) + (f", {after['nonfinite']} inf/NaN" if after.get("nonfinite") else "")],
            ["kept in fp32", f"{len(kept)} node(s)" + (f" in {', '.join(rep['kept_units'])}" if rep.get("kept_units")
                                                       else "")
             + (f", and {len(rep['closure'])} that move, cast or carry their values (closure)" if rep.get("closure")
                else "")],
            ["which", ", ".join(kept[:8]) + (" …" if len(kept) > 8 else "") if kept else "none"],
            ["steps", f"{rep.get('grown')} grown (to {rep.get('grown_to')} nodes), {rep.get('shrunk')} shrink trials; "
                      f"{rep.get('builds')} builds" + (f"; {rep['reason']}" if rep.get("reason") else "")],
            ["speed (batch 1, median)", _speed(speed) if speed else "not measured"],
            ["repaired model", link(rep.get("model"), base)],
            ["kept nodes (for the backend's tool)", link(rep.get("kept_file"), base)]]
    if rep.get("kept_command"):
        rows.append(["builds the repaired target", " ".join(rep["kept_command"])])
    for gate in rep.get("not_acted_on") or []:
        rows.append(["gate not acted on", Cell(gate["why"], "fail")])
    return table(["repair", "value"], rows)


def _speed(speed: dict) -> str:
    ms = speed["latency_ms_p50"]
    return (f"{ms['unrepaired']:.2f} ms unrepaired → {ms['repaired']:.2f} ms repaired (×{speed['repaired_vs_unrepaired']:.2f}); "
            f"fp32 {ms['fp32']:.2f} ms (repaired ×{speed['repaired_vs_fp32']:.2f} of it); {speed.get('measured_on', '')}")


def zero_shot_rows(r: Report) -> list[dict]:
    """Per target and stage: the zero-shot and retrieval agreement with torch_fp32 and its gate."""
    rows = []
    for t in r["targets"]:
        z = t.get("zero_shot")
        if not z:
            continue
        gates = {g["a"]: g for g in z["gates"]}
        for stage, m in z["stages"].items():
            g = gates.get(stage, {})
            rows.append({"target": t["name"], "stage": stage, "top1_agreement": m["top1_agreement"],
                         "max_prob_change": m["max_prob_change"], "spearman_min": m["spearman_min"],
                         "i2t": m["image_to_text_recall1_agreement"], "t2i": m["text_to_image_recall1_agreement"],
                         "threshold": g.get("threshold"), "passed": g.get("passed")})
    return rows


def zero_shot_labels(r: Report) -> list[str]:
    return next((t["zero_shot"]["labels"] for t in r["targets"] if t.get("zero_shot")), [])


def zero_shot_table(r: Report) -> dict:
    zs = zero_shot_rows(r)
    return table(ZERO_SHOT_HEAD, [[z["target"], z["stage"], f"{z['top1_agreement']:.0%}",
                                   f"{z['max_prob_change']:.2e}", num(z["threshold"], "g"),
                                   f"{z['spearman_min']:.4f}", f"{z['i2t']:.0%}", f"{z['t2i']:.0%}",
                                   verdict(z["passed"])] for z in zs],
                 numeric={2, 3, 4, 5, 6, 7}, row_class=["" if z["passed"] else "fail" for z in zs])


def predictions_table(r: Report) -> dict | None:
    """With real weights: the label torch_fp32 predicts for each image, and the deployed (offline) one."""
    if any(m["synthetic"] for m in models(r)):
        return None
    rows = []
    for t in r["targets"]:
        z = t.get("zero_shot")
        if not z:
            continue
        offline = (z["stages"].get("offline") or {}).get("per_image", {})
        rows += [[t["name"], stem, Cell(p["label"], "bold"), f"{p['prob']:.3f}",
                  str((offline.get(stem) or {}).get("top1"))] for stem, p in z["predictions"].items()]
    return table(["target", "image", "predicted label (torch_fp32)", "probability", "offline"], rows, numeric={3}) \
        if rows else None


def chain_table(t: Target) -> dict:
    """The precision chain torch_fp32 -> onnx_fp32 -> onnx_fp16 -> offline: per stage the worst cosine
    against torch_fp32 and against the stage before it (where that pair was measured)."""
    pairs = {(p["a"], p["b"]): p for p in t["accuracy"]["pairs"]}
    rows = [[Cell("torch_fp32", "bold"), stage_description("torch_fp32"), num(1.0, ".8f"), drift_label(1.0), "reference",
             num(0.0, ".3g")]]
    for prev, stage in zip(STAGES, STAGES[1:]):
        to_torch = pairs.get((stage, "torch_fp32"))
        step = to_torch if stage == "onnx_fp32" else pairs.get((stage, prev)) or pairs.get((prev, stage))
        vs_torch = to_torch["cosine_min"] if to_torch else None
        previous = (f"{step['cosine_min']:.8f} (1 − cos {drift_label(step['cosine_min'])}) vs {prev}" if step
                    else Cell("not measured", "note"))
        rows.append([Cell(stage, "bold"), stage_description(stage), num(vs_torch, ".8f"), drift_label(vs_torch), previous,
                     num(to_torch["max_abs_err"] if to_torch else None, ".3g")])
    return table(["stage", "what", "cosine min vs torch_fp32", "1 − cos", "vs previous stage",
                  "max abs err vs torch_fp32"], rows, numeric={2, 3, 5})


def pairs_table(t: Target) -> dict:
    """Every pair of stages; `images`: how many the pair covers (onnx_fp32 and onnx_fp16 run on a sample
    with chain_images: first_shard)."""
    return table(["a", "b", "images", "cosine min", "cosine mean", "1 − cos min", "max abs err", "max rel err"],
                 [[p["a"], p["b"], str(p.get("images", len(p["per_image"]))), f"{p['cosine_min']:.8f}",
                   f"{p['cosine_mean']:.8f}", drift_label(p["cosine_min"]), f"{p['max_abs_err']:.3g}",
                   num(p.get("rel_err_max"), ".3g")] for p in t["accuracy"]["pairs"]],
                 numeric={2, 3, 4, 5, 6, 7})


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between the sorted values."""
    s = sorted(values)
    k = q * (len(s) - 1)
    lo = math.floor(k)
    return s[lo] if lo + 1 >= len(s) else s[lo] + (s[lo + 1] - s[lo]) * (k - lo)


def image_count(t: Target) -> int:
    return max((len(p["per_image"]) for p in t["accuracy"]["pairs"]), default=0)


def distribution_table(t: Target) -> dict:
    """Per pair, the cosine over every image: worst, 1st and 5th percentile, median, best."""
    rows = []
    for p in t["accuracy"]["pairs"]:
        values = [v for v in p["per_image"].values() if v is not None and math.isfinite(v)]
        rows.append([f"{p['a']} vs {p['b']}", str(len(p["per_image"]))]
                    + [f"{quantile(values, q):.8f}" if values else "n/a" for _, q in QUANTILES])
    return table(["pair", "images", *(f"cosine {name}" for name, _ in QUANTILES)], rows,
                 numeric=set(range(1, 2 + len(QUANTILES))))


def worst_images(t: Target, n: int = WORST_N) -> list[str]:
    """The n images (labels for the text tower) furthest from torch_fp32: ordered by the offline model
    vs torch_fp32 where measured, else by the first pair."""
    pairs = {(p["a"], p["b"]): p for p in t["accuracy"]["pairs"]}
    order = pairs.get(("offline", "torch_fp32")) or (t["accuracy"]["pairs"] or [None])[0]
    if not order:
        return []
    cosine = order["per_image"]
    return sorted(cosine, key=lambda s: (cosine[s] if cosine[s] is not None and math.isfinite(cosine[s])
                                         else -math.inf, s))[:n]


def worst_table(t: Target, n: int = WORST_N) -> dict:
    pairs = t["accuracy"]["pairs"]
    return table(["label" if t.get("tower") == "text" else "image", *(f"{p['a']} vs {p['b']}" for p in pairs)],
                 [[s, *(num(p["per_image"].get(s), ".8f") for p in pairs)] for s in worst_images(t, n)],
                 numeric=set(range(1, len(pairs) + 1)))


def worst_heading(t: Target, n: int = WORST_N) -> str:
    total = image_count(t)
    what = "labels" if t.get("tower") == "text" else "images"
    return f"The {min(n, total)} worst of {total} {what} (cosine)" if total > n else f"Every {what[:-1]} (cosine)"


def source_note(t: Target) -> str:
    sources = sorted({Path(c["source"]).name for c in t.get("compiled", []) if c.get("source")})
    note = f"compiled from {', '.join(sources)}" if sources else ""
    if t.get("precision"):
        note += f" (precision {t['precision']})"
    return note.strip()


def coordinates(t: Target) -> str:
    return " · ".join(f"{k} {t[k]}" for k in ("arch", "tower", "backend", "device", "precision") if t.get(k))


# ---- performance ----------------------------------------------------------------------------

WITHIN_NOISE = "within noise"
INTERVAL_NOTE = ("In brackets: the 95 % interval of each figure (a seeded bootstrap over the timed runs; none where "
                 "the record has no per-run times); a speed-up whose interval contains 1.0 is marked "
                 f"\"{WITHIN_NOISE}\": it is not told apart from no speed-up.")


def interval(value, ci, fmt: str, suffix: str = "") -> str:
    """A figure with its 95 % interval, "4.00 [3.95, 4.05]"; the figure alone when there is none. A
    fixed-point format gains up to two decimals where the bounds would otherwise print the same."""
    if value is None or not ci or ci[0] is None or ci[1] is None:
        return num(value, fmt, suffix)
    if fmt.startswith(".") and fmt.endswith("f"):
        digits = int(fmt[1:-1])
        for more in range(3):
            fmt = f".{digits + more}f"
            if f"{ci[0]:{fmt}}" != f"{ci[1]:{fmt}}":
                break
    return f"{value:{fmt}}{suffix} [{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def ratio(value, ci, noise) -> str:
    """A speed-up with its interval, and "within noise" when the interval contains 1.0."""
    return interval(value, ci, ".2f", "×") + (f" {WITHIN_NOISE}" if noise else "")


def speedup_vs_torch(p: Performance) -> float | None:
    """Offline throughput over the PyTorch fp32 baseline's (recorded, or computed from the two figures)."""
    if p.get("speedup_vs_torch_fp32") is not None:
        return p["speedup_vs_torch_fp32"]
    base = (p.get("baseline_torch_fp32") or {}).get("throughput_fps")
    if base and p.get("throughput_fps") is not None:
        return p["throughput_fps"] / base
    return None


def ceilings(p: Performance) -> str:
    """The host's two fp32 matmul rates (torch's, the reference runtime's) beside which a speed-up vs PyTorch
    means something; n/a for records that do not carry them."""
    c = p.get("ceiling") or {}
    runtime = backends.reference()
    if c.get("torch_gflops") is None and c.get(f"{runtime.NAME}_gflops") is None:
        return "n/a"
    return f"torch {num(c.get('torch_gflops'), '.0f')} / {runtime.SHORT} {num(c.get(f'{runtime.NAME}_gflops'), '.0f')}"


def ceilings_head() -> str:
    return f"matmul GFLOP/s (torch / {backends.reference().SHORT})"


def load_note(p: Performance) -> str:
    if not under_load(p):
        return ""
    cores = p["load"].get("others_cpu_cores")
    return f"⚠ {UNDER_LOAD}" + (f" (others {cores:.2f} cores)" if cores is not None else "")


def batch_label(p: Performance) -> str:
    """A benchmark's batch: "8", or "8 (dynamic 1,8)" for the one dynamic-batch model run at batch 8."""
    gears = p.get("dynamic_batch")
    return f"{p['batch_size']}" + (f" (dynamic {','.join(map(str, gears))})" if gears else "")


def speed_rows(t: Target) -> list[dict]:
    rows = []
    for p in t["performance"]:
        b = p.get("baseline_torch_fp32") or {}
        rows.append({"batch_size": batch_label(p), "offline_fps": p.get("throughput_fps"),
                     "offline_ci": p.get("throughput_fps_ci95"), "torch_fps": b.get("throughput_fps"),
                     "torch_ci": b.get("throughput_fps_ci95"), "speedup": speedup_vs_torch(p),
                     "speedup_ci": p.get("speedup_vs_torch_fp32_ci95"),
                     "speedup_noise": p.get("speedup_vs_torch_fp32_within_noise"),
                     "vs_fp32": p.get("speedup_vs_fp32"), "vs_fp32_ci": p.get("speedup_vs_fp32_ci95"),
                     "vs_fp32_noise": p.get("speedup_vs_fp32_within_noise"), "ceilings": ceilings(p),
                     "offline_p50": (p.get("latency_ms") or {}).get("p50"),
                     "torch_p50": (b.get("latency_ms") or {}).get("p50"), "load": load_note(p)})
    return rows


def vs_fp32(s: dict) -> str:
    """A precision's speed-up over fp32 on the same arch, tower, backend and device ("" for none)."""
    return "" if s["vs_fp32"] is None else ratio(s["vs_fp32"], s["vs_fp32_ci"], s["vs_fp32_noise"])


def speed_lines(t: Target) -> list[str]:
    """The summary card's one line per batch size."""
    return [f"batch {s['batch_size']}: {interval(s['offline_fps'], s['offline_ci'], '.3g')} images/s vs PyTorch fp32 "
            f"{interval(s['torch_fps'], s['torch_ci'], '.3g')} images/s → "
            f"{ratio(s['speedup'], s['speedup_ci'], s['speedup_noise'])} (matmul GFLOP/s "
            f"{s['ceilings']}); p50 {num(s['offline_p50'], '.1f')} ms (PyTorch {num(s['torch_p50'], '.1f')} ms)"
            + (f"; vs {t['arch']} fp32 {vs_fp32(s)}" if vs_fp32(s) else "")
            + (f"; {s['load']}" if s["load"] else "") for s in speed_rows(t)]


def glance_table(r: Report) -> dict:
    rows = [[t["name"], str(s["batch_size"]), interval(s["offline_fps"], s["offline_ci"], ".2f"),
             interval(s["torch_fps"], s["torch_ci"], ".2f"), ratio(s["speedup"], s["speedup_ci"], s["speedup_noise"]),
             vs_fp32(s), s["ceilings"], num(s["offline_p50"], ".1f"), num(s["torch_p50"], ".1f"),
             s["load"]] for t in r["targets"] for s in speed_rows(t)]
    return table(["target", "batch", "offline images/s", "torch_fp32 images/s", "speed-up", "vs fp32",
                  ceilings_head(), "offline p50 ms", "torch_fp32 p50 ms", "load"], rows, numeric={1, 2, 3, 4, 5, 7, 8},
                 row_class=["loaded" if row[-1] else "" for row in rows])


def measured(t: Target):
    """(model label, record, ratio to torch, the offline record) for every benchmark of a target: the
    offline model, then the PyTorch fp32 baseline measured in the same job."""
    for p in t["performance"]:
        yield "offline", p, speedup_vs_torch(p), p
        if p.get("baseline_torch_fp32"):
            yield "torch_fp32", p["baseline_torch_fp32"], 1.0, p


def runs(row: dict) -> str:
    """The runs timed: "40 of 100 (interval reached)" when a benchmark stopped early (ci_width)."""
    if row.get("stopped_early") and row.get("loop_max") is not None:
        return f"{num(row.get('loop'), '')} of {row['loop_max']} (interval reached)"
    return num(row.get("loop"), "")


LATENCIES = ("mean", "p50", "p90", "p99", "min", "max")


def performance_table(t: Target) -> dict:
    rows, classes = [], []
    for label, row, vs_torch, p in measured(t):
        lat, lat_ci = row.get("latency_ms") or {}, row.get("latency_ms_ci95") or {}
        speedup = ratio(vs_torch, p.get("speedup_vs_torch_fp32_ci95"), p.get("speedup_vs_torch_fp32_within_noise")) \
            if label == "offline" else num(vs_torch, ".2f", "×")
        rows.append([Cell(label, "bold"), batch_label({**row, "dynamic_batch": p.get("dynamic_batch")}), runs(row),
                     num(row.get("warmup"), ""), num(row.get("threads"), ""),
                     interval(row.get("throughput_fps"), row.get("throughput_fps_ci95"), ".3f"), speedup, ceilings(p),
                     *(interval(lat.get(k), lat_ci.get(k), ".1f") for k in LATENCIES),
                     num(row.get("achieved_gflops"), ".0f"), num(row.get("fraction_of_ceiling"), ".0%"), load_note(p)])
        classes.append("loaded" if load_note(p) else "")
    return table(["model", "batch", "loop", "warmup", "threads", "images/s", "vs torch", ceilings_head(),
                  *(f"{k} ms" for k in LATENCIES), "GFLOP/s", "of ceiling", "load"], rows,
                 numeric={1, 2, 3, 4, 5, 6, *range(8, 16)}, row_class=classes)


def performance_notes(t: Target) -> list[str]:
    p0 = t["performance"][0] if t["performance"] else {}
    notes = []
    if p0.get("ceiling_gflops") is not None and p0.get("model_gflops_per_image") is not None:
        n = (p0.get("ceiling") or {}).get("matmul_n", 4096)
        notes.append(f"Model: {p0['model_gflops_per_image']:.1f} GFLOPs per image (torch FlopCounterMode); ceiling "
                     f"{p0['ceiling_gflops']:.0f} GFLOP/s: the faster of torch and {backends.reference().LABEL} on a "
                     f"{n}×{n} fp32 matmul, measured in the same job.")
    sent = input_bytes(t)
    if sent:
        notes.append(sent)
    for p in t["performance"]:
        notes += [f"batch {batch_label(p)}: {note}" for note in ([p["method"]] if p.get("method") else [])
                  + list(p.get("notes") or [])]
    return notes


def input_bytes(t: Target) -> str | None:
    """The bytes of one image sent to the device, and without the device's own preprocessing (the ONNX's
    input), when the compiled model takes something else than the ONNX does."""
    record = next((c["input"] for c in t.get("compiled") or [] if c.get("input")), None)
    if not record or record["device"] == record["onnx"]:
        return None
    d, o = record["device"], record["onnx"]
    shape = "×".join(map(str, o["shape"]))
    return (f"Bytes per item sent to the device: {d['bytes_per_item']:,} ({d['dtype']} "
            f"{'×'.join(map(str, d['shape']))}: {d.get('preprocessing', '')}); without it {o['bytes_per_item']:,} "
            f"({o['dtype']} {shape}, the ONNX's input): {o['bytes_per_item'] / d['bytes_per_item']:.1f}× fewer.")


def device_table(t: Target) -> dict | None:
    """Per benchmark and device, the two throughputs a device tool gives: its pure-inference figure (device
    compute only: the seed's) and the end-to-end one (with the host-device copies a service pays), each with
    its 95 % interval, and the copy times; over several devices one row per device and the host's total. None
    for a target whose records carry no end-to-end figure (a CPU backend: it has no copies)."""
    rows = []
    for p in t["performance"]:
        devices = p.get("devices") or []
        if not p.get("end_to_end") and not any(d.get("end_to_end") for d in devices):
            continue
        for d in devices if len(devices) > 1 else []:
            rows.append(_device_row(batch_label(p), str(d["device"]), d))
        rows.append(_device_row(batch_label(p), "all " + ",".join(str(d["device"]) for d in devices)
                                if len(devices) > 1 else str(devices[0]["device"]) if devices else "", p))
    if not rows:
        return None
    return table(["batch", "device", "device compute images/s (the seed's)", "end to end images/s",
                  "H2D ms", "compute ms", "D2H ms"], rows, numeric={2, 3, 4, 5, 6})


def _device_row(batch: str, device: str, p: dict) -> list:
    e2e = p.get("end_to_end") or {}
    lat = e2e.get("latency_ms") or {}
    return [batch, device, interval(p.get("throughput_fps"), p.get("throughput_fps_ci95"), ".3f"),
            interval(e2e.get("throughput_fps"), e2e.get("throughput_fps_ci95"), ".3f"),
            num(lat.get("h2d"), ".3f"), num(lat.get("compute"), ".3f"), num(lat.get("d2h"), ".3f")]


def best(t: Target) -> Performance | None:
    """The benchmark of a target's best batch size (highest throughput)."""
    measured_ = [p for p in t["performance"] if p.get("throughput_fps") is not None]
    return max(measured_, key=lambda p: p["throughput_fps"]) if measured_ else None


# ---- artifacts, cost, reproduce, environment ------------------------------------------------

def artifacts_table(r: Report) -> dict:
    rows = [["checkpoint", Cell(str(m.get("checkpoint_path")), "mono"), "", size(m.get("checkpoint_bytes")),
             Cell(m["checkpoint_sha256"], "hash")] for m in models(r)]
    rows += [["ONNX", Cell(a["path"], "mono"), "", size(a["bytes"]), Cell(a["sha256"], "hash")] for a in r["onnx"]]
    rows += [[f"offline {t['name']}", Cell(a["path"], "mono"),
              batch_label(a) if a.get("batch_size") is not None else "", size(a["bytes"]),
              Cell(a["sha256"], "hash")] for t in r["targets"] for a in t["artifacts"]]
    return table(["kind", "path", "batch", "size", "sha256"], rows, numeric={2, 3})


def model_table(r: Report) -> dict:
    return table(["arch", "checkpoint", "sha256", "synthetic"],
                 [[m["arch"], f"{m['checkpoint']} ({m.get('checkpoint_path')})", Cell(m["checkpoint_sha256"], "hash"),
                   "yes" if m["synthetic"] else "no"] for m in models(r)])


def cost_table(r: Report) -> dict | None:
    rows = [[row["rule"], str(row["jobs"]) + (f" ({row['missing']} without a record)" if row.get("missing") else ""),
             num(row["wall_s"], ".1f"), num(row["longest_s"], ".1f"),
             num(row["peak_rss_mb"], ",.0f")] for row in (r.get("workflow") or {}).get("rules", [])]
    return table(["rule", "jobs", "wall s (all jobs)", "longest job s", "peak RSS MB"], rows,
                 numeric={1, 2, 3, 4}) if rows else None


def environment_table(r: Report) -> dict:
    """What ran the report: host, Python, package versions, and every backend tool record as key/value
    rows, whatever keys a backend reports."""
    env = r["environment"]
    rows = [["CPU", f"{env.get('cpu')} ({env.get('physical_cores')} physical, {env.get('logical_cores')} logical "
                    "cores)"], ["Python", str(env.get("python"))], ["platform", str(env.get("platform"))]]
    rows += [[k, Cell(str(v), "mono")] for k, v in (env.get("versions") or {}).items()]
    rows += [[f"{k} (backend tool)", Cell(v if isinstance(v, str) else yaml_flow(v), "mono")]
             for k, v in (env.get("backend_tools") or {}).items()]
    return table(["what", "version"], rows)


def config_table(r: Report) -> dict | None:
    config = r.get("config") or {}
    return table(["key", "value"], [[k, Cell(yaml_flow(v), "mono")] for k, v in config.items()]) if config else None


def run_summary(r: Report) -> str:
    c = r.get("config") or {}
    backends = c.get("backends") or ([c["backend"]] if c.get("backend") else [])
    precisions = sorted({t["precision"] for t in r["targets"] if t.get("precision")})
    parts = [("backend " if len(backends) == 1 else "backends ") + ", ".join(backends) if backends else None,
             ("precision " if len(precisions) == 1 else "precisions ") + ", ".join(precisions) if precisions else None,
             "batch sizes " + ", ".join(str(b) for b in c["batch_sizes"]) if c.get("batch_sizes") else None,
             f"loop {c['loop']}" + (f" (+{c['warmup']} warm-up)" if c.get("warmup") is not None else "")
             if c.get("loop") is not None else None,
             f"threads {c['threads'] or 'all physical cores'}" if "threads" in c else None]
    return " · ".join(p for p in parts if p) or "n/a"


def onnx_summary(r: Report) -> str:
    sizes = {}
    for a in r.get("onnx", []):
        kind = "fp16" if ".fp16." in a["path"] else "fp32"
        sizes[kind] = sizes.get(kind, 0) + a["bytes"]
    return ", ".join(f"{k} {size(v)}" for k, v in sizes.items()) or "n/a"


def host_summary(r: Report) -> str:
    env = r.get("environment") or {}
    versions = {"torch": (env.get("versions") or {}).get("torch"), **(env.get("backend_tools") or {})}
    tools = " · ".join(f"{k} {v}" for k, v in versions.items() if isinstance(v, str) and not v.startswith("absent"))
    return f"{env.get('cpu', 'n/a')} ({env.get('physical_cores', '?')} cores) · Python {env.get('python', '?')}" + \
        (f" · {tools}" if tools else "")


def model_card(r: Report) -> list[tuple[str, str | Cell]]:
    m = r["model"]
    return [("architecture", Cell(archs(r), "bold")), ("checkpoint", m["checkpoint"]),
            ("weights", Cell("SYNTHETIC", "warn") if m["synthetic"] else Cell("real weights", "pass")),
            ("file", Cell(f"{m.get('checkpoint_path')} ({size(m.get('checkpoint_bytes'))})", "mono")),
            ("sha256", Cell(m["checkpoint_sha256"], "hash")), ("run", run_summary(r)),
            ("images", f"{max((image_count(t) for t in r['targets'] if t.get('tower') != 'text'), default=0)} "
                       "(every stage: torch_fp32 → onnx_fp32 → onnx_fp16 → offline)"),
            ("ONNX", onnx_summary(r)), ("host", host_summary(r))]


def figure_links(plots: dict | None, base: str | os.PathLike) -> list[tuple[str, str]]:
    """(title, path relative to `base`) of each figure written, in FIGURES order."""
    return [(FIGURES[name][0], Path(os.path.relpath(plots[name], base)).as_posix())
            for name in FIGURES if (plots or {}).get(name)]
