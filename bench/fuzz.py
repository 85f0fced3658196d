"""Fuzz the API harder than the test suite does: schemathesis from the OpenAPI schema, on loopback.

    python bench/fuzz.py                    # 200 examples per operation, speech with invalid input only
    python bench/fuzz.py --examples 50 --speech   # valid speech requests too (synthesised: slow on CPU)

Runs `tests/test_fuzz.py` (one processed episode, a real uvicorn) with more examples, and prints
the requests sent per operation and status. Fails on any 5xx or an error body not in our shape.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=200, help="Hypothesis examples per operation and mode.")
    ap.add_argument("--speech", action="store_true", help="Also send valid /tts and /v1/audio/speech requests.")
    args = ap.parse_args()
    env = {**os.environ, "MEDIAFLOW_FUZZ_EXAMPLES": str(args.examples), "MEDIAFLOW_FUZZ_SPEECH": "1" if args.speech else "0"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_fuzz.py"]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
