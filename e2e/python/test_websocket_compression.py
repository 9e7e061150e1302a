"""NATS over WebSocket with permessage-deflate, spoken by the `websockets` library (a client
with its own deflate implementation that offers the extension by default): the server agrees
to it without context takeover, and messages cross compressed both ways, intact."""

import asyncio

from websockets.asyncio.client import connect

STEP_TIMEOUT = 5


async def read_until(websocket, received, wanted):
    while wanted not in received:
        assert len(received) < 1 << 20, f"no {wanted!r} in 1 MiB"
        frame = await asyncio.wait_for(websocket.recv(), STEP_TIMEOUT)
        received += frame if isinstance(frame, bytes) else frame.encode()
    return received


async def exchange(url):
    async with connect(url, compression="deflate", open_timeout=STEP_TIMEOUT) as websocket:
        extensions = websocket.protocol.extensions
        assert [extension.name for extension in extensions] == ["permessage-deflate"], extensions
        deflate = extensions[0]
        assert deflate.remote_no_context_takeover and deflate.local_no_context_takeover, deflate

        received = await read_until(websocket, b"", b"INFO ")
        await websocket.send(b'CONNECT {"verbose":false}\r\nSUB big 1\r\nPING\r\n')
        received = await read_until(websocket, received, b"PONG\r\n")

        payload = b"orders.eu.shipped " * 6000
        await websocket.send(b"PUB big %d\r\n" % len(payload) + payload + b"\r\nPING\r\n")
        received = await read_until(websocket, b"", b"PONG\r\n")
        expected = b"MSG big 1 %d\r\n" % len(payload) + payload + b"\r\n"
        assert received == expected + b"PONG\r\n", received[:200]


def test_permessage_deflate_is_agreed_and_carries_messages_both_ways(compressing_websocket_server):
    urls = compressing_websocket_server.websocket_urls
    assert urls, "the ports file names no websocket listener"
    asyncio.run(exchange(urls[0]))
