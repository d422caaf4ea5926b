"""The `mirror nfc read`, `mirror orders`, `mirror bench-checkout` and the
hidden `mirror checkout-host` commands (mirror/cli.py parses, these run).

Bad input raises `CommandError`; the CLI prints its one line and exits 2.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time


class CommandError(Exception):
    """One line for stderr; exit status 2."""


def nfc_read(reader: str = "", timeout: float = 30.0, as_json: bool = False) -> int:
    from nfc.readers import PcscError, wait_for_tag
    from nfc.type4 import TagError, member_from_records, record_json
    if timeout <= 0:
        raise CommandError("--timeout must be more than 0 seconds")
    notice = (lambda msg: print(f"mirror: {msg}", file=sys.stderr, flush=True)) if sys.stderr.isatty() else None
    if not as_json and sys.stdout.isatty():
        print(f"waiting up to {timeout:g} s for a tag…", file=sys.stderr, flush=True)
    try:
        name, tag = wait_for_tag(reader, timeout, on_notice=notice)
    except (LookupError, TimeoutError, PcscError) as e:
        raise CommandError(str(e.args[0] if isinstance(e, LookupError) else e)) from None
    except TagError as e:
        raise CommandError(f"the tag could not be read: {e}") from None
    out = {"reader": name, "uid": tag.uid.hex(), "ndef": [record_json(r) for r in tag.records]}
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(f"reader  {name}")
    print(f"uid     {out['uid']}")
    if tag.ndef_message is None:
        print("ndef    none (not a Type 4 NDEF tag)")
    else:
        cc = tag.cc
        print(f"ndef    {len(tag.records)} record(s), {len(tag.ndef_message)} bytes "
              f"(Type 4 v{cc.version >> 4}.{cc.version & 15}, MLe {cc.mle}, file {cc.file_id:04X})")
    for i, r in enumerate(out["ndef"]):
        extra = f"  text={r['text']!r}" if "text" in r else f"  uri={r['uri']}" if "uri" in r else ""
        payload = r["payload_hex"]
        print(f"  [{i}] tnf={r['tnf']} type={r['type']!r} payload={len(payload) // 2} bytes{extra}")
    member = member_from_records(tag.records)
    if member:
        print(f"member  {member.id}")
    return 0


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def orders(db_path, as_json: bool = False, limit: int = 200) -> int:
    from mirror.storage.orders import OrderJournal
    if not db_path.exists():
        raise CommandError(f"no order journal at {db_path}; set checkout.db_path or pass --db")
    j = OrderJournal(db_path)
    try:
        rows = j.list_orders(limit)
        res = j.list_reservations()
    finally:
        j.close()
    if as_json:
        print(json.dumps({"orders": rows, "reservations": res}, ensure_ascii=False))
        return 0
    if not rows:
        print(f"no orders in {db_path}")
    else:
        print(f"{'created':19}  {'order':16}  {'code':6}  {'state':11}  {'pay':5}  {'payment':16}  "
              f"{'tries':5}  {'total':>8}  items")
    for o in rows:
        items = ", ".join(f"{i.get('name') or i.get('sku')} {i.get('colour', '')} {i.get('size', '')}".strip()
                          for i in o["items"])
        tries = len(o["deliveries"])
        last = o["deliveries"][-1]["outcome"] if o["deliveries"] else ""
        state = o["state"]
        payment = o["payment_status"] or ("at the till" if o["pay"] == "till" else "-")
        print(f"{_when(o['created_at']):19}  {o['order_id']:16}  {o['code']:6}  {state:11}  {o['pay']:5}  "
              f"{payment[:16]:16}  {tries:>2}{(' ' + last[:10]) if last and last != 'ok' else '':3}  "
              f"{o['total']:>8}  {items}")
        if o["outbox"]:
            ob = o["outbox"]
            print(f"{'':21}outbox: {ob['kind']} pending after {ob['attempts']} attempt(s), "
                  f"next at {_when(ob['next_at'])}")
    if res:
        print("\nreservations (put aside for the shopper):")
        now = time.time()
        for r in res:
            left = r["expires_at"] - now
            when = f"expires {_when(r['expires_at'])}" + (f" (in {left / 3600:.1f} h)" if left > 0 else "")
            print(f"  {r['code']:6}  {r['name'] or r['sku']} {r['colour'] or ''} size {r['size'] or '-'}  "
                  f"{r['state']:8}  {when}")
    return 0


def checkout_host(config_path: str | None, duration: float | None = None) -> int:
    from mirror.core import config
    from mirror.harness.checkout_host import run_host
    return run_host(config.load(config_path), duration=duration)


def bench_checkout(taps: int, chaos: bool, as_json: bool, seed: int | None = None, kill_rate: float = 0.05) -> int:
    from mirror.harness.checkout_bench import BenchError, run_bench
    if taps < 1:
        raise CommandError("--taps must be at least 1")
    if not 0.0 <= kill_rate <= 1.0:
        raise CommandError("--kill-rate must be from 0 to 1")
    try:
        result = run_bench(taps, chaos=chaos, seed=seed, progress=True, kill_rate=kill_rate)
    except BenchError as e:
        raise CommandError(str(e)) from None
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:32} {v}")
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1
