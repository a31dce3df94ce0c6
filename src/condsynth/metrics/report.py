"""Evaluation reports: ``eval.json`` (every number) and ``eval.html`` (a self-contained page:
metric table, per-class IoU bar chart as inline SVG, sample grid; no external resources)."""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

from condsynth.metrics.inception import NONSTANDARD_NOTE

_BAR_WIDTH = 360      # px of an IoU of 1.0 in the chart


def write_report(out_dir: str | Path, results: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``eval.json`` and ``eval.html`` into ``out_dir`` atomically; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "eval.json", out_dir / "eval.html"
    _atomic_text(json_path, json.dumps(results, indent=2, default=str) + "\n")
    _atomic_text(html_path, render_html(results))
    return json_path, html_path


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def metric_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, what it means) rows of the table, in a fixed order."""
    m = results.get("metrics", {})
    rows: list[tuple[str, str, str]] = []
    network = results.get("feature_network") or {}
    # Scores of a classifier other than Inception carry its name in every row.
    other = network.get("kind", "inception_v3") != "inception_v3"
    tag = " (classifier)" if other else ""
    by = f"; features of {network['summary']}" if other else ""
    if "fid" in m:
        rows.append((f"FID{tag}", _num(m["fid"], 3),
                     f"Fréchet Inception distance, lower is better{by}"))
    if "kid" in m:
        rows.append((f"KID × 10³{tag}", f"{_num(m['kid']['mean'] * 1e3, 3)} ± "
                     f"{_num(m['kid']['std'] * 1e3, 3)}",
                     f"kernel Inception distance over {m['kid']['subsets']} subsets of "
                     f"{m['kid']['subset_size']}, lower is better{by}"))
    if "is" in m:
        rows.append((f"Inception Score{tag} (generated)", f"{_num(m['is']['fake']['mean'], 3)}"
                     f" ± {_num(m['is']['fake']['std'], 3)}",
                     f"{m['is']['splits']} splits, higher is better"
                     + (f"; p(y|x) of {network['summary']}" if other else "")))
        rows.append((f"Inception Score{tag} (real)", f"{_num(m['is']['real']['mean'], 3)} ± "
                     f"{_num(m['is']['real']['std'], 3)}", "the same on the real images"))
    if "swd" in m:
        rows.append(("SWD × 10³ (mean)", _num(m["swd"]["mean"], 2),
                     f"sliced Wasserstein distance over {len(m['swd']['levels'])} pyramid "
                     f"levels, {m['swd']['images']} images per set, lower is better"))
        for level, value in m["swd"]["levels"].items():
            rows.append((f"SWD × 10³ at {level}", _num(value, 2), "one Laplacian level"))
    if "miou" in m:
        seg = m["miou"]
        real = seg.get("real")
        for key, name in (("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy")):
            value = _num(seg["generated"][key] * 100, 2)
            bound = f" (real images: {_num(real[key] * 100, 2)})" if real else ""
            rows.append((f"{name} (%)", value + bound,
                         f"segmenter {seg['segmenter']} on generated images vs the input "
                         "labels; on real images = upper bound; higher is better"))
    if "msssim" in m:
        rows.append(("MS-SSIM diversity", _num(m["msssim"]["mean"], 4),
                     f"mean pairwise MS-SSIM of {m['msssim']['samples_per_label']} outputs "
                     f"per label over {m['msssim']['labels']} labels ({m['msssim']['scales']} "
                     "scales); lower = more diverse"))
    if "accuracy" in m:
        acc = m["accuracy"]
        rows.append(("accuracy (%)", f"{_num(acc['accuracy'] * 100, 2)} (error "
                     f"{_num(acc['error'] * 100, 2)})",
                     f"{acc['classifier']} on {acc['count']} labelled {acc['phase']} images, "
                     "higher is better"))
    for name, message in results.get("errors", {}).items():
        rows.append((name, "failed", message))
    return rows


def iou_chart_svg(seg: dict[str, Any]) -> str:
    """Per-class IoU as horizontal bars: generated (blue) above real (grey), inline SVG."""
    generated = seg["generated"]["per_class_iou"]
    real = seg.get("real", {}).get("per_class_iou") if seg.get("real") else None
    names = seg.get("class_names") or []
    label_width, row_height = 130, 30
    height = 30 + row_height * len(generated)
    width = label_width + _BAR_WIDTH + 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="per-class IoU" font-family="system-ui, sans-serif" '
             f'font-size="12">',
             f'<text x="{label_width}" y="14" fill="#1f5fbf">■ generated</text>',
             f'<text x="{label_width + 100}" y="14" fill="#999">■ real (upper bound)</text>']
    for i, value in enumerate(generated):
        y = 24 + i * row_height
        name = names[i] if i < len(names) else f"class {i}"
        parts.append(f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end">'
                     f'{html.escape(f"{i} {name}")}</text>')
        bars = [(value, "#1f5fbf", y + 2)]
        if real is not None:
            bars.append((real[i], "#b0b0b0", y + 14))
        for bar, colour, top in bars:
            if bar is None:
                parts.append(f'<text x="{label_width + 4}" y="{top + 9}" fill="#888">'
                             "n/a</text>")
                continue
            w = max(1.0, bar * _BAR_WIDTH)
            parts.append(f'<rect x="{label_width}" y="{top}" width="{w:.1f}" height="11" '
                         f'fill="{colour}"><title>{html.escape(name)}: {bar:.3f}</title></rect>')
            parts.append(f'<text x="{label_width + w + 4:.1f}" y="{top + 9}">{bar:.2f}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(results: dict[str, Any]) -> str:
    """The report page (paths of sample images are relative to the page)."""
    title = "condsynth evaluation"
    if results.get("mode") == "run":
        title += f": {Path(results['run']).name} ({results.get('method', '')})"
    esc = html.escape
    facts = []
    if results.get("mode") == "run":
        facts += [("run", results["run"]), ("data", f"{results['data']} ({results['phase']})")]
    else:
        facts += [("real", results.get("real", "")), ("generated", results.get("fake", ""))]
    images = results.get("images", {})
    facts.append(("images", f"{images.get('real', 0)} real, {images.get('fake', 0)} generated"))
    if results.get("feature_network"):
        facts.append(("FID / KID / IS network", results["feature_network"]["summary"]))
    inception = results.get("inception")
    if inception:
        kind = "standard" if inception["standard"] else "NON-STANDARD"
        facts.append(("Inception weights", f"{kind}: {inception['path']} (SHA-256 "
                      f"{inception['sha256'][:16]}…)"))
    facts += [("created", results.get("created", "")),
              ("time", f"{results.get('seconds', 0)} s"),
              ("condsynth", results.get("condsynth_version", ""))]
    banner = ""
    if inception and not inception["standard"]:
        banner = f'<p class="banner">{esc(NONSTANDARD_NOTE)}</p>'
    warnings = "".join(f'<li>{esc(w)}</li>' for w in results.get("warnings", [])
                       if w != NONSTANDARD_NOTE)
    rows = "\n".join(f"<tr><th>{esc(a)}</th><td class=v>{esc(b)}</td><td>{esc(c)}</td></tr>"
                     for a, b, c in metric_rows(results))
    chart = ""
    if "miou" in results.get("metrics", {}):
        chart = ("<h2>Per-class IoU</h2>\n" + iou_chart_svg(results["metrics"]["miou"]))
    grid = ""
    if results.get("samples"):
        keys = [k for k in ("label", "real", "fake") if k in results["samples"][0]]
        heads = {"label": "input", "real": "real", "fake": "generated"}
        cells = "\n".join(
            "<tr>" + "".join(f'<td><img src="{esc(s[k], quote=True)}" alt="{esc(k)}"></td>'
                             for k in keys) + "</tr>" for s in results["samples"])
        grid = ("<h2>Samples</h2>\n<table class=grid><tr>"
                + "".join(f"<th>{heads[k]}</th>" for k in keys) + f"</tr>\n{cells}</table>")
    fact_html = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in facts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; background: #fafafa; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1rem; }}
th, td {{ padding: 4px 10px; text-align: left; border-bottom: 1px solid #e4e4e4; }}
td.v {{ font-variant-numeric: tabular-nums; font-weight: 600; white-space: nowrap; }}
.banner {{ background: #fff1d6; border: 2px solid #e08a00; padding: 10px; font-weight: 600; }}
.grid img {{ width: 160px; image-rendering: pixelated; border: 1px solid #ccc; }}
.facts th {{ color: #666; font-weight: normal; }}
</style></head>
<body><h1>{esc(title)}</h1>
{banner}
<table class=facts>{fact_html}</table>
{f"<ul>{warnings}</ul>" if warnings else ""}
<h2>Metrics</h2>
<table><tr><th>metric</th><th>value</th><th>meaning</th></tr>
{rows}
</table>
{chart}
{grid}
</body></html>
"""
