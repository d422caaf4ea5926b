"""`mirror bench-checkout`: a short run with kills; nothing lost or doubled."""

import json
import subprocess
import sys


def test_bench_checkout_with_chaos_loses_and_doubles_nothing():
    r = subprocess.run([sys.executable, "-m", "mirror", "bench-checkout", "--taps", "20", "--chaos",
                        "--kill-rate", "0.35", "--seed", "11", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["taps"] >= 20 and res["orders"] >= 5
    assert res["lost"] == 0 and res["duplicated"] == 0
    assert res["kills"] >= 1 and res["undelivered"] == 0 and res["outbox_pending"] == 0
    assert res["confirmed_orders"] <= res["orders"]
    assert 0 < res["tap_to_confirm_p50_ms"] <= res["tap_to_confirm_p95_ms"]
    assert res["connect_to_confirm_p50_ms"] > res["tap_to_confirm_p50_ms"]   # includes vpcd/pcscd polling
    for key in ("tap_to_confirm_p50_ms", "tap_to_confirm_p95_ms", "duplicated", "lost", "orders", "taps"):
        assert key in res
    assert "bench-checkout:" in r.stderr                                      # progress on stderr


def test_bench_checkout_bad_input_exit_2():
    r = subprocess.run([sys.executable, "-m", "mirror", "bench-checkout", "--taps", "0"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--taps" in r.stderr
