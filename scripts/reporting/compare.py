"""Two runs side by side: what changed between a baseline run's report.json and the current one's.

Per target present in both (keyed by arch, tower, backend, device, precision):
- every accuracy figure that changed beyond a tolerance (each pair's cosine_min, cosine_mean and max_abs_err;
  each gate's value, threshold and passed; each image's cosine), absolute tolerance TOLERANCE;
- every throughput per batch size (the offline model's and the PyTorch fp32 baseline measured beside it),
  shown with each run's load (others' CPU) and the host's matmul ceilings measured in that job: "within
  noise" when the two 95 % intervals overlap; when they part, "faster" or "slower" only if both runs were
  quiet (speed_change: scaled by each run's ceiling first where the two ceilings differ by more than
  CEILING_TOLERANCE, for what runs on the host's CPU), else "not comparable: load" (a run measured under
  load) or "not comparable: ceiling" (the ceilings differ and a run has none); "no interval in
  baseline/current/either" when a side has none (a record from before the intervals);
and for the runs as a whole: every version that differs (environment: packages, backend tools, Python,
the host's CPU; each architecture's checkpoint_sha256), and the targets only in one of the two runs.

compare.json is the data; compare.md and compare.html (one self-contained page) are rendered from it:
`snakemake -c1 compare --config baseline=<results folder or report.json>` (rule compare) writes
results/compare.{json,md,html}; `.venv/bin/python bench/compare.py BASELINE [CURRENT]` compares any two.
"""
import html
import json
import math
from pathlib import Path

COORDINATES = ("arch", "tower", "backend", "device", "precision")
PAIR_FIGURES = ("cosine_min", "cosine_mean", "max_abs_err")
GATE_VALUES = ("cosine_min", "value", "top1_agreement", "max_prob_change")  # whichever a gate carries
TOLERANCE = 1e-6  # an accuracy figure whose absolute change is within this is unchanged
PER_IMAGE_SHOWN = 20  # per-image changes listed in the md/html per target (compare.json holds them all)
WITHIN_NOISE = "within noise"
# two runs' matmul ceilings within this share of each other are one host speed: no scaling (a quiet host's
# ceiling varied by up to 5 % between jobs of one run; a host change moves it by 20 % to 8x, NOTES.md)
CEILING_TOLERANCE = 0.10
NOT_COMPARABLE_LOAD, NOT_COMPARABLE_CEILING = "not comparable: load", "not comparable: ceiling"


# ---- reading -------------------------------------------------------------------------------------

def report_path(path_or_folder) -> Path:
    """The report.json a results folder holds, or the file itself."""
    path = Path(path_or_folder)
    return path / "report.json" if path.is_dir() else path


