"""Like and dislike rates per system: Auto-painter's popularity index.

A system's like rate is the share of answers, among those where it was shown, that picked it as
the best; its dislike rate the share that picked it as the worst.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from condsynth.errors import CondsynthError
from condsynth.study.build import KEY, RESULTS, _atomic_json
from condsynth.study.server import AnswerStore

REPORT = "study_report.json"


def study_report(study_dir: str | Path, extra_answers: list[str | Path] = (),
                 write: bool = True) -> dict[str, Any]:
    """The rates from ``results.json`` plus answer files downloaded from the page opened from
    disk (``extra_answers``); a later answer of a judge to an item replaces an earlier one.
    Writes ``study_report.json`` when ``write``."""
    study_dir = Path(study_dir)
    store = AnswerStore(study_dir)
    if not (study_dir / KEY).is_file():
        raise CondsynthError(f"{study_dir / KEY} is missing: the answers cannot be matched to "
                             "systems without it")
    key = json.loads((study_dir / KEY).read_text())
    raw_answers = list(store.results["answers"])
    for path in extra_answers:
        try:
            loaded = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CondsynthError(f"{path}: not a readable answers file ({err})") from None
        raw_answers += loaded.get("answers", []) if isinstance(loaded, dict) else []
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in raw_answers:
        try:
            answer = store.validate(raw)
        except ValueError as err:
            raise CondsynthError(f"an answer does not fit this study ({err}): {raw}") from None
        latest[(answer["judge"], answer["item"])] = answer
    systems = {name: {"shown": 0, "best": 0, "worst": 0} for name in key["systems"]}
    for answer in latest.values():
        owners = key["items"][answer["item"]]["owners"]
        for option in owners.values():
            systems[option]["shown"] += 1
        systems[owners[answer["best"]]]["best"] += 1
        systems[owners[answer["worst"]]]["worst"] += 1
    for counts in systems.values():
        shown = counts["shown"]
        counts["like_rate"] = counts["best"] / shown if shown else None
        counts["dislike_rate"] = counts["worst"] / shown if shown else None
    report = {"answers": len(latest), "judges": len({j for j, _ in latest}),
              "items": len(key["items"]), "systems": systems}
    if write:
        _atomic_json(study_dir / REPORT, report)
    return report


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of the rates."""
    lines = [f"{report['answers']} answers from {report['judges']} judge(s) on "
             f"{report['items']} items",
             f"{'system':<24} {'shown':>6} {'like':>7} {'dislike':>8}"]
    for name, c in sorted(report["systems"].items(),
                          key=lambda kv: -(kv[1]["like_rate"] or 0.0)):
        like = "n/a" if c["like_rate"] is None else f"{100 * c['like_rate']:.1f}%"
        dislike = "n/a" if c["dislike_rate"] is None else f"{100 * c['dislike_rate']:.1f}%"
        lines.append(f"{name:<24} {c['shown']:>6} {like:>7} {dislike:>8}")
    return "\n".join(lines)


__all__ = ["study_report", "format_report", "REPORT", "RESULTS"]
