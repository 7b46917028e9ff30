"""The report's figures (matplotlib, Agg backend, PNG): the precision chain, accuracy versus speed,
per-image accuracy, throughput and latency. Each function takes the report (model.Report) and a path,
and copes with what a record may lack (no p90 from a device tool, no benchmarks, one batch size). Per-image
figures stay readable at any number of images: distributions and the worst few by name."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

import backends  # noqa: E402
from pipeline.paths import STAGES  # noqa: E402

from .rows import WORST_N, best, ceilings, cosine_gates, quantile, speedup_vs_torch, worst_images  # noqa: E402

# File names under the report's plot folder (results/report/), in the order the report shows them.
PLOTS = ("accuracy_chain", "throughput", "accuracy_vs_speed", "per_image", "latency")

# 1 - cosine below this is float64 rounding: drawn on the floor so a log axis can show it.
FLOOR = 1e-16
def stage_notes() -> dict[str, str]:
    """The chain's stages (paths.STAGES) as the precision-chain figure labels them."""
    runtime = backends.reference().LABEL
    return {"torch_fp32": "cn_clip PyTorch\n(ground truth)", "onnx_fp32": f"{runtime}\nfp32 ONNX",
            "onnx_fp16": f"{runtime}\nfp16 ONNX", "offline": "compiled\nmodel"}
COLORS = ("#1f6feb", "#8250df", "#bf8700", "#0a7f6f", "#cf222e", "#6e7781")
TORCH_COLOR = "#8c959f"
PASS_COLOR, FAIL_COLOR = "#1a7f37", "#cf222e"
PAIR_STYLE = {  # (a, b) -> (colour, marker, label)
    ("onnx_fp32", "torch_fp32"): ("#8250df", "o", "onnx_fp32 vs torch_fp32"),
    ("onnx_fp16", "torch_fp32"): ("#bf8700", "s", "onnx_fp16 vs torch_fp32"),
    ("offline", "torch_fp32"): ("#1f6feb", "D", "offline vs torch_fp32"),
    ("offline", "onnx_fp16"): ("#0a7f6f", "^", "offline vs onnx_fp16"),
}

STYLE = {
    "font.size": 10, "axes.titlesize": 11.5, "axes.titleweight": "bold", "axes.labelsize": 10,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.color": "#d0d7de",
    "grid.linewidth": 0.6, "axes.axisbelow": True, "legend.fontsize": 8.5, "legend.frameon": False,
    "figure.dpi": 100, "savefig.dpi": 130,
}


def drift(cosine: float | None) -> float:
    """1 - cosine, floored at FLOOR (a log axis cannot show 0); a missing or NaN cosine is drawn as
    1 (no agreement at all)."""
    if cosine is None or not math.isfinite(cosine):
        return 1.0
    return max(1.0 - cosine, FLOOR)


def image_targets(report: dict) -> list[dict]:
    """The targets of the image tower: the per-image figures are theirs (the text tower's per-label
    figures are in the report's tables, where its labels' script renders)."""
    return [t for t in report["targets"] if t.get("tower", "image") == "image"]


def _pairs(t: dict) -> dict:
    return {(p["a"], p["b"]): p for p in t["accuracy"]["pairs"]}


def _gates(t: dict) -> dict:
    return cosine_gates(t)


