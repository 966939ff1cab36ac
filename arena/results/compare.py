"""Did a framework run the same model? Compare its outputs, loss and gradients with the reference.

The artifacts compared are described in arena/results/artifact.py, which makes them inside the cell.
This module is the verdict alone, so that a change here (or in the tolerances) can be re-judged from
the stored artifacts without re-measuring (`python -m arena.results rejudge`). Norms and samples alone
miss an error confined to a few elements and every norm-preserving error (sign flips, permutations); a
projection over all elements moves by about |z| * ||error|| whatever the error's shape, so comparing
projections bounds the relative L2 error of the whole tensor. Degeneracy guards come first: non-finite,
all-zero or constant outputs fail whatever the tolerances say, so a model that outputs zeros can never
"match" a reference that is near zero.

A cell passes only if every workload it supports produced every output the reference has (and, for
training, its loss and gradients): a workload that errored or skipped an output fails the cell.
"""

from __future__ import annotations

import numpy as np

from arena.results.schema import Check, Correctness
from arena.specs.schema import Tolerances

# Logits whose argmax differs from the reference's are a near-tie (and excused) only if the reference
# scores the candidate's choice within this many output tolerances of its own top score. Elementwise
# agreement alone allows a flip across a margin of up to two tolerances (each score moving by one); a
# correct implementation's error is about a tenth of a tolerance, so a flip across more than one is a
# wrong model that the loose bound of a low-precision runtime would otherwise let through.
ARGMAX_TIE_TOLERANCES = 1.0


def degeneracy(array: np.ndarray) -> str:
    """Why an output cannot be evidence of a correct model, or '' if it can."""
    if not np.all(np.isfinite(array)):
        return f"non-finite values ({int(np.sum(~np.isfinite(array)))} of {array.size})"
    if not np.any(array):
        return "all-zero output"
    if array.size > 1 and float(np.max(array) - np.min(array)) == 0.0:
        return f"constant output ({float(array.reshape(-1)[0])})"
    return ""


def validate_reference(reference: dict[str, np.ndarray]) -> list[Check]:
    """The reference itself must not be degenerate (a broken reference would pass broken frameworks)."""
    checks = []
    for key, array in reference.items():
        if "/grad_" in key:
            continue
        problem = degeneracy(array) if array.size > 1 else ("" if np.isfinite(array).all() else "non-finite")
        checks.append(Check(name=key, passed=not problem, detail=problem))
    return checks


def compare(candidate: dict[str, np.ndarray], reference: dict[str, np.ndarray], tol: Tolerances, workloads: set[str] | None = None) -> Correctness:
    """The verdict on `candidate` for the `workloads` its framework supports (default: those it has
    outputs of). Everything the reference has for a supported workload must be there and agree."""
    checks: list[Check] = []
    expected = workloads if workloads is not None else {key.split("/")[0] for key in candidate}
    for key in sorted(k for k in reference if k.split("/")[0] in expected):
        if "/grad_" in key:
            continue
        if key not in candidate:
            checks.append(Check(name=key, passed=False, detail="missing from the candidate's outputs"))
        elif key.endswith("/loss"):
            checks.append(_compare_loss(key, candidate[key], reference[key], tol))
        else:
            checks.append(_compare_output(key, candidate[key], reference[key], tol))
    if "training" in expected and any("/grad_norm/" in k for k in reference):
        checks.extend(_compare_grads(candidate, reference, tol))
    if not checks:
        return Correctness(verdict="n/a", reason="no workload with outputs to compare", checks=[])
    failed = [c for c in checks if not c.passed]
    reason = "; ".join(f"{c.name}: {c.detail}" for c in failed[:3]) + (f" (+{len(failed) - 3} more)" if len(failed) > 3 else "")
    return Correctness(verdict="fail" if failed else "pass", reason=reason, checks=checks)


