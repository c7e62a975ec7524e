"""Time to first render of the console's topics page at 10,000 topics, in
headless Chromium: from the navigation's start to the mark `topics.js` sets
when the table first holds the broker's topics (`topics-rendered`), with
the API request's own time beside it (Resource Timing). The median of
several loads; the first load (nothing cached) is reported apart.

    VELTRIX_BIN=target/release/veltrix target/console-venv/bin/python \\
        tests/console/measure_render.py [--topics 10000] [--runs 9]

Run from the repository's root after scripts/test-console has built the
venv (selenium, confluent-kafka) and Chromium is installed. The broker runs
on ephemeral ports in a temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crowd import create_topics  # noqa: E402
from harness import Broker, Page, chromium, veltrix_binary  # noqa: E402

GOAL_MS = 300.0


def load_once(page: Page) -> dict:
    page.open("/console/topics")
    page.wait("the first page", lambda d: d.execute_script("return performance.getEntriesByName('topics-rendered').length;"))
    return page.driver.execute_script(
        """
        const nav = performance.getEntriesByType('navigation')[0];
        const api = performance.getEntriesByType('resource').find((r) => r.name.includes('/api/v1/topics?'));
        return {
          first_render_ms: performance.getEntriesByName('topics-rendered')[0].startTime,
          dom_content_loaded_ms: nav.domContentLoadedEventEnd,
          api_ms: api ? api.duration : null,
        };
        """
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topics", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        driver = None
        try:
            began = time.monotonic()
            create_topics(broker.bootstrap, [f"topic-{i:05}" for i in range(args.topics)])
            made_s = time.monotonic() - began
            driver = chromium()
            page = Page(driver, broker)
            runs = [load_once(page) for _ in range(args.runs + 1)]
            problems = page.problems()
        finally:
            if driver is not None:
                driver.quit()
            broker.stop()
    first, warm = runs[0], runs[1:]

    def median(key: str) -> float:
        return statistics.median(r[key] for r in warm)

    report = {
        "binary": str(veltrix_binary()),
        "topics": args.topics,
        "topics_created_s": round(made_s, 1),
        "runs": len(warm),
        "first_load": {k: round(v, 1) for k, v in first.items() if v is not None},
        "median": {k: round(median(k), 1) for k in ("first_render_ms", "dom_content_loaded_ms", "api_ms")},
        "min_first_render_ms": round(min(r["first_render_ms"] for r in warm), 1),
        "max_first_render_ms": round(max(r["first_render_ms"] for r in warm), 1),
        "goal_ms": GOAL_MS,
        "problems": problems,
    }
    print(json.dumps(report, indent=2))
    return 0 if report["median"]["first_render_ms"] < GOAL_MS and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
