"""The `mirror nfc read` command (mirror/app/cli.py parses, this runs).

Bad input raises `CommandError`; the CLI prints its one line and exits 2.
`mirror orders` is in mirror/app/orders_report.py; `mirror bench-checkout`
and `mirror checkout-host` run test harness code and live in the CLI.
"""

from __future__ import annotations

import json
import sys


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
        print(json.dumps(out))      # ASCII: a tag's C1 or bidi characters arrive escaped, not raw in a terminal
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
        extra = f"  text={r['text']!r}" if "text" in r else f"  uri={r['uri']!r}" if "uri" in r else ""
        payload = r["payload_hex"]
        print(f"  [{i}] tnf={r['tnf']} type={r['type']!r} payload={len(payload) // 2} bytes{extra}")
    member = member_from_records(tag.records)
    if member:
        print(f"member  {member.id}")
    return 0