def _compare_output(key: str, a: np.ndarray, b: np.ndarray, tol: Tolerances) -> Check:
    if a.shape != b.shape:
        return Check(name=key, passed=False, detail=f"shape {a.shape} != reference {b.shape}")
    problem = degeneracy(a)
    if problem:
        return Check(name=key, passed=False, detail=problem)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = np.abs(a64 - b64)
    o = tol.output
    figures = {
        "max_abs": float(diff.max()),
        "max_rel": float((diff / np.maximum(np.abs(b64), o.atol or 1e-12)).max()),
        "cosine": _cosine(a64, b64),
        "within_tol": float(np.mean(diff <= o.atol + o.rtol * np.abs(b64))),
        "margin": float((diff / np.maximum(o.atol + o.rtol * np.abs(b64), 1e-30)).max()),
    }
    failures = []
    if a.ndim >= 2 and key.endswith("logits"):
        figures["argmax_agree"], decisive = _argmax_agreement(a64, b64, o)
        figures["argmax_decisive_disagree"] = float(decisive)
        if decisive:
            failures.append(f"argmax differs from the reference's at {decisive} position(s) that are no near-tie")
    if figures["within_tol"] < 1.0:
        failures.append(f"max_abs {figures['max_abs']:.3g} exceeds atol {o.atol:g} + rtol {o.rtol:g}·|ref| at {1 - figures['within_tol']:.2%} of elements")
    if figures["cosine"] < o.min_cosine:
        failures.append(f"cosine {figures['cosine']:.7f} < {o.min_cosine}")
    return Check(name=key, passed=not failures, figures=figures, detail="; ".join(failures))


def _argmax_agreement(a: np.ndarray, b: np.ndarray, o) -> tuple[float, int]:
    """(the fraction of positions whose argmax agrees, how many of the others are not near-ties): a
    position counts against the candidate when the reference's score of the candidate's choice is more
    than ARGMAX_TIE_TOLERANCES output tolerances below the reference's top score."""
    choice_a, choice_b = a.argmax(-1), b.argmax(-1)
    top_b = np.take_along_axis(b, choice_b[..., None], -1)[..., 0]
    b_at_a = np.take_along_axis(b, choice_a[..., None], -1)[..., 0]
    band = ARGMAX_TIE_TOLERANCES * (o.atol + o.rtol * np.abs(top_b))
    return float(np.mean(choice_a == choice_b)), int(np.sum(top_b - b_at_a > band))


def _compare_loss(key: str, a: np.ndarray, b: np.ndarray, tol: Tolerances) -> Check:
    la, lb = float(np.asarray(a).reshape(-1)[0]), float(np.asarray(b).reshape(-1)[0])
    if not np.isfinite(la):
        return Check(name=key, passed=False, detail=f"non-finite loss {la}")
    diff = abs(la - lb)
    figures = {"loss": la, "reference_loss": lb, "abs_diff": diff, "rel_diff": diff / abs(lb) if lb else float("inf")}
    bound = tol.loss.atol + tol.loss.rtol * abs(lb)
    figures["margin"] = diff / bound if bound else float("inf") if diff else 0.0
    return Check(name=key, passed=diff <= bound, figures=figures, detail="" if diff <= bound else f"|ΔL| {diff:.3g} > {bound:.3g}")


