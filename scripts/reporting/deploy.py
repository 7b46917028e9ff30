"""The deployment the run chooses: for each architecture, tower and device (a chip, or the host CPU, where
every CPU backend competes), the fastest target that meets every gate, a repaired model
included, and when nothing passes, the closest candidate and why. `gates_of(target)` lists a target's
gates (reporting.load.target_gates)."""

from __future__ import annotations

from typing import Callable


def _fastest(t: dict) -> tuple[float | None, int | None, list | None]:
    """(throughput, batch size, the gears of its dynamic-batch model or None) of a target's best measured
    benchmark (a static model's, or its dynamic-batch model's at one batch), or (None, None, None)."""
    perf = [p for p in t.get("performance") or [] if p.get("throughput_fps")]
    if not perf:
        return None, None, None
    best = max(perf, key=lambda p: p["throughput_fps"])
    return best["throughput_fps"], best["batch_size"], best.get("dynamic_batch")


def _deficit(t: dict, gates_of: Callable) -> tuple[int, float]:
    """How far a target is from passing: (gates missed, the worst missed gate's shortfall below its bound)."""
    missed = [g for g in gates_of(t) if not g["passed"]]
    shortfall = max((g["threshold"] - (g.get("cosine_min") if g.get("cosine_min") is not None else g.get("value", 0)
                                       or 0) for g in missed if g.get("threshold") is not None), default=0.0)
    return len(missed), shortfall


def candidates(t: dict, image_twin: dict | None, gates_of: Callable) -> list[dict]:
    """A target's deployable forms: as built when it meets every gate; its repaired model when repair
    passed (every gate is then judged on the repaired model only for vs_torch_fp32, which repair verifies on
    every input: the candidate says so). Throughput: the target's own benchmark; a repaired model's is the
    target's scaled by repair's measured latency ratio (unrepaired / repaired, one job, batch 1). A text
    target has no benchmark: its image twin's figure stands for the deployment's speed."""
    speed, batch, gears = _fastest(t if t.get("performance") else image_twin or {})
    base = {"arch": t["arch"], "tower": t.get("tower", "image"), "device": t["device"], "backend": t["backend"],
            "dir": t["dir"], "precision": t["precision"], "fastest_batch_size": batch,
            "fastest_dynamic_batch": gears,  # that batch on the one dynamic-batch model (these gears), or None
            "hardware": t["device"]}  # deprecated alias of `device` (CONTRACT.md), kept for one release
    out = []
    if all(g["passed"] for g in gates_of(t)):
        out.append({**base, "repaired": False, "throughput_fps": speed,
                    "reason": "meets every gate as built" + ("" if t.get("performance") else
                                                             " (speed: its image twin's benchmark)")})
    rep = t.get("repair") or {}
    if rep.get("repaired") and rep.get("passed"):
        ratio = (rep.get("speed") or {}).get("repaired_vs_unrepaired")
        out.append({**base, "repaired": True, "model": rep.get("model"), "kept": len(rep.get("kept") or []),
                    "throughput_fps": speed / ratio if speed and ratio else None,
                    "reason": f"repaired: {len(rep.get('kept') or [])} node(s) kept in fp32 bring vs_torch_fp32 back "
                              f"over its gate on every input; speed: the target's benchmark scaled by repair's "
                              f"measured latency ratio ({ratio:.2f}x)" if ratio else "repaired (speed not measured)"})
    return out


def choose(targets: list[dict], gates_of: Callable) -> tuple[list[dict], list[dict]]:
    """(deployments, missing): per (arch, tower, device) the fastest candidate (candidates()); where none
    passes, a `missing` entry naming the closest target (fewest gates missed, then the smallest shortfall)."""
    groups: dict[tuple, list[dict]] = {}
    for t in targets:
        groups.setdefault((t["arch"], t.get("tower", "image"), t["device"]), []).append(t)
    twins = {(t["arch"], t["backend"], t["device"], t["precision"]): t for t in targets if t.get("tower", "image") == "image"}
    deployments, missing = [], []
    for (arch, tower, device), members in groups.items():
        found = [c for t in members
                 for c in candidates(t, twins.get((arch, t["backend"], t["device"], t["precision"])), gates_of)]
        if found:
            best = max(found, key=lambda c: (c["throughput_fps"] or 0.0, not c["repaired"]))
            others = len(found) - 1
            best = {**best, "reason": best["reason"] + f"; the fastest of {others + 1} candidate(s) that pass on "
                                                       f"{device}" if others else best["reason"]}
            deployments.append(best)
        else:
            closest = min(members, key=lambda t: _deficit(t, gates_of))
            missed, shortfall = _deficit(closest, gates_of)
            missing.append({"arch": arch, "tower": tower, "device": device, "hardware": device,  # deprecated alias
                            "closest": closest["dir"],
                            "backend": closest["backend"], "precision": closest["precision"],
                            "reason": f"no target meets every gate; closest: {closest['backend']} {closest['precision']} "
                                      f"({missed} gate(s) missed, worst by {shortfall:.3g})"
                                      + ("" if closest.get("repair") else "; `repair: true` may win it back")})
    return deployments, missing
