"""The router's kept Ollama clients: reused, bounded, safe across a host restart and a fork."""

from __future__ import annotations

import os

import pytest

from routing import clients
from routing.embeddings import embed


@pytest.fixture(autouse=True)
def no_kept_clients():
    clients._forget_after_fork()  # the state a fresh worker starts with
    yield
    clients._forget_after_fork()


def test_the_same_host_and_timeout_get_the_same_client_and_connection(fake_ollama):
    first = clients.shared_sync_client(fake_ollama.url, read_timeout=5)

    embed(host=fake_ollama.url, model="all-minilm", texts=["one"], timeout=5)
    embed(host=fake_ollama.url, model="all-minilm", texts=["two"], timeout=5)

    assert clients.shared_sync_client(fake_ollama.url, read_timeout=5) is first
    assert clients.shared_sync_client(fake_ollama.url, read_timeout=9) is not first
    ports = {request.client_port for request in fake_ollama.requests if request.path == "/api/embed"}
    assert len(ports) == 1  # both calls went over one kept-alive connection


def test_a_host_restarted_on_the_same_port_is_reached_again(fake_ollama):
    embed(host=fake_ollama.url, model="all-minilm", texts=["before"], timeout=5)
    fake_ollama.stop()
    fake_ollama.start()

    after = embed(host=fake_ollama.url, model="all-minilm", texts=["after"], timeout=5)

    assert len(after.vectors) == 1


def test_only_the_most_recently_used_clients_are_kept_and_the_rest_are_closed():
    urls = [f"http://127.0.0.1:{port}" for port in range(1, clients.MAX_SHARED_CLIENTS + 2)]
    made = [clients.shared_sync_client(url) for url in urls]
    clients.shared_sync_client(urls[1])  # used again: now the most recent

    clients.shared_sync_client("http://127.0.0.1:65000")

    assert made[0]._client.is_closed and made[2]._client.is_closed
    assert not made[1]._client.is_closed and not made[-1]._client.is_closed
    assert len(clients._shared) == clients.MAX_SHARED_CLIENTS


def test_a_forked_child_opens_its_own_client():
    parent = clients.shared_sync_client("http://127.0.0.1:1")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it got the parent's client, then leave at once
        os.write(write, b"same" if clients.shared_sync_client("http://127.0.0.1:1") is parent else b"own")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 10)
    os.waitpid(pid, 0)

    assert answer == b"own"
    assert clients.shared_sync_client("http://127.0.0.1:1") is parent