def _compare_grads(candidate: dict[str, np.ndarray], reference: dict[str, np.ndarray], tol: Tolerances) -> list[Check]:
    g = tol.grad
    names = sorted(k.removeprefix("training/grad_norm/") for k in reference if k.startswith("training/grad_norm/"))
    missing = [n for n in names if f"training/grad_norm/{n}" not in candidate]
    worst: dict[str, tuple[float, str]] = {"norm_rel": (0.0, ""), "sample_rel_l2": (0.0, ""), "projection_rel": (0.0, ""), "cosine": (1.0, "")}
    failures: list[str] = []
    norm_a, norm_b = 0.0, 0.0
    for name in names:
        if name in missing:
            continue
        na, nb = float(candidate[f"training/grad_norm/{name}"]), float(reference[f"training/grad_norm/{name}"])
        norm_a, norm_b = norm_a + na * na, norm_b + nb * nb
        sa = candidate[f"training/grad_sample/{name}"].astype(np.float64)
        sb = reference[f"training/grad_sample/{name}"].astype(np.float64)
        if not (np.isfinite(na) and np.all(np.isfinite(sa))):
            failures.append(f"{name}: non-finite gradient")
            continue
        if nb == 0.0:
            if na != 0.0:
                failures.append(f"{name}: gradient should be zero, norm is {na:.3g}")
            continue
        norm_rel = abs(na - nb) / nb
        sample_norm = np.linalg.norm(sb)
        rel_l2 = float(np.linalg.norm(sa - sb) / sample_norm) if sample_norm else float(np.linalg.norm(sa))
        cos = _cosine(sa, sb) if sample_norm else 1.0
        proj_rel = _projection_rel(candidate, reference, name, nb)
        if proj_rel is None:
            failures.append(f"{name}: no gradient projections")
            continue
        for figure, value, bad in (
            ("norm_rel", norm_rel, norm_rel > g.norm_rtol),
            ("sample_rel_l2", rel_l2, rel_l2 > g.sample_rel_l2),
            ("projection_rel", proj_rel, proj_rel > g.projection_limit),
            ("cosine", cos, cos < g.min_cosine),
        ):
            if (figure == "cosine" and value < worst[figure][0]) or (figure != "cosine" and value > worst[figure][0]):
                worst[figure] = (value, name)
            if bad:
                failures.append(f"{name}: {figure} {value:.3g}")
    norm_a, norm_b = norm_a**0.5, norm_b**0.5
    global_rel = abs(norm_a - norm_b) / norm_b if norm_b else 0.0
    if global_rel > g.norm_rtol:
        failures.insert(0, f"global grad norm {norm_a:.6g} vs {norm_b:.6g} (rel {global_rel:.3g})")
    if missing:
        failures.insert(0, f"no gradient for {len(missing)} tensors, e.g. {missing[0]}")
    figures = {
        "tensors": float(len(names)),
        "global_norm": norm_a,
        "reference_global_norm": norm_b,
        "global_norm_rel": global_rel,
        "worst_norm_rel": worst["norm_rel"][0],
        "worst_sample_rel_l2": worst["sample_rel_l2"][0],
        "worst_projection_rel": worst["projection_rel"][0],
        "worst_cosine": worst["cosine"][0],
        "margin": max(global_rel / g.norm_rtol if g.norm_rtol else 0.0, *(_grad_margin(worst, g))),
    }
    detail = "; ".join(failures[:3]) + (f" (+{len(failures) - 3} more)" if len(failures) > 3 else "")
    return [Check(name="training/grads", passed=not failures, figures=figures, detail=detail)]


def _grad_margin(worst: dict[str, tuple[float, str]], g) -> list[float]:
    """Each worst gradient figure as a fraction of its tolerance (1.0 = at the bound)."""
    ratio = lambda value, limit: value / limit if limit else (float("inf") if value else 0.0)  # noqa: E731
    return [ratio(worst["norm_rel"][0], g.norm_rtol), ratio(worst["sample_rel_l2"][0], g.sample_rel_l2),
            ratio(worst["projection_rel"][0], g.projection_limit), ratio(1.0 - worst["cosine"][0], 1.0 - g.min_cosine)]


def worst_margin(checks: list[Check]) -> float | None:
    """A verdict's margin: the largest error ÷ tolerance over its checks (below 1 passes)."""
    margins = [c.figures["margin"] for c in checks if "margin" in c.figures]
    return max(margins) if margins else None


def _projection_rel(candidate: dict[str, np.ndarray], reference: dict[str, np.ndarray], name: str, reference_norm: float) -> float | None:
    """max_k |<a - b, r_k>| / ||b||: about |z| times the relative L2 error of the whole tensor. 0 where
    the reference predates projections (nothing to compare), None where the candidate lacks them."""
    key = f"training/grad_proj/{name}"
    if key not in reference:
        return 0.0
    if key not in candidate:
        return None
    return float(np.max(np.abs(candidate[key] - reference[key]))) / reference_norm


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a.reshape(-1), b.reshape(-1)) / (na * nb))