def load_report(path_or_folder) -> dict:
    """report.json of a results folder, or a report.json file."""
    path = report_path(path_or_folder)
    if not path.is_file():
        raise FileNotFoundError(f"no report.json at {path} (give a results folder or a report.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def key(t: dict) -> tuple:
    """A target's coordinates (a report from before the tower was a coordinate is the image tower's)."""
    defaults = {"tower": "image", "precision": ""}
    return tuple(t.get(k, defaults.get(k)) for k in COORDINATES)


def name(t: dict) -> str:
    return t.get("name") or f"{t.get('backend')}/{t.get('device')} {t.get('precision') or ''}".strip()


def _ident(t: dict) -> dict:
    return {**dict(zip(COORDINATES, key(t))), "name": name(t)}


# ---- comparing -----------------------------------------------------------------------------------

def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _differs(a, b, tolerance: float) -> bool:
    """Two figures differ: beyond `tolerance` for numbers, any difference otherwise (None vs a number too)."""
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return abs(x - y) > tolerance
    return a != b


def _change(a, b) -> float | None:
    x, y = _number(a), _number(b)
    return None if x is None or y is None else y - x


def _pairs(t: dict) -> dict:
    return {(p["a"], p["b"]): p for p in (t.get("accuracy") or {}).get("pairs") or []}


def _gates(t: dict) -> dict:
    """{label: gate} of the target's cosine and ranking gates and its zero-shot gates."""
    gates = list((t.get("accuracy") or {}).get("gates") or [])
    gates += [{**g, "kind": "zero_shot"} for g in (t.get("zero_shot") or {}).get("gates") or []]
    out = {}
    for g in gates:
        measure = g.get("measure") or ("zero-shot" if g.get("kind") == "zero_shot" else "cosine_min")
        out[f"{g.get('a')} vs {g.get('b')} {measure}"] = g
    return out


def accuracy_changes(base: dict, cur: dict, tolerance: float) -> tuple[list, list, list, list]:
    """(pair figures, per-image cosines, gate fields that changed, notes) of one target."""
    figures, images, gates, notes = [], [], [], []
    bp, cp = _pairs(base), _pairs(cur)
    for k in sorted(bp.keys() | cp.keys()):
        label = f"{k[0]} vs {k[1]}"
        if k not in bp or k not in cp:
            notes.append(f"pair {label} only in the {'current' if k in cp else 'baseline'} run")
            continue
        a, b = bp[k], cp[k]
        figures += [{"pair": label, "figure": f, "baseline": a.get(f), "current": b.get(f),
                     "change": _change(a.get(f), b.get(f))}
                    for f in PAIR_FIGURES if _differs(a.get(f), b.get(f), tolerance)]
        ai, bi = a.get("per_image") or {}, b.get("per_image") or {}
        images += [{"pair": label, "image": s, "baseline": ai[s], "current": bi[s], "change": _change(ai[s], bi[s])}
                   for s in sorted(ai.keys() & bi.keys()) if _differs(ai[s], bi[s], tolerance)]
        for side, only in (("baseline", ai.keys() - bi.keys()), ("current", bi.keys() - ai.keys())):
            if only:
                notes.append(f"{label}: {len(only)} image(s) only in the {side} run, e.g. {sorted(only)[0]}")
    bg, cg = _gates(base), _gates(cur)
    for label in sorted(bg.keys() | cg.keys()):
        if label not in bg or label not in cg:
            notes.append(f"gate {label} only in the {'current' if label in cg else 'baseline'} run")
            continue
        a, b = bg[label], cg[label]
        # the gate's measured figure ("value": a cosine gate's cosine_min, a ranking gate's value; a zero-shot
        # gate's by name), its threshold and its verdict
        fields = [("value" if k in ("cosine_min", "value") else k, k, tolerance) for k in GATE_VALUES if k in a or k in b]
        for field, k, tol in fields + [("threshold", "threshold", 0.0), ("passed", "passed", 0.0)]:
            if _differs(a.get(k), b.get(k), tol):
                gates.append({"gate": label, "field": field, "baseline": a.get(k), "current": b.get(k)})
    images.sort(key=lambda c: -abs(c["change"]) if c["change"] is not None else -math.inf)
    return figures, images, gates, notes


def _interval(ci) -> list | None:
    return list(ci) if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci else None


def _load(record: dict) -> dict:
    """A throughput record's load, as compare shows it: others' CPU (cores) and whether it was under load."""
    load = record.get("load") or {}
    return {"others_cpu_cores": load.get("others_cpu_cores"), "under_load": load.get("under_load")}


def _parted(b_ci: list, c_ci: list) -> str | None:
    return "faster" if c_ci[0] > b_ci[1] else "slower" if c_ci[1] < b_ci[0] else None


def speed_change(base: dict, cur: dict, base_ceiling: float | None = None, cur_ceiling: float | None = None,
                 on_host_cpu: bool = True) -> dict:
    """One throughput against another, with each run's load and host ceiling (`*_ceiling`: its matmul
    ceiling in GFLOP/s, for what runs on the host's CPU). The verdict: WITHIN_NOISE when the 95 % intervals
    overlap; when they part, NOT_COMPARABLE_LOAD if either run was measured under load; else, for what runs on
    the host's CPU, NOT_COMPARABLE_CEILING when one run has a ceiling and the other none, and where the two
    ceilings differ by more than CEILING_TOLERANCE the intervals scaled by each run's ceiling decide; else
    "faster" or "slower" (records from before the ceilings were measured, neither with one, too)."""
    b_fps, c_fps = base.get("throughput_fps"), cur.get("throughput_fps")
    b_ci, c_ci = _interval(base.get("throughput_fps_ci95")), _interval(cur.get("throughput_fps_ci95"))
    b_load, c_load = _load(base), _load(cur)
    out = {"baseline_fps": b_fps, "baseline_ci95": b_ci, "current_fps": c_fps, "current_ci95": c_ci,
           "ratio": c_fps / b_fps if b_fps and c_fps is not None else None,
           "baseline_load": b_load, "current_load": c_load,
           "baseline_ceiling_gflops": base_ceiling, "current_ceiling_gflops": cur_ceiling, "scaled": False}
    missing = [side for side, ci in (("baseline", b_ci), ("current", c_ci)) if ci is None]
    if missing:
        return {**out, "verdict": "no interval in either run" if len(missing) == 2 else f"no interval in {missing[0]}",
                "changed": None}
    if _parted(b_ci, c_ci) is None:
        return {**out, "verdict": WITHIN_NOISE, "changed": False}
    if b_load["under_load"] or c_load["under_load"]:
        return {**out, "verdict": NOT_COMPARABLE_LOAD, "changed": None}
    known = [c for c in (base_ceiling, cur_ceiling) if c is not None]
    if on_host_cpu and len(known) == 1:  # one run's host speed unknown: the two cannot be set side by side
        return {**out, "verdict": NOT_COMPARABLE_CEILING, "changed": None}
    if not on_host_cpu or not known or abs(cur_ceiling / base_ceiling - 1) <= CEILING_TOLERANCE:
        return {**out, "verdict": _parted(b_ci, c_ci), "changed": True}
    verdict = _parted([v / base_ceiling for v in b_ci], [v / cur_ceiling for v in c_ci])
    return {**out, "scaled": True, "verdict": f"{verdict} (per GFLOP/s of each run's ceiling)" if verdict
            else f"{WITHIN_NOISE} (per GFLOP/s of each run's ceiling)", "changed": verdict is not None}


def _measured(t: dict) -> dict:
    """{(model, batch size): (throughput record, its job's matmul ceiling)}: the offline model and the PyTorch
    fp32 baseline measured beside it in the same job."""
    out = {}
    for p in t.get("performance") or []:
        ceiling = (p.get("ceiling") or {}).get("ceiling_gflops")
        out[("offline", p["batch_size"])] = (p, ceiling)
        if p.get("baseline_torch_fp32"):
            out[("torch_fp32", p["batch_size"])] = (p["baseline_torch_fp32"], ceiling)
    return out


def _on_host_cpu(t: dict, model: str) -> bool:
    """Whether a throughput is the host CPU's (PyTorch's, or a backend's whose plan runs on it): only then can
    the host's matmul ceiling scale it."""
    import backends

    return model == "torch_fp32" or (t.get("backend") not in backends.names()
                                     or backends.get(t["backend"]).RUNS_ON_HOST_CPU)


def speed_changes(base: dict, cur: dict) -> tuple[list, list]:
    bm, cm = _measured(base), _measured(cur)
    rows = []
    for m, bs in sorted(bm.keys() & cm.keys(), key=lambda k: (k[1], k[0] != "offline")):
        (b, b_ceiling), (c, c_ceiling) = bm[(m, bs)], cm[(m, bs)]
        rows.append({"model": m, "batch_size": bs,
                     **speed_change(b, c, b_ceiling, c_ceiling, _on_host_cpu(cur, m))})
    notes = [f"{m} batch {bs} only in the {'current' if (m, bs) in cm else 'baseline'} run"
             for m, bs in sorted(bm.keys() ^ cm.keys(), key=lambda k: (k[1], k[0]))]
    return rows, notes


def _flat(value) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value, sort_keys=True)