def _save(fig, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", facecolor="white", metadata={"Software": None})
    plt.close(fig)


def _fmt_drift(value: float) -> str:
    return f"≤{FLOOR:.0e}" if value <= FLOOR else f"{value:.1e}"


def _log_limits(ax, values: list[float], extra: list[float]) -> None:
    finite = [v for v in values + extra if v and v > 0]
    lo, hi = min(finite), max(finite)
    ax.set_ylim(10 ** math.floor(math.log10(lo) - 1.0), 10 ** math.ceil(math.log10(hi) + 0.6))


def _offline_note(targets: list[dict]) -> str:
    """What the offline model was compiled from: the chain reads differently when it is the fp32 ONNX."""
    sources = set()
    for t in targets:
        precision = (t.get("compile_options") or {}).get("precision")
        for c in t.get("compiled") or []:
            name = Path(c.get("source") or "").name
            sources.add(precision or ("fp16" if ".fp16." in name else "fp32" if ".fp32." in name else None))
    sources.discard(None)
    if len(sources) != 1:
        return stage_notes()["offline"]
    source = sources.pop()
    return f"compiled from\nthe {source} ONNX" if source in ("fp16", "fp32") else f"compiled\n({source})"


def accuracy_chain(report: dict, path) -> None:
    """1 - cosine against the PyTorch fp32 model at every stage of torch_fp32 -> onnx_fp32 -> onnx_fp16
    -> offline, log axis: each stage's added drift is the step between two points. Worst image bold,
    90% of the images as a band; the gates as red zones; offline vs onnx_fp16 (the seed's check) as its own marker."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 4.4))
        x = list(range(len(STAGES)))
        values, gate_values = [], []
        targets = image_targets(report)
        multi = len(targets) > 1
        handles = []
        for i, t in enumerate(targets):
            color = COLORS[i % len(COLORS)]
            pairs, gates = _pairs(t), _gates(t)
            stages = [s for s in STAGES[1:] if (s, "torch_fp32") in pairs]
            xs = [STAGES.index(s) for s in stages]
            # 90% of the images as a band (the 5th to the 95th percentile of the drift): any number of images
            spread = [[drift(c) for c in pairs[(s, "torch_fp32")]["per_image"].values()] for s in stages]
            if spread and all(spread):
                ax.fill_between(xs, [quantile(v, 0.05) for v in spread], [quantile(v, 0.95) for v in spread],
                                color=color, alpha=0.15, lw=0, zorder=2)
            worst = [drift(pairs[(s, "torch_fp32")]["cosine_min"]) for s in stages]
            values += worst
            ax.plot(xs, worst, color=color, lw=2.4, marker="o", ms=7, zorder=4)
            for k, (xi, yi) in enumerate(zip(xs, worst)):
                # above the point unless the line comes from or goes to a higher point
                neighbours = [worst[j] for j in (k - 1, k + 1) if 0 <= j < len(worst)]
                below = bool(neighbours) and all(n > yi * 1.5 for n in neighbours)
                ax.annotate(_fmt_drift(yi), (xi, yi), textcoords="offset points", xytext=(0, -16 if below else 9),
                            ha="center", fontsize=8.5, color=color, fontweight="bold")
            label = f"{t['name']}: worst image (bold), 90% of images (band)" if multi else \
                "worst image (bold), 90% of images (band)"
            handles.append(Line2D([], [], color=color, lw=2.4, marker="o", label=label))
            step = pairs.get(("offline", "onnx_fp16"))
            if step:
                ys = drift(step["cosine_min"])
                values.append(ys)
                ax.plot([3.22], [ys], marker="^", ms=9, mfc="white", mec=color, mew=1.8, ls="none", zorder=5)
                ax.annotate(f"{_fmt_drift(ys)}\nvs onnx_fp16", (3.22, ys), textcoords="offset points",
                            xytext=(8, -4), ha="left", va="top", fontsize=8, color=color)
                if i == 0:
                    handles.append(Line2D([], [], marker="^", ms=8, mfc="white", mec=color, mew=1.6, ls="none",
                                          label="offline vs onnx_fp16 (the seed's check)"))
                g = gates.get(("offline", "onnx_fp16"))
                if g and i == 0:
                    gy = drift(g["threshold"])
                    gate_values.append(gy)
                    ax.plot([2.9, 3.55], [gy, gy], color=FAIL_COLOR, ls=":", lw=1.6, zorder=3)
                    ax.annotate(f"gate {g['threshold']:g}", (3.55, gy), textcoords="offset points",
                                xytext=(0, 3), ha="right", fontsize=7.5, color=FAIL_COLOR)
            g = gates.get(("offline", "torch_fp32")) or next((g for (a, b), g in gates.items() if b == "torch_fp32"),
                                                             None)
            if g and i == 0:
                gy = drift(g["threshold"])
                gate_values.append(gy)
                ax.axhline(gy, color=FAIL_COLOR, ls="--", lw=1.4, zorder=3)
                ax.axhspan(gy, 1e3, color=FAIL_COLOR, alpha=0.07, zorder=1)
                ax.annotate("FAIL zone", (-0.3, gy), textcoords="offset points", xytext=(0, 4), fontsize=8,
                            color=FAIL_COLOR, fontweight="bold")
                handles.append(Line2D([], [], color=FAIL_COLOR, ls="--",
                                      label=f"gate vs torch_fp32: cosine ≥ {g['threshold']:g} (red = FAIL)"))
        ax.set_yscale("log")
        if values:
            _log_limits(ax, values, gate_values)
        ax.set_xlim(-0.35, 3.75)
        notes = {**stage_notes(), "offline": _offline_note(targets)}
        ax.set_xticks(x, [f"{s}\n{notes[s]}" for s in STAGES], fontsize=8.5)
        ax.annotate("reference\n(drift 0)", (0, 0.5), xycoords=("data", "axes fraction"), ha="center",
                    fontsize=9, color="#57606a")
        ax.set_ylabel("1 − cosine vs torch_fp32  (log, lower is better)")
        ax.set_title("Precision chain: drift from the PyTorch fp32 model per stage")
        ax.grid(axis="x", visible=False)
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
        _save(fig, path)


def _gate_lines(ax, gates: dict) -> list[float]:
    """The gates as vertical red lines on a 1 - cosine axis; returns their x positions."""
    for (a, b), g in gates.items():
        ax.axvline(drift(g["threshold"]), color=FAIL_COLOR, ls="--" if b == "torch_fp32" else ":", lw=1.2)
    for th in {g["threshold"] for g in gates.values()}:
        ax.annotate(f"gate {th:g}", (drift(th), 1.0), xycoords=("data", "axes fraction"), rotation=90,
                    ha="right", va="top", fontsize=7.5, color=FAIL_COLOR, xytext=(-2, 0), textcoords="offset points")
    return [drift(g["threshold"]) for g in gates.values()]


def _log_x(ax, values: list[float]) -> None:
    finite = [v for v in values if v > 0]
    if finite:
        ax.set_xscale("log")
        ax.set_xlim(10 ** math.floor(math.log10(min(finite)) - 0.3), 10 ** math.ceil(math.log10(max(finite)) + 0.3))


def per_image(report: dict, path) -> None:
    """Per target (one row each): left, the distribution of 1 - cosine over every image for each pair
    (a box: quartiles; whiskers: 5th and 95th percentile; dots beyond); right, the WORST_N worst images
    by name. Readable at any number of images."""
    targets = [t for t in image_targets(report) if t["accuracy"]["pairs"]]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(max(len(targets), 1), 2, figsize=(12, 0.6 + 2.9 * max(len(targets), 1)),
                                 squeeze=False, gridspec_kw={"width_ratios": (1, 1.1)})
        if not targets:
            _no_data(axes[0][0], "no accuracy records")
        for (dist, worst), t in zip(axes, targets):
            pairs, gates = _pairs(t), _gates(t)
            keys = [k for k in PAIR_STYLE if k in pairs]
            data = [[drift(c) for c in pairs[k]["per_image"].values()] for k in keys]
            box = dist.boxplot(data, orientation="horizontal", whis=(5, 95), widths=0.55, patch_artist=True,
                               flierprops={"marker": ".", "markersize": 3, "alpha": 0.5})
            for patch, k in zip(box["boxes"], keys):
                patch.set(facecolor=PAIR_STYLE[k][0], alpha=0.35, edgecolor=PAIR_STYLE[k][0])
            dist.set_yticks(range(1, len(keys) + 1), [PAIR_STYLE[k][2] for k in keys], fontsize=8)
            values = [v for d in data for v in d] + _gate_lines(dist, gates)
            _log_x(dist, values)
            dist.grid(axis="y", visible=False)
            dist.set_xlabel("1 − cosine (log, lower is better)")
            n = len(pairs[keys[0]]["per_image"]) if keys else 0
            dist.set_title(f"{t['name']}: distribution over {n} images")
            shown = worst_images(t, WORST_N)
            ys = list(range(len(shown)))[::-1]
            for k in keys:
                color, marker, label = PAIR_STYLE[k]
                worst.scatter([drift(pairs[k]["per_image"][s]) for s in shown], ys, color=color, marker=marker, s=30,
                              label=label, zorder=3, alpha=0.9)
            _gate_lines(worst, gates)
            _log_x(worst, values)
            worst.set_yticks(ys, shown, fontsize=8)
            worst.set_ylim(-0.7, max(len(shown), 1) - 0.3)
            worst.grid(axis="y", visible=False)
            worst.set_xlabel("1 − cosine (log, lower is better)")
            worst.set_title(f"the {len(shown)} worst of {n}" if n > len(shown) else "every one, worst at the top")
        fig.legend(*axes[0][1].get_legend_handles_labels(), loc="lower center", ncol=4, bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.05 / max(len(targets), 1) + 0.02, 1, 1))
        _save(fig, path)


def speed_points(report: dict) -> list[tuple]:
    """(target, its best benchmark, worst 1 - cosine of offline vs torch_fp32, that pair's gate) for
    every target that has both a benchmark and that pair."""
    points = []
    for t in report["targets"]:
        p, pair = best(t), _pairs(t).get(("offline", "torch_fp32"))
        if p and pair:
            points.append((t, p, drift(pair["cosine_min"]), _gates(t).get(("offline", "torch_fp32"))))
    return points


def accuracy_vs_speed(report: dict, path) -> None:
    """One point per target: throughput at its best batch size (log x) against its worst image's
    1 - cosine vs torch_fp32 (log y), labelled by target name; the gate vs torch_fp32 as a red line
    (above it: FAIL). Targets without a benchmark or without the offline vs torch_fp32 pair are left out."""
    points = speed_points(report)
    threshold = ((report.get("config") or {}).get("gates") or {}).get("vs_torch_fp32")
    if threshold is None:
        threshold = next((g["threshold"] for _, _, _, g in points if g), None)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 4.4))
        if not points:
            _no_data(ax, "no target with both a benchmark and the offline vs torch_fp32 pair")
            _save(fig, path)
            return
        ys = [y for _, _, y, _ in points]
        # labels alternate above and below from left to right, so neighbours do not overlap
        rank = {id(p): k for k, (_, p, _, _) in enumerate(sorted(points, key=lambda q: q[1]["throughput_fps"]))}
        chosen = {d["dir"] for d in report.get("deployments") or [] if not d["repaired"]}
        for i, (t, p, y, gate) in enumerate(points):
            passed = gate["passed"] if gate else None
            ax.scatter([p["throughput_fps"]], [y], s=70, color=COLORS[i % len(COLORS)], zorder=4,
                       edgecolor=FAIL_COLOR if passed is False else "white", linewidth=1.8)
            if t["dir"] in chosen:  # the deployment the run chose for its device
                ax.scatter([p["throughput_fps"]], [y], s=320, marker="*", facecolor="none", edgecolor="#1a7f37",
                           linewidth=1.6, zorder=5, label="deployment (fastest that meets every gate)")
            ax.annotate(f"{t['name']}\n(batch {p['batch_size']})", (p["throughput_fps"], y),
                        textcoords="offset points", xytext=(7, 5 if rank[id(p)] % 2 == 0 else -22), fontsize=8,
                        color="#24292f")
        ax.set_xscale("log")
        ax.set_yscale("log")
        if threshold is not None:
            gy = drift(threshold)
            ax.axhline(gy, color=FAIL_COLOR, ls="--", lw=1.4, zorder=3)
            ax.axhspan(gy, 1e3, color=FAIL_COLOR, alpha=0.07, zorder=1)
            ax.annotate(f"gate: cosine ≥ {threshold:g} (1 − cos {_fmt_drift(gy)}); above: FAIL", (0.01, gy),
                        xycoords=("axes fraction", "data"), textcoords="offset points", xytext=(0, 4), fontsize=8,
                        color=FAIL_COLOR)
            ys.append(gy)
        for d in report.get("deployments") or []:  # a repaired deployment: its estimated speed, at the gate
            if d["repaired"] and d.get("throughput_fps"):
                after = next((t.get("repair") or {} for t, *_ in points if t["dir"] == d["dir"]), {}).get("after")
                if after and after.get("cosine_min") is not None:
                    ry = drift(after["cosine_min"])
                    ax.scatter([d["throughput_fps"]], [ry], s=320, marker="*", color="#1a7f37", zorder=5,
                               label="deployment (repaired)")
                    ys.append(ry)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=7)
        _log_limits(ax, ys, [])
        xs = [p["throughput_fps"] for _, p, _, _ in points]
        ax.set_xlim(min(xs) / 2, max(xs) * 3)
        ax.set_xlabel("images / s at the best batch size (log, higher is better)")
        ax.set_ylabel("worst 1 − cosine vs torch_fp32  (log, lower is better)")
        ax.set_title("Accuracy versus speed, one point per target")
        _save(fig, path)


def _series(report: dict) -> list[dict]:
    """Every measured model: the offline model of each target and the PyTorch fp32 baseline measured
    in the same job. {label, color, rows: {batch: record}}."""
    out = []
    multi = len(report["targets"]) > 1
    for i, t in enumerate(report["targets"]):
        perf = t.get("performance") or []
        if not perf:
            continue
        out.append({"label": f"offline {t['name']}", "short": f"offline\n{t['name']}",
                    "color": COLORS[i % len(COLORS)],
                    "rows": {p["batch_size"]: p for p in perf}})
        base = {p["batch_size"]: p["baseline_torch_fp32"] for p in perf if p.get("baseline_torch_fp32")}
        if base:
            out.append({"label": "torch_fp32 (PyTorch)" + (f", with {t['name']}" if multi else ""),
                        "short": "torch_fp32\n" + (f"(with {t['name']})" if multi else "(PyTorch)"),
                        "color": TORCH_COLOR if not multi else _lighter(COLORS[i % len(COLORS)]), "rows": base,
                        "torch": True})
    return out


def _lighter(color: str) -> str:
    r, g, b = (int(color[k:k + 2], 16) for k in (1, 3, 5))
    return "#" + "".join(f"{int(v + (255 - v) * 0.55):02x}" for v in (r, g, b))


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#57606a")
    ax.set_xticks([])
    ax.set_yticks([])


def _fmt_value(v: float) -> str:
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def throughput(report: dict, path) -> None:
    """Images per second per batch size: every offline model beside its PyTorch fp32 baseline, with the
    speed-up written over the offline bar and each bar's 95 % interval as an error bar (where recorded)."""
    series = _series(report)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 4.4))
        batches = sorted({b for s in series for b in s["rows"]})
        if not batches:
            _no_data(ax, "no benchmark records")
            _save(fig, path)
            return
        width = min(0.8 / len(series), 0.3)
        values = []
        for k, s in enumerate(series):
            xs, ys, errors = [], [], []
            for j, b in enumerate(batches):
                if b in s["rows"] and s["rows"][b].get("throughput_fps") is not None:
                    xs.append(j + width * (k + 0.5 - len(series) / 2))
                    ys.append(s["rows"][b]["throughput_fps"])
                    ci = s["rows"][b].get("throughput_fps_ci95") or (ys[-1], ys[-1])
                    errors.append((max(0.0, ys[-1] - ci[0]), max(0.0, ci[1] - ys[-1])))
            values += ys
            bars = ax.bar(xs, ys, width * 0.92, color=s["color"], label=s["label"], zorder=3,
                          yerr=list(zip(*errors)) if any(e != (0.0, 0.0) for e in errors) else None,
                          error_kw={"ecolor": "#24292f", "capsize": 3, "elinewidth": 1, "zorder": 4})
            for bar, y, b in zip(bars, ys, [b for b in batches if b in s["rows"]]):
                text = _fmt_value(y)
                speedup = speedup_vs_torch(s["rows"][b])
                if not s.get("torch") and speedup:
                    text += f"\n{speedup:.2f}× torch"
                ax.annotate(text, (bar.get_x() + bar.get_width() / 2, y), textcoords="offset points",
                            xytext=(0, 3), ha="center", va="bottom", fontsize=8.5, fontweight="bold",
                            color="#24292f")
        _value_axis(ax, values, "images / s", "higher is better", log_headroom=8, linear_headroom=1.3)
        ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
        ax.set_xlim(-0.5 - 0.25 * (len(series) > 2), len(batches) - 0.5 + 0.25 * (len(series) > 2))
        ax.grid(axis="x", visible=False)
        measured = {ceilings(p) for t in report["targets"] for p in t.get("performance") or []} - {"n/a"}
        note = f"\nhost fp32 matmul GFLOP/s: {'; '.join(sorted(measured))}" if measured else ""
        ax.set_title("Throughput vs batch size, with the PyTorch fp32 baseline" + note)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2)
        _save(fig, path)


