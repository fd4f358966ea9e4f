"""A protocol-level tus client and the few browser requests the scenarios need (sign-in,
pages, downloads), on http.client."""

import base64
import hashlib
import http.client
import re
import select
import socket
import threading
import time
import urllib.parse

from .common import MIB, PASSWORD


class Interrupted(Exception):
    """The connection broke before an answer (the server died or reset it)."""


class Tus:
    """A protocol-level tus 1.0.0 client on http.client: Bearer API key, or a session
    cookie plus X-CSRF-Token. Records per upload the highest offset it ever wrote to the
    socket (`sent_max`), the bound every server-reported offset must stay under."""

    def __init__(self, base_url, key=None, cookie=None, csrf=None, timeout=120):
        u = urllib.parse.urlparse(base_url)
        self.host, self.port = u.hostname, u.port
        self.key, self.cookie, self.csrf = key, cookie, csrf
        self.timeout = timeout
        self.sent_max = {}

    def _headers(self, extra=None):
        h = {"Tus-Resumable": "1.0.0"}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        if self.cookie:
            h["Cookie"] = self.cookie
        if self.csrf:
            h["X-CSRF-Token"] = self.csrf
        h.update(extra or {})
        return h

    def _conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method, path, headers=None, body=None):
        conn = self._conn()
        try:
            conn.request(method, path, body=body, headers=self._headers(headers))
            res = conn.getresponse()
            data = res.read()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, data
        except (ConnectionError, http.client.HTTPException, socket.timeout, OSError) as e:
            raise Interrupted(f"{method} {path}: {e!r}") from e
        finally:
            conn.close()

    def create(self, content, bucket=None, checksum=None):
        """POST /tus/: (status, upload id or None, headers)."""
        meta = [("filename", content.filename), ("filetype", content.filetype)]
        if bucket:
            meta.append(("bucket", bucket))
        if checksum:
            meta.append(("checksum", checksum))
        value = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta)
        status, headers, _ = self.request("POST", "/tus/", {
            "Upload-Length": str(content.size), "Upload-Metadata": value,
            "Content-Length": "0"})
        upload_id = None
        if status == 201 and "location" in headers:
            upload_id = headers["location"].rstrip("/").rsplit("/", 1)[-1]
            self.sent_max.setdefault(upload_id, 0)
        return status, upload_id, headers

    def head(self, upload_id):
        """HEAD: (status, offset or None, headers)."""
        status, headers, _ = self.request("HEAD", f"/tus/{upload_id}")
        offset = int(headers["upload-offset"]) if "upload-offset" in headers else None
        return status, offset, headers

    def patch(self, upload_id, content, offset, end, pace=None, chunk=256 * 1024,
              stop_event=None):
        """Sends content[offset:end] as one PATCH, `pace` bytes/s at most. Returns
        (status, new offset or None, headers, body); raises Interrupted when the
        connection breaks (or `stop_event` is set mid-body). An answer the server sends
        before it has read the whole body (an error mid-body) is read and returned."""
        conn = self._conn()
        length = end - offset
        try:
            conn.putrequest("PATCH", f"/tus/{upload_id}", skip_accept_encoding=True)
            for k, v in self._headers({
                    "Upload-Offset": str(offset), "Content-Length": str(length),
                    "Content-Type": "application/offset+octet-stream"}).items():
                conn.putheader(k, v)
            conn.endheaders()
            sock = conn.sock
            pos, t0 = offset, time.monotonic()
            answered = False
            while pos < end and not answered:
                view = memoryview(content.read(pos, min(end, pos + chunk)))
                while view:
                    readable, writable, _ = select.select([sock], [sock], [], 0.5)
                    if readable:
                        answered = True
                        break
                    if writable:
                        n = sock.send(view[:65536])
                        view = view[n:]
                        pos += n
                        self.sent_max[upload_id] = max(self.sent_max.get(upload_id, 0), pos)
                if stop_event is not None and stop_event.is_set():
                    raise Interrupted("stopped by the scenario")
                if pace and not answered:
                    ahead = (pos - offset) / pace - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            res = conn.getresponse()
            body = res.read()
            headers = {k.lower(): v for k, v in res.getheaders()}
            new = int(headers["upload-offset"]) if "upload-offset" in headers else None
            return res.status, new, headers, body
        except (ConnectionError, http.client.HTTPException, socket.timeout, OSError) as e:
            raise Interrupted(f"PATCH {upload_id}: {e!r}") from e
        finally:
            conn.close()


class BackgroundPatch:
    """One PATCH sent on a thread of its own, so a scenario can break a service while the
    body streams. `join` gives the answer tuple of `Tus.patch`, or None with `error` set."""

    def __init__(self, tus, upload_id, content, offset, end, **patch_options):
        self.answer = None
        self.error = "no answer"
        self._thread = threading.Thread(
            target=self._send, args=(tus, upload_id, content, offset, end), kwargs=patch_options,
            daemon=True)
        self._thread.start()

    def _send(self, tus, upload_id, content, offset, end, **patch_options):
        try:
            self.answer = tus.patch(upload_id, content, offset, end, **patch_options)
        except Interrupted as e:
            self.error = str(e)

    def join(self, timeout):
        self._thread.join(timeout=timeout)
        return self.answer


def get(base_url, path, cookie=None, headers=None, timeout=30):
    """A plain GET: (status, headers, body)."""
    u = urllib.parse.urlparse(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = cookie
    try:
        conn.request("GET", path, headers=h)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def sign_in(base_url, email, password=PASSWORD):
    """Signs in through the form; returns the session cookie header ("name=value")."""
    u = urllib.parse.urlparse(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", "/login", headers={"Accept": "text/html"})
        res = conn.getresponse()
        page = res.read().decode("utf-8", "replace")
        cookies = [c.split(";", 1)[0] for k, c in res.getheaders() if k.lower() == "set-cookie"]
        m = re.search(r'name="csrf_token"\s+value="([^"]+)"', page) or \
            re.search(r'name="csrf-token"\s+content="([^"]+)"', page)
        if not m:
            raise RuntimeError("no csrf_token on /login")
        form = urllib.parse.urlencode({"email": email, "password": password,
                                       "csrf_token": m.group(1), "next": "/"})
        conn.request("POST", "/login", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html",
            "Cookie": "; ".join(cookies), "Origin": base_url.rstrip("/")})
        res = conn.getresponse()
        res.read()
        if res.status != 303:
            raise RuntimeError(f"sign-in answered {res.status}")
        new = [c.split(";", 1)[0] for k, c in res.getheaders() if k.lower() == "set-cookie"]
        return "; ".join(new or cookies)
    finally:
        conn.close()


def download_sha256(base_url, cookie, upload_id):
    """SHA-256 and length of GET /files/{id}/download, or (status, None)."""
    u = urllib.parse.urlparse(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    try:
        conn.request("GET", f"/files/{upload_id}/download", headers={"Cookie": cookie})
        res = conn.getresponse()
        if res.status != 200:
            res.read()
            return res.status, None, 0
        h, n = hashlib.sha256(), 0
        while True:
            block = res.read(MIB)
            if not block:
                break
            h.update(block)
            n += len(block)
        return 200, h.hexdigest(), n
    finally:
        conn.close()