def version_changes(base: dict, cur: dict) -> list[dict]:
    """Every environment entry (package, backend tool, Python, CPU) and checkpoint that differs."""
    be, ce = base.get("environment") or {}, cur.get("environment") or {}
    out = []
    for kind, section in (("package", "versions"), ("backend tool", "backend_tools")):
        a, b = be.get(section) or {}, ce.get(section) or {}
        out += [{"what": k, "kind": kind, "baseline": _flat(a.get(k)), "current": _flat(b.get(k))}
                for k in sorted(a.keys() | b.keys()) if _flat(a.get(k)) != _flat(b.get(k))]
    out += [{"what": k, "kind": "host", "baseline": _flat(be.get(k)), "current": _flat(ce.get(k))}
            for k in ("python", "cpu", "physical_cores") if _flat(be.get(k)) != _flat(ce.get(k))]
    bm = {m.get("arch"): m for m in base.get("models") or [base.get("model") or {}]}
    cm = {m.get("arch"): m for m in cur.get("models") or [cur.get("model") or {}]}
    out += [{"what": f"checkpoint_sha256 ({arch})", "kind": "model", "baseline": (bm.get(arch) or {}).get("checkpoint_sha256"),
             "current": (cm.get(arch) or {}).get("checkpoint_sha256")}
            for arch in sorted(bm.keys() | cm.keys(), key=str)
            if (bm.get(arch) or {}).get("checkpoint_sha256") != (cm.get(arch) or {}).get("checkpoint_sha256")]
    return out


