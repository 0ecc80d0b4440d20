"""The short human-readable table of a verify report."""

from __future__ import annotations

from typing import Any

__all__ = ["report_table"]


def report_table(report: dict[str, Any]) -> str:
    """Render the dict written as ``verify_report.json`` as a short plain-text table.

    One row per export (kind, precision, backend, static checks, top-1 agreement, max/mean
    abs diff against the tolerance, heatmap, result), then the failures and where they start.
    """
    header = ("export", "kind", "prec", "backend", "static", "top-1", "max abs (tol)", "mean abs", "heatmap rel", "result")
    rows = [header]
    notes: list[str] = []
    for export in report["exports"]:
        checks = export.get("static_checks", [])
        failed_checks = sum(c["status"] == "fail" for c in checks)
        parity = export.get("parity") or {}
        heatmap = parity.get("heatmap")
        rows.append((
            export["path"].rsplit("/", 1)[-1],
            export.get("kind", "?"),
            export.get("precision", "?"),
            export.get("backend", "?"),
            f"{len(checks) - failed_checks}/{len(checks)}",
            _top1(parity) if parity else "-",
            f"{_e(parity['max_abs_diff'])} ({parity['tolerance']['max_abs_diff']:g})" if parity else "-",
            _e(parity["mean_abs_diff"]) if parity else "-",
            _e(heatmap["relative_max_diff"]) if heatmap else "-",
            "PASS" if export["passed"] else "FAIL",
        ))
        name = rows[-1][0]
        if export.get("input_size"):
            height, width = export["input_size"]
            notes.append(f"{name}: exported at {height}x{width}: compared with the Keras model rebuilt at that size")
        for failure in export["failures"]:
            notes.append(f"{name}: {failure}")
        if parity.get("near_tie_images"):
            notes.append(f"{name}: near ties (top-1 flips within tolerance): {', '.join(parity['near_tie_images'][:20])}")
        if parity.get("disagreeing_images"):
            notes.append(f"{name}: images that disagree: {', '.join(parity['disagreeing_images'][:20])}")
        divergence = parity.get("divergence")
        if divergence:
            notes.append(f"{name}: first divergence at Keras layer {divergence['keras_layer']!r} "
                         f"({divergence['keras_layer_type']}{_folded(divergence)}) ~ Core ML op {divergence['coreml_op']!r}: "
                         f"relative diff {divergence['relative_diff']:.3g} > {divergence['rtol']:g}")
        elif parity.get("failures_located") is False:
            notes.append(f"{name}: every Keras layer is reproduced within the layer tolerance; the difference "
                         "is in the outputs (class label mapping) or below the layer tolerance (precision drift)")
        cause = parity.get("suspected_cause")
        if cause:
            notes.append(f"{name}: suspected cause: {cause['cause']} (reproduces Core ML within "
                         f"{cause['max_abs_diff']:.2e})")
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"{report['images']['count']} images, {len(report['images']['skipped'])} skipped; "
                 f"overall: {'PASS' if report['passed'] else 'FAIL'}")
    lines += notes
    return "\n".join(lines) + "\n"


def _top1(parity: dict[str, Any]) -> str:
    counted, raw = parity["top1_agreement"], parity.get("top1_agreement_raw", parity["top1_agreement"])
    return f"{counted:.1%}" if raw == counted else f"{counted:.1%} (raw {raw:.1%})"


def _folded(divergence: dict[str, Any]) -> str:
    folded = divergence.get("folded_with")
    return f", folded with {folded!r} into one op" if folded else ""


def _e(value: float | None) -> str:
    """A difference for the table; None is a NaN or Inf output (the report's JSON has no such numbers)."""
    return "nan/inf" if value is None else f"{value:.2e}"