def _value_axis(ax, values, unit: str, better: str, log_headroom: float, linear_headroom: float) -> None:
    """Log y-axis when the values span more than 30x (so small bars stay readable), linear otherwise."""
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 30:
        ax.set_yscale("log")
        ax.set_ylim(min(positive) / 3, max(positive) * log_headroom)
        ax.set_ylabel(f"{unit}  (log, {better})")
    else:
        ax.set_ylim(0, max(values or [1]) * linear_headroom)
        ax.set_ylabel(f"{unit}  ({better})")


def latency(report: dict, path) -> None:
    """Latency per batch of every model and batch size: mean (hatched), p50, p90 and p99 bars; a
    percentile the record lacks (a device tool may give no p90) is marked n/a."""
    series = _series(report)
    stats = ("mean", "p50", "p90", "p99")
    shades = {"mean": 0.35, "p50": 0.5, "p90": 0.75, "p99": 1.0}
    with plt.rc_context(STYLE):
        groups = [(b, s) for b in sorted({b for s in series for b in s["rows"]}) for s in series if b in s["rows"]]
        fig, ax = plt.subplots(figsize=(max(7.2, 1.9 * len(groups) + 2), 4.2))
        if not groups:
            _no_data(ax, "no benchmark records")
            _save(fig, path)
            return
        width = 0.2
        values = []
        for j, (b, s) in enumerate(groups):
            lat = s["rows"][b].get("latency_ms") or {}
            for k, q in enumerate(stats):
                v = lat.get(q)
                xk = j + (k - 1.5) * width
                if v is None:
                    ax.annotate("n/a", (xk, 0.01), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                                fontsize=7.5, color="#57606a")
                    continue
                values.append(v)
                if q == "mean":
                    ax.bar(xk, v, width * 0.9, facecolor="white", edgecolor=s["color"], hatch="///", lw=1.2,
                           zorder=3)
                else:
                    ax.bar(xk, v, width * 0.9, color=s["color"], alpha=shades[q], zorder=3)
                ax.annotate(_fmt_value(v), (xk, v), textcoords="offset points", xytext=(0, 2), ha="center",
                            va="bottom", fontsize=7.5)
        _value_axis(ax, values, "ms per batch", "lower is better", log_headroom=5, linear_headroom=1.18)
        ax.set_xticks(range(len(groups)), [f"{s['short']}\nbatch {b}" for b, s in groups], fontsize=8)
        ax.grid(axis="x", visible=False)
        handles = [Patch(facecolor="white", edgecolor="#57606a", hatch="///", label="mean")]
        handles += [Patch(color="#57606a", alpha=shades[q], label=q) for q in stats[1:]]
        ax.legend(handles=handles, loc="upper left", ncol=4)
        ax.set_title("Latency per batch: mean and percentiles")
        _save(fig, path)


