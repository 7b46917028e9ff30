"""Tests for scripts/model/download.py against a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from model.download import DownloadError, download  # noqa: E402

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """Serves `server.body` at /file, with Range support and configurable misbehaviour."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        if self.path != "/file":
            self.send_error(404)
            return
        body, start = srv.body, 0
        rng = self.headers.get("Range")
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        data = body[start:]
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if srv.cut_after is not None and len(srv.requests) == 1:
            self.wfile.write(data[:srv.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.body, srv.requests, srv.cut_after, srv.ignore_range = PAYLOAD, [], None, False
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/file"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_plain_download(server, tmp_path):
    dest = tmp_path / "sub" / "model.pt"
    assert download(server.url, str(dest), expected_sha256=SHA, expected_size=len(PAYLOAD)) == str(dest)
    assert dest.read_bytes() == PAYLOAD
    assert not Path(str(dest) + ".part").exists()
    assert [r["range"] for r in server.requests] == [None]


def test_resume_after_cut_connection(server, tmp_path):
    server.cut_after = 100_000
    dest = tmp_path / "model.pt"
    download(server.url, str(dest), expected_sha256=SHA, timeout=5)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 2
    m = re.fullmatch(r"bytes=(\d+)-", server.requests[1]["range"] or "")
    assert m and int(m.group(1)) > 0


def test_resume_from_existing_part(server, tmp_path):
    dest = tmp_path / "model.pt"
    Path(str(dest) + ".part").write_bytes(PAYLOAD[:50_000])
    download(server.url, str(dest), expected_sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == ["bytes=50000-"]


def test_server_ignoring_range_restarts(server, tmp_path):
    server.ignore_range = True
    dest = tmp_path / "model.pt"
    Path(str(dest) + ".part").write_bytes(PAYLOAD[:50_000])
    download(server.url, str(dest), expected_sha256=SHA)
    assert dest.read_bytes() == PAYLOAD  # restarted, not appended twice
    assert len(server.requests) == 1


def test_complete_part_gets_416_and_restarts(server, tmp_path):
    dest = tmp_path / "model.pt"
    Path(str(dest) + ".part").write_bytes(PAYLOAD)
    download(server.url, str(dest), expected_sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [f"bytes={len(PAYLOAD)}-", None]


def test_wrong_sha256_refused(server, tmp_path):
    server.body = os.urandom(len(PAYLOAD))
    dest = tmp_path / "model.pt"
    with pytest.raises(DownloadError) as err:
        download(server.url, str(dest), expected_sha256=SHA)
    msg = str(err.value)
    assert SHA in msg and hashlib.sha256(server.body).hexdigest() in msg
    assert "checkpoint:" in msg and server.url in msg
    assert not dest.exists() and not Path(str(dest) + ".part").exists()


def test_wrong_size_refused(server, tmp_path):
    dest = tmp_path / "model.pt"
    with pytest.raises(DownloadError, match="size"):
        download(server.url, str(dest), expected_size=len(PAYLOAD) + 1)
    assert not dest.exists() and not Path(str(dest) + ".part").exists()


def test_existing_dest_with_matching_hash_skips_network(server, tmp_path):
    dest = tmp_path / "model.pt"
    dest.write_bytes(PAYLOAD)
    assert download(server.url, str(dest), expected_sha256=SHA) == str(dest)
    assert server.requests == []


def test_existing_dest_with_wrong_hash_is_not_overwritten(server, tmp_path):
    dest = tmp_path / "model.pt"
    dest.write_bytes(b"user file")
    with pytest.raises(DownloadError, match="already exists"):
        download(server.url, str(dest), expected_sha256=SHA)
    assert dest.read_bytes() == b"user file"
    assert server.requests == []


def test_no_network(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(DownloadError) as err:
        download(url, str(tmp_path / "model.pt"), timeout=5)
    msg = str(err.value)
    assert "cannot reach" in msg and url in msg and "no network" in msg
    assert "`checkpoint:`" in msg and "local" in msg


def test_http_404(server, tmp_path):
    url = server.url.replace("/file", "/missing")
    with pytest.raises(DownloadError) as err:
        download(url, str(tmp_path / "model.pt"))
    assert "404" in str(err.value) and url in str(err.value)
    assert not (tmp_path / "model.pt").exists()
