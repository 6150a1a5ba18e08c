"""Accuracy and latency report for the routing scorer on the labelled and holdout sets."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.routing import CLASSIFIABLE, UNSURE_BELOW, score  # noqa: E402

DATA = ROOT / "tests" / "data"
FILES = ("routing_labelled.jsonl", "routing_holdout.jsonl")


def load_rows(path: Path) -> list[dict]:
    """Read a JSONL file of {"text", "route"} rows."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate(predict: Callable[[str], str], rows: Iterable[dict]) -> dict:
    """Score any text->route predictor: accuracy, per-route precision/recall, confusion, misses.

    A prediction that is not a classifiable route (e.g. None from an unparseable model answer)
    counts as "reasoning", the route the bot would fall back to.
    """
    rows = list(rows)
    confusion = {g: dict.fromkeys(CLASSIFIABLE, 0) for g in CLASSIFIABLE}
    misses = []
    for row in rows:
        got = predict(row["text"])
        got = got if got in CLASSIFIABLE else "reasoning"
        confusion[row["route"]][got] += 1
        if got != row["route"]:
            misses.append({"text": row["text"], "want": row["route"], "got": got})
    per_route = {}
    for r in CLASSIFIABLE:
        tp = confusion[r][r]
        predicted = sum(confusion[g][r] for g in CLASSIFIABLE)
        actual = sum(confusion[r].values())
        per_route[r] = {
            "precision": tp / predicted if predicted else 0.0,
            "recall": tp / actual if actual else 0.0,
            "support": actual,
        }
    correct = sum(confusion[r][r] for r in CLASSIFIABLE)
    return {
        "n": len(rows),
        "accuracy": correct / len(rows) if rows else 0.0,
        "per_route": per_route,
        "confusion": confusion,
        "misses": misses,
    }


def timing(rows: list[dict], repeat: int = 20) -> dict:
    """Mean and p99 wall time of score() per message, in milliseconds."""
    samples = []
    for _ in range(repeat):
        for row in rows:
            t0 = time.perf_counter()
            score(row["text"])
            samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {"mean_ms": statistics.fmean(samples), "p99_ms": samples[int(len(samples) * 0.99) - 1]}


def print_report(name: str, result: dict) -> None:
    """Print per-route precision/recall, overall accuracy and the confusion matrix."""
    print(f"\n== {name}: scorer alone (n={result['n']}) ==")
    print(f"{'route':<10} {'precision':>9} {'recall':>7} {'support':>7}")
    for r, m in result["per_route"].items():
        print(f"{r:<10} {m['precision']:>9.2f} {m['recall']:>7.2f} {m['support']:>7}")
    print(f"{'accuracy':<10} {result['accuracy']:>9.3f}")
    print("\nconfusion (rows = label, cols = predicted)")
    print(" " * 10 + "".join(f"{r[:9]:>10}" for r in CLASSIFIABLE))
    for g in CLASSIFIABLE:
        print(f"{g:<10}" + "".join(f"{result['confusion'][g][p]:>10}" for p in CLASSIFIABLE))
    if result["misses"]:
        print("\nmisses:")
        for m in result["misses"]:
            text = m["text"].replace("\n", " ⏎ ")
            print(f"  want {m['want']:<9} got {m['got']:<9} {text[:90]}")


def main() -> None:
    """Run the report for both data files."""
    all_rows = []
    for fname in FILES:
        rows = load_rows(DATA / fname)
        all_rows += rows
        print_report(fname, evaluate(lambda t: score(t).route, rows))
        unsure = sum(score(r["text"]).confidence < UNSURE_BELOW for r in rows)
        print(f"\nunder UNSURE_BELOW={UNSURE_BELOW}: {unsure}/{len(rows)} rows would ask the model")
    big = "\n".join(r["text"] for r in all_rows)[:2048]
    t_all, t_big = timing(all_rows), timing([{"text": big}], repeat=300)
    print("\n== scorer latency ==")
    print(
        f"per message (n={len(all_rows)}): mean {t_all['mean_ms']:.3f} ms, p99 {t_all['p99_ms']:.3f} ms"
    )
    print(f"2 KB message: mean {t_big['mean_ms']:.3f} ms, p99 {t_big['p99_ms']:.3f} ms")


if __name__ == "__main__":
    main()