def _about(r: dict, source) -> dict:
    models = r.get("models") or [r.get("model") or {}]
    return {"source": None if source is None else str(source), "verdict": r.get("verdict"),
            "archs": [m.get("arch") for m in models], "synthetic": any(m.get("synthetic") for m in models),
            "targets": len(r.get("targets") or [])}


def compare(baseline_report: dict, current_report: dict, tolerance: float = TOLERANCE,
            sources: tuple = (None, None)) -> dict:
    """What changed from `baseline_report` to `current_report` (two report.json dicts); `sources` names
    where each was read from. The result is compare.json."""
    base = {key(t): t for t in baseline_report.get("targets") or []}
    cur = {key(t): t for t in current_report.get("targets") or []}
    targets = []
    for k in [k for k in cur if k in base]:  # the current run's order
        figures, images, gates, notes = accuracy_changes(base[k], cur[k], tolerance)
        speed, speed_notes = speed_changes(base[k], cur[k])
        targets.append({**_ident(cur[k]), "accuracy": figures, "gates": gates, "per_image": images, "speed": speed,
                        "notes": notes + speed_notes})
    versions = version_changes(baseline_report, current_report)
    speeds = [s for t in targets for s in t["speed"]]
    summary = {"targets_compared": len(targets), "only_in_baseline": len(base.keys() - cur.keys()),
               "only_in_current": len(cur.keys() - base.keys()),
               "accuracy_changes": sum(len(t["accuracy"]) for t in targets),
               "per_image_changes": sum(len(t["per_image"]) for t in targets),
               "gate_changes": sum(len(t["gates"]) for t in targets),
               "speed_changes": sum(s["changed"] is True for s in speeds),
               "within_noise": sum(s["changed"] is False for s in speeds),
               "not_comparable": sum(s["verdict"].startswith("not comparable") for s in speeds),
               "no_interval": sum(s["verdict"].startswith("no interval") for s in speeds),
               "version_changes": len(versions)}
    summary["changed"] = any(summary[k] for k in ("only_in_baseline", "only_in_current", "accuracy_changes",
                                                   "per_image_changes", "gate_changes", "speed_changes",
                                                   "version_changes"))
    return {"baseline": _about(baseline_report, sources[0]), "current": _about(current_report, sources[1]),
            "tolerance": tolerance, "summary": summary, "versions": versions,
            "only_in_baseline": [_ident(t) for k, t in base.items() if k not in cur],
            "only_in_current": [_ident(t) for k, t in cur.items() if k not in base],
            "targets": targets}


# ---- rendering -----------------------------------------------------------------------------------

def _num(v, fmt: str) -> str:
    return "n/a" if _number(v) is None else f"{v:{fmt}}"


