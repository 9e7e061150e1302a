"""The nats-py client (asyncio) against Tern and nats-server: the same tests must pass on both."""

import asyncio

import nats
import nats.errors
import pytest

TIMEOUT = 5


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=30))


async def connect(server, **options):
    return await nats.connect(server.url, connect_timeout=TIMEOUT, allow_reconnect=False, **options)


def test_publish_reaches_wildcard_subscribers(server):
    async def scenario():
        connection = await connect(server)
        single = await connection.subscribe("orders.*")
        full = await connection.subscribe("orders.>")
        await connection.flush(timeout=TIMEOUT)
        await connection.publish("orders.created", b"one")
        await connection.publish("orders.eu.created", b"two")
        await connection.flush(timeout=TIMEOUT)
        first = await single.next_msg(timeout=TIMEOUT)
        assert (first.subject, first.data) == ("orders.created", b"one")
        seen = [(await full.next_msg(timeout=TIMEOUT)).data for _ in range(2)]
        assert seen == [b"one", b"two"]
        with pytest.raises(nats.errors.TimeoutError):
            await single.next_msg(timeout=0.2)
        await connection.close()

    run(scenario())


def test_queue_group_delivers_each_message_once(server):
    async def scenario():
        publisher = await connect(server)
        members = [await connect(server) for _ in range(3)]
        received = []

        async def handler(message):
            received.append(message.data)

        for member in members:
            await member.subscribe("jobs", queue="workers", cb=handler)
            await member.flush(timeout=TIMEOUT)
        for index in range(60):
            await publisher.publish("jobs", str(index).encode())
        await publisher.flush(timeout=TIMEOUT)
        for _ in range(200):
            if len(received) >= 60:
                break
            await asyncio.sleep(0.01)
        for member in members:
            await member.flush(timeout=TIMEOUT)
        assert sorted(received, key=int) == [str(index).encode() for index in range(60)]
        for connection in [publisher, *members]:
            await connection.close()

    run(scenario())


def test_request_reply_with_headers(server):
    async def scenario():
        responder = await connect(server)
        requester = await connect(server)

        async def answer(message):
            origin = (message.headers or {}).get("Origin", "")
            await responder.publish(message.reply, message.data.upper(), headers={"Seen-By": origin})

        await responder.subscribe("service.echo", cb=answer)
        await responder.flush(timeout=TIMEOUT)
        reply = await requester.request("service.echo", b"hello", timeout=TIMEOUT, headers={"Origin": "py"})
        assert reply.data == b"HELLO"
        assert reply.headers == {"Seen-By": "py"}
        await requester.close()
        await responder.close()

    run(scenario())


def test_request_without_responders_fails_fast(server):
    async def scenario():
        connection = await connect(server)
        with pytest.raises(nats.errors.NoRespondersError):
            await connection.request("nobody.listens", b"?", timeout=TIMEOUT)
        await connection.close()

    run(scenario())


def test_auto_unsubscribe_stops_after_max_messages(server):
    async def scenario():
        connection = await connect(server)
        subscription = await connection.subscribe("limited")
        await subscription.unsubscribe(limit=2)
        await connection.flush(timeout=TIMEOUT)
        for index in range(5):
            await connection.publish("limited", str(index).encode())
        await connection.flush(timeout=TIMEOUT)
        assert (await subscription.next_msg(timeout=TIMEOUT)).data == b"0"
        assert (await subscription.next_msg(timeout=TIMEOUT)).data == b"1"
        await connection.close()

    run(scenario())
