"""locate: why does a reduced-precision target lose accuracy? Two views, both in locate.json: the measured
causes (accuracy.causes: which unit, then which nodes, rebuilt by the target's plan and judged on the final
feature) and the node by node view (accuracy.node_view: every intermediate tensor of the reduced graph, or
of the device's own dump, against the fp32 graph, and the first jump). `top_cause` is the measured cause,
named only when the measurement could tell (`causes.decided`, with `causes.why` from its figures), with the
first jump beside it and whether the two agree."""

from pathlib import Path

import backends
from accuracy.causes import Judge, Measure, graph_candidates, inputs_and_references, measure_causes, unit_name
from accuracy.node_view import DEFAULTS, compare_graphs, compare_tensors, plot, summarise, write_csv
from graph import load_graph
from pipeline.common import log, write_json


def write_outputs(rows: list[dict], summary: dict, csv_path, chart_path, json_path, title: str = "") -> None:
    write_csv(rows, csv_path)
    plot(rows, summary, chart_path, title)
    write_json(json_path, summary)


def gates_met(similarity_json: str | Path) -> dict | None:
    """The record locate writes in place of a localisation when every gate of the target's
    similarity.json was met (None when one was missed): the gates, and how to locate anyway."""
    from pipeline.common import read_json
    from accuracy.similarity import missed

    record = read_json(similarity_json)
    if missed(record):
        return None
    return {"located": False, "reason": "every gate met: not located (config `locate: all` locates anyway)",
            "similarity": str(similarity_json), "gates": record.get("gates", []), "first_jump": None,
            "overflow_nodes": [], "op_types": [], "blocks": [], "params": dict(DEFAULTS)}


def top_cause(causes: dict, jump: dict | None) -> dict | None:
    """The cause locate names: the unit the measurement decided on (None when it could not tell: the
    record's causes.why says why), its worst node (or the nodes tied for worst), how it was measured, and
    the first jump of the node-by-node view beside it, with whether it falls in the same unit."""
    if not causes["decided"]:
        return None
    unit = causes["cause"]
    rows = causes["units"] if causes["method"] == "alone" else causes["complement"]
    row = next(u for u in rows if u["unit"] == unit)
    nodes = causes["nodes"]
    jump_unit = unit_name(jump["node"]) if jump else None
    return {"unit": unit, "error": row["error"], "method": causes["method"], "why": causes["why"],
            "node": nodes[0]["node"] if nodes and not causes["tied_nodes"] and nodes[0]["error"] > 0 else None,
            "tied_nodes": causes["tied_nodes"],
            "first_jump": {"node": jump["node"], "unit": jump_unit, "agrees": jump_unit == unit} if jump else None}


def localise(plan, fp32_onnx: str | Path, precision: str, npy: list[str], reference_files: list[str], gate: float,
             options: dict, scratch: str | Path, max_inputs: int = 4, device_model: str | None = None,
             params: dict | None = None, extra_gates=None) -> tuple[list[dict], dict]:
    """(node-by-node rows, summary) of one target: the measured causes (accuracy.causes) and the node-by-node
    view, against the graph its plan quantises or converts (plan.reduced_graph), on the first `max_inputs`
    inputs. `device_model`: the compiled model, whose own tensors the plan reads (plan.node_tensors) for the
    node-by-node view instead of the rebuilt graph's. `params`: k, floor, atol, chunk (node_view.DEFAULTS).
    `extra_gates`: the target's other gates to judge each build by (accuracy.gates.extra)."""
    from backends.base import model_inputs

    opts = {**DEFAULTS, **(params or {})}
    files, inputs, references = inputs_and_references(npy, reference_files, max_inputs)
    graph, nodes = graph_candidates(plan, fp32_onnx, precision, scratch, options)
    judge = Judge([Path(f).stem for f in files], references, gate, extra_gates)
    measure = Measure(plan, graph, precision, inputs, judge, options, scratch)
    causes = measure_causes(measure, nodes)
    name = model_inputs(fp32_onnx)[0].name
    threads = int(options.get("threads", 1))
    if device_model:
        tensors = plan.node_tensors(device_model, files[0], load_graph(fp32_onnx), scratch, options)
        rows, summary = compare_tensors(fp32_onnx, tensors, inputs[0], name, threads=threads,
                                        **{k: opts[k] for k in DEFAULTS})
        summary["source"] = "the device's own tensors (first input)"
    else:
        target = measure.model([], Path(scratch) / "target")
        if str(target).endswith(".onnx"):
            rows, summary = compare_graphs(graph, target, inputs, name, threads=threads,
                                           **{k: opts[k] for k in DEFAULTS})
            summary["source"] = (backends.reference().LABEL
                                 + (" with fp16 storage" if summary.get("fp16_storage") else ""))
        else:
            rows = []
            summary = {**summarise([], **{k: opts[k] for k in ("k", "floor", "atol")}),
                       "source": f"none: {plan.NAME}'s reduced model is not an ONNX graph, so only the measured "
                                 "causes are given"}
    causes["builds"] = measure.builds
    summary.update(located=True, causes=causes, precision=precision, backend=plan.NAME,
                   top_cause=top_cause(causes, summary.get("first_jump")))
    log.info("top cause: %s", summary["top_cause"] or f"none ({causes['why']})")
    return rows, summary