def _value(v, fmt: str) -> str:
    """A figure as shown: booleans as PASS/FAIL-free words, numbers formatted, None as n/a."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return _num(v, fmt) if _number(v) is not None else ("n/a" if v is None else str(v))


def _fps(v, ci) -> str:
    text = _num(v, ".3f")
    return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _conditions(s: dict, side: str) -> str:
    """A run's load and ceiling as the throughput table shows them."""
    load, ceiling = s.get(f"{side}_load") or {}, s.get(f"{side}_ceiling_gflops")
    others = load.get("others_cpu_cores")
    text = "load n/a" if others is None else f"others {others:.2f} cores" + (" (under load)" if load.get("under_load")
                                                                               else "")
    return text + (f", {ceiling:.0f} GFLOP/s" if _number(ceiling) is not None else ", ceiling n/a")


def _fmt(figure: str) -> str:
    return ".3g" if figure == "max_abs_err" else ".8f"


def summary_line(result: dict) -> str:
    s = result["summary"]
    parts = [f"{s['targets_compared']} target(s) in both runs"]
    if s["only_in_baseline"] or s["only_in_current"]:
        parts.append(f"{s['only_in_baseline']} only in the baseline, {s['only_in_current']} only in the current")
    parts += [f"{s['accuracy_changes']} accuracy figure(s), {s['per_image_changes']} image cosine(s) and "
              f"{s['gate_changes']} gate field(s) changed",
              f"{s['speed_changes']} throughput(s) changed beyond their 95 % intervals ({s['within_noise']} within "
              f"noise, {s.get('not_comparable', 0)} not comparable (load or host), {s['no_interval']} without an "
              "interval)",
              f"{s['version_changes']} version(s) differ"]
    return "; ".join(parts) + "."


def sections(result: dict) -> list[dict]:
    """The views' sections: {"title", "text", "head", "rows", "strong" (per row: whether to stress its last
    cell)}; head None for a text-only section. Markdown and HTML both render these."""
    out = []
    out.append({"title": "Versions that differ", "text": "" if result["versions"] else "None.",
                "head": ["what", "kind", "baseline", "current"] if result["versions"] else None,
                "rows": [[v["what"], v["kind"], str(v["baseline"]), str(v["current"])] for v in result["versions"]]})
    only = [[t["name"], t["arch"], t["tower"], t["precision"], side] for side in ("baseline", "current")
            for t in result[f"only_in_{side}"]]
    out.append({"title": "Targets only in one run", "text": "" if only else "None.",
                "head": ["target", "arch", "tower", "precision", "only in"] if only else None, "rows": only})
    speed = [[t["name"], s["model"], str(s["batch_size"]), _fps(s["baseline_fps"], s["baseline_ci95"]),
              _conditions(s, "baseline"), _fps(s["current_fps"], s["current_ci95"]), _conditions(s, "current"),
              _num(s["ratio"], ".2f") + "×" if s["ratio"] else "n/a", s["verdict"]]
             for t in result["targets"] for s in t["speed"]]
    out.append({"title": "Throughput", "text": "Images per second with their 95 % intervals, each beside the load other "
                "processes put on its run and the host's matmul ceiling measured in that job: a change is named only "
                "when the two intervals do not overlap and both runs were quiet (scaled by each run's ceiling where "
                f"the ceilings differ by more than {CEILING_TOLERANCE:.0%}); otherwise it is not comparable."
                if speed else "No throughput measured in both runs.",
                "head": ["target", "model", "batch", "baseline images/s", "baseline load, ceiling", "current images/s",
                         "current load, ceiling", "current / baseline", "verdict"] if speed else None,
                "rows": speed, "strong": [r[-1].startswith(("faster", "slower")) for r in speed]})
    figures = [[t["name"], c["pair"], c["figure"], _num(c["baseline"], _fmt(c["figure"])),
                _num(c["current"], _fmt(c["figure"])), _num(c["change"], "+.1e")]
               for t in result["targets"] for c in t["accuracy"]]
    out.append({"title": "Accuracy figures that changed",
                "text": f"Absolute tolerance {result['tolerance']:g}." + ("" if figures else " None changed."),
                "head": ["target", "pair", "figure", "baseline", "current", "change"] if figures else None,
                "rows": figures})
    gates = [[t["name"], g["gate"], g["field"], _value(g["baseline"], ".8f"), _value(g["current"], ".8f")]
             for t in result["targets"] for g in t["gates"]]
    out.append({"title": "Gates that changed", "text": "" if gates else "None.",
                "head": ["target", "gate", "field", "baseline", "current"] if gates else None, "rows": gates})
    images, more = [], 0
    for t in result["targets"]:
        images += [[t["name"], c["pair"], c["image"], _num(c["baseline"], ".8f"), _num(c["current"], ".8f"),
                    _num(c["change"], "+.1e")] for c in t["per_image"][:PER_IMAGE_SHOWN]]
        more += max(0, len(t["per_image"]) - PER_IMAGE_SHOWN)
    out.append({"title": "Image cosines that changed",
                "text": (f"Largest changes first, up to {PER_IMAGE_SHOWN} per target"
                         + (f"; {more} more in compare.json." if more else ".")) if images else "None.",
                "head": ["target", "pair", "image", "baseline", "current", "change"] if images else None,
                "rows": images})
    notes = [[t["name"], n] for t in result["targets"] for n in t["notes"]]
    if notes:
        out.append({"title": "Notes", "text": "", "head": ["target", "note"], "rows": notes})
    return out


