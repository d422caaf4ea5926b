"""`mirror orders`: the staff view of the order journal.

Every order with its code, state, payment status and delivery attempts to the
store, then the items put aside. Reads storage only; mirror/app/cli.py parses
the arguments and turns a `ReportError` into one line on stderr and exit 2.
"""

from __future__ import annotations

import datetime as dt
import json
import time


class ReportError(Exception):
    """One line for stderr; exit status 2."""


def local_time(ts: float | None) -> str:
    """A unix time as local YYYY-mm-dd HH:MM:SS, or "-"."""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def orders_report(db_path, as_json: bool = False, limit: int = 200) -> int:
    import sqlite3
    from mirror.storage.orders import JournalOpenError, OrderJournal
    try:
        j = OrderJournal.open_read_only(db_path)      # never creates, converts or writes anything
    except JournalOpenError as e:
        raise ReportError(str(e))
    try:
        rows = j.list_orders(limit)
        res = j.list_reservations()
    except (sqlite3.Error, ValueError, TypeError, AttributeError) as e:
        raise ReportError(f"cannot read the order journal {db_path} ({e.__class__.__name__}: {e}); "
                          "is it the kiosk's orders.db?")
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
        print(f"{local_time(o['created_at']):19}  {o['order_id']:16}  {o['code']:6}  {state:11}  {o['pay']:5}  "
              f"{payment[:16]:16}  {tries:>2}{(' ' + last[:10]) if last and last != 'ok' else '':3}  "
              f"{o['total']:>8}  {items}")
        if o["outbox"]:
            ob = o["outbox"]
            print(f"{'':21}outbox: {ob['kind']} pending after {ob['attempts']} attempt(s), "
                  f"next at {local_time(ob['next_at'])}")
    if res:
        print("\nreservations (put aside for the shopper):")
        now = time.time()
        for r in res:
            left = r["expires_at"] - now
            when = f"expires {local_time(r['expires_at'])}" + (f" (in {left / 3600:.1f} h)" if left > 0 else "")
            print(f"  {r['code']:6}  {r['name'] or r['sku']} {r['colour'] or ''} size {r['size'] or '-'}  "
                  f"{r['state']:8}  {when}")
    return 0
