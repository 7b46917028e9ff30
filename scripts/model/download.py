"""Resumable, verified HTTP(S) download using only the standard library.

`download()` writes into `<dest>.part`, resumes it with a `Range` request after a cut
connection or an earlier interrupted run, checks size and sha256, and only then renames the
part file to `dest` -- so `dest` never exists half-written.
"""

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request

log = logging.getLogger("cnclip-deploy")

_RETRYABLE = (http.client.HTTPException, ConnectionError, TimeoutError)
_HINT = "re-run to retry, or download the file by hand and set `checkpoint:` to its path"


class DownloadError(RuntimeError):
    """A download failed or its result did not verify; the message says what to do."""


class _ShortBody(Exception):
    """The server closed the connection before sending the whole body."""


class _Restart(Exception):
    """The part file was discarded (416); start again from zero."""


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _size(path: str) -> int:
    return os.path.getsize(path) if os.path.exists(path) else 0


def _fetch(opener, url: str, part: str, timeout: float, chunk: int) -> int | None:
    """One request: resume `part` from its current size; return the total size if known."""
    offset = _size(part)
    req = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        resp = opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            log.warning("server refused to resume %s at %d bytes (416); restarting", url, offset)
            os.remove(part)
            raise _Restart() from err
        if err.code in (500, 502, 503, 504):
            raise http.client.HTTPException(f"HTTP {err.code} {err.reason}") from err
        raise DownloadError(f"HTTP {err.code} {err.reason} for {url}; check the URL, then {_HINT}") from err
    except urllib.error.URLError as err:
        raise DownloadError(
            f"cannot reach {url} ({err.reason}): this machine may have no network; download the "
            f"file by hand to {os.path.abspath(part[:-5])} or set `checkpoint:` to a local .pt file"
        ) from err
    with resp:
        total = None
        length = resp.headers.get("Content-Length")
        if resp.status == 206:
            m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise DownloadError(f"bad Content-Range from {url}: {resp.headers.get('Content-Range')!r}")
            total = int(m.group(2)) if m.group(2) != "*" else None
            mode = "ab"
        else:
            if offset:
                log.info("server ignored the range request; restarting %s from zero", url)
            offset, mode = 0, "wb"
        if total is None and length is not None:
            total = offset + int(length)
        done, start, last = offset, time.monotonic(), time.monotonic()
        with open(part, mode) as fh:
            while block := resp.read(chunk):
                fh.write(block)
                done += len(block)
                now = time.monotonic()
                if now - last >= 5:
                    rate = (done - offset) / (now - start) / 1e6
                    log.info("  %d / %s bytes, %.1f MB/s", done, total if total is not None else "?", rate)
                    last = now
    if total is not None and done < total:
        raise _ShortBody(f"connection closed after {done} of {total} bytes")
    return total


def download(url: str, dest: str, expected_sha256: str | None = None, expected_size: int | None = None,
             timeout: float = 60.0, retries: int = 3, chunk: int = 1 << 20) -> str:
    """Download `url` to `dest`, resuming `dest + ".part"` and retrying cut connections.

    Verifies the size (against `expected_size` and the server's total) and the sha256 (against
    `expected_sha256`) before renaming the part file to `dest`. Returns `dest`. An existing
    `dest` is accepted if its hash matches and refused (DownloadError) if not.
    Raises DownloadError on no network, HTTP errors, exhausted retries or a failed check.
    """
    want = expected_sha256.lower() if expected_sha256 else None
    if os.path.exists(dest):
        got = sha256_file(dest) if want else None
        if got != want or (expected_size is not None and os.path.getsize(dest) != expected_size):
            raise DownloadError(
                f"{dest} already exists but does not match {url}: expected sha256 {want}, got {got} "
                f"(expected size {expected_size}, got {os.path.getsize(dest)}); it was left untouched: "
                f"delete it to re-download, or set `checkpoint:` to the file you mean to use")
        log.info("%s already present and verified", dest)
        return dest
    part = dest + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    if expected_size is not None and _size(part) > expected_size:
        os.remove(part)
    log.info("downloading %s -> %s (resuming at %d bytes)", url, dest, _size(part))
    opener = urllib.request.build_opener()
    attempt, t0 = 0, time.monotonic()
    while True:
        try:
            total = _fetch(opener, url, part, timeout, chunk)
            break
        except _Restart:
            continue
        except (_ShortBody, *_RETRYABLE) as err:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"download of {url} failed after {retries} retries ({err}); {_size(part)} bytes "
                    f"kept in {part}: {_HINT}") from err
            log.warning("download of %s interrupted (%s); retry %d/%d from %d bytes",
                        url, err, attempt, retries, _size(part))
            time.sleep(min(0.5 * 2 ** (attempt - 1), 10))

    size = _size(part)
    checks = [("size", expected_size, size), ("size (from server)", total, size)]
    if want:
        checks.append(("sha256", want, sha256_file(part)))
    for what, expected, got in checks:
        if expected is not None and expected != got:
            os.remove(part)
            raise DownloadError(
                f"{what} mismatch downloading {url} to {dest}: expected {expected}, got {got}; "
                f"the partial file was deleted: {_HINT}")
    os.replace(part, dest)
    log.info("downloaded %s (%d bytes, %.1f s)", dest, size, time.monotonic() - t0)
    return dest