def _title(result: dict) -> str:
    return "Comparison of two runs: " + ", ".join(a for a in result["current"]["archs"] if a)


def _source(about: dict) -> str:
    return f"{about['source'] or 'report'} ({', '.join(a for a in about['archs'] if a)}, verdict {about['verdict']}, " \
           f"{about['targets']} target(s){', synthetic weights' if about['synthetic'] else ''})"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(result: dict) -> str:
    lines = [f"# {_title(result)}", "", f"Baseline: {_source(result['baseline'])}  ",
             f"Current: {_source(result['current'])}", "", f"**{summary_line(result)}**", ""]
    for sec in sections(result):
        lines += [f"## {sec['title']}", ""]
        if sec["text"]:
            lines += [sec["text"], ""]
        if sec["head"]:
            lines += ["| " + " | ".join(sec["head"]) + " |", "|" + "---|" * len(sec["head"])]
            strong = sec.get("strong") or [False] * len(sec["rows"])
            for row, bold in zip(sec["rows"], strong):
                cells = [_md_cell(c) for c in row]
                if bold:
                    cells[-1] = f"**{cells[-1]}**"
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#24292f;padding:0 1em}"
       "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #d0d7de;padding:.3em .6em;"
       "text-align:left;font-size:.92em}th{background:#f6f8fa}.changed{color:#cf222e;font-weight:600}"
       ".summary{background:#f6f8fa;border-left:4px solid #0969da;padding:.6em 1em}.note{color:#57606a}")


def render_html(result: dict) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(_title(result))}</title>"
             f"<style>{CSS}</style></head><body><main>", f"<h1>{e(_title(result))}</h1>",
             f"<p>Baseline: {e(_source(result['baseline']))}<br>Current: {e(_source(result['current']))}</p>",
             f"<p class=\"summary\">{e(summary_line(result))}</p>"]
    for sec in sections(result):
        parts.append(f"<h2>{e(sec['title'])}</h2>")
        if sec["text"]:
            parts.append(f"<p class=\"note\">{e(sec['text'])}</p>")
        if sec["head"]:
            strong = sec.get("strong") or [False] * len(sec["rows"])
            changed = ' class="changed"'
            rows = "".join("<tr>" + "".join(f"<td{changed if bold and i == len(row) - 1 else ''}>{e(str(c))}</td>"
                                            for i, c in enumerate(row)) + "</tr>"
                           for row, bold in zip(sec["rows"], strong))
            parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in sec["head"])
                         + f"</tr></thead><tbody>{rows}</tbody></table>")
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def write_compare(result: dict, out_json, out_md, out_html) -> None:
    """compare.json (the data), and compare.md and compare.html rendered from it."""
    for path, text in ((out_json, json.dumps(result, indent=1, ensure_ascii=False) + "\n"),
                       (out_md, render_markdown(result)), (out_html, render_html(result))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