def placeholder(path, title: str, message: str) -> None:
    """A figure that says why the real one could not be drawn (the report is still written)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 2.2))
        ax.set_axis_off()
        ax.text(0.5, 0.6, f"{title}: no figure", ha="center", va="center", fontsize=12, fontweight="bold")
        ax.text(0.5, 0.3, message[:160], ha="center", va="center", fontsize=9, color="#57606a", wrap=True)
        _save(fig, path)


def write_plots(report: dict, paths: dict) -> dict:
    """Write every plot named in PLOTS whose path is given; returns {name: path}. A plot that fails
    (a record of a shape not foreseen) becomes a placeholder that names the error: the figures must
    never cost the report itself."""
    import logging

    makers = {"accuracy_chain": accuracy_chain, "per_image": per_image, "throughput": throughput,
              "accuracy_vs_speed": accuracy_vs_speed, "latency": latency}
    out = {}
    for name in PLOTS:
        if not paths.get(name):
            continue
        try:
            makers[name](report, paths[name])
        except Exception as exc:  # noqa: BLE001 - logged, and drawn in place of the figure
            logging.getLogger("cnclip-deploy").exception("plot %s failed", name)
            plt.close("all")
            placeholder(paths[name], name, f"{type(exc).__name__}: {exc}")
        out[name] = str(paths[name])
    return out
