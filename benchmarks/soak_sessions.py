#!/usr/bin/env python3
"""Many short sessions in a row: does the server give back what each one took?

The app runs in this process on the tiny demo model. Each cycle is a fresh API visitor
(gradio_client): it adds three images, trains 4 steps, draws one image and disconnects. The table
gives, after every cycle and a garbage collection, the server process's RSS, the session folders on
disk and the `Session` objects still alive; memory should level off after the first few cycles
(allocator pools, caches), and neither folders nor sessions should pile up.

gradio forgets a closed session an hour after it closed; here `GRADIO_IS_E2E_TEST=1` shortens that
to a second, as gradio's own tests do, so a cycle's session is gone before the next one is measured.

    python benchmarks/soak_sessions.py                 # 20 cycles
    python benchmarks/soak_sessions.py --cycles 50
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["GRADIO_IS_E2E_TEST"] = "1"  # closed sessions are forgotten after 1 s, not 1 h
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

IMAGES = sorted((REPO / "examples" / "red-rocket").glob("*.png"))[:3]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cycle(url: str, number: int) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    client.predict([handle_file(str(p)) for p in IMAGES], api_name="/add_images")
    status = client.predict(f"soak {number}", f"<soak-{number}>", "object", "robot", 4, 0.005, 1, 1, 64, 0, True,
                            "constant", "", 0, api_name="/train")[0]
    assert "Finished" in status, status
    client.predict(f"a photo of <soak-{number}>", "", 4, 7.5, 64, 64, number, 1, api_name="/generate")
    client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="textinv-soak-"))
    os.environ["TEXTINV_WORK_ROOT"] = str(root)
    import app
    from textinv_core.space.session import Session

    demo = app.build_app("builtin:tiny-sd")
    app.launch(demo, prevent_thread_lock=True, quiet=True)
    rows = []
    try:
        for number in range(1, args.cycles + 1):
            began = time.perf_counter()
            cycle(demo.local_url, number)
            time.sleep(3)  # gradio's 1 s grace and its once-a-second sweep
            folders = len(list(root.glob("session-*")))
            gc.collect()
            alive = sum(isinstance(o, Session) for o in gc.get_objects())
            rows.append((number, rss_mb(), folders, alive, time.perf_counter() - began))
            print(f"cycle {number}: RSS {rows[-1][1]:.0f} MB, session folders {folders}, sessions alive {alive}",
                  file=sys.stderr, flush=True)
    finally:
        demo.close()
    print("\n| cycle | RSS MB | session folders | sessions alive | seconds |\n|---|---|---|---|---|")
    for number, rss, folders, alive, seconds in rows:
        print(f"| {number} | {rss:.0f} | {folders} | {alive} | {seconds:.1f} |")
    if len(rows) >= 10:
        early, late = rows[4], rows[-1]  # after the first cycles have filled caches and pools
        per_cycle = (late[1] - early[1]) / (late[0] - early[0])
        print(f"\nRSS growth from cycle {early[0]} to {late[0]}: {per_cycle:+.2f} MB per cycle "
              f"(cycle 1: {rows[0][1]:.0f} MB, last: {late[1]:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
