"""A join client that is not a browser, run inside the test's network
namespace by test_call_browser.py: it speaks /ws/join as another client would.

usage: python ws_probe.py URL ORIGIN STEPS_JSON
STEPS is a list of {"send": MESSAGE} and {"expect": TYPE} (wait for a message
of that type, 15 s at most). Prints one JSON object: the messages received,
the close code and reason, or the HTTP status of a refused handshake.
"""

import asyncio
import json
import sys

import websockets
from websockets.asyncio.client import connect


async def main(url: str, origin: str, steps: list) -> dict:
    out = {"received": [], "close_code": None, "close_reason": None, "http_status": None}
    try:
        async with connect(url, origin=origin, open_timeout=10) as ws:
            try:
                for step in steps:
                    if "send" in step:
                        await ws.send(step["send"] if isinstance(step["send"], str) else json.dumps(step["send"]))
                    else:
                        while True:
                            msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
                            out["received"].append(msg)
                            if msg.get("type") == step["expect"]:
                                break
                while True:
                    out["received"].append(json.loads(await asyncio.wait_for(ws.recv(), 15)))
            except websockets.ConnectionClosed as e:
                out["close_code"], out["close_reason"] = (e.rcvd.code, e.rcvd.reason) if e.rcvd else (None, None)
    except websockets.InvalidStatus as e:
        out["http_status"] = e.response.status_code
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))))
