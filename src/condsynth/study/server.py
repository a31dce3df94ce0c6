"""A tiny study server (standard library only), bound to 127.0.0.1.

It serves the study folder and two endpoints:

- ``POST /api/answer`` with ``{"judge", "item", "best", "worst", "shown"}``: validated against
  the manifest, then written into ``results.json`` atomically (temporary file, fsync, rename)
  before the reply, so a reload, a crash or a restart loses nothing. A judge answering an item
  again replaces the earlier answer.
- ``GET /api/answers?judge=NAME``: that judge's answers, so the page resumes where it was.

``key.json`` (which option is which system), ``results.json`` and hidden paths (a part starting
with ".") are never served. As the studio does (:mod:`condsynth.web`), it answers only requests
that name a loopback host, takes answers only from its own page (the ``Origin`` of a POST) and
sends strict security headers.
"""

from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from condsynth.errors import CondsynthError
from condsynth.study.build import KEY, MANIFEST, RESULTS, _atomic_json
from condsynth.web import SECURITY_HEADERS, host_refusal, origin_refusal

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024
MAX_JUDGE = 64
_PRIVATE = {KEY, RESULTS}
# The study page is one self-contained file with its script and style inline.
STUDY_HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")}


class AnswerStore:
    """The answers of one study, validated and saved on every change."""

    def __init__(self, study_dir: str | Path) -> None:
        self.dir = Path(study_dir)
        if not (self.dir / MANIFEST).is_file():
            raise CondsynthError(f"{self.dir} is not a study folder ({MANIFEST} is missing). "
                                 "Fix: build one with `condsynth study build`.")
        manifest = json.loads((self.dir / MANIFEST).read_text())
        self.options = {item["id"]: {o["id"] for o in item["options"]}
                        for item in manifest["items"]}
        path = self.dir / RESULTS
        self.results = (json.loads(path.read_text()) if path.is_file()
                        else {"format_version": 1, "answers": []})
        self.lock = threading.Lock()

    def validate(self, raw: Any) -> dict[str, Any]:
        """The answer as stored; ValueError says what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError("expected a JSON object")
        judge = raw.get("judge")
        if not isinstance(judge, str) or not judge.strip() or len(judge) > MAX_JUDGE:
            raise ValueError(f"judge must be a name of 1..{MAX_JUDGE} characters")
        item = raw.get("item")
        if item not in self.options:
            raise ValueError(f"unknown item {item!r}")
        best, worst = raw.get("best"), raw.get("worst")
        if best not in self.options[item] or worst not in self.options[item]:
            raise ValueError("best and worst must be options of the item")
        if best == worst:
            raise ValueError("best and worst must differ")
        shown = raw.get("shown", [])
        if (not isinstance(shown, list) or set(shown) != self.options[item]
                or len(shown) != len(self.options[item])):
            raise ValueError("shown must list every option of the item once, in display order")
        return {"judge": judge.strip(), "item": item, "best": best, "worst": worst,
                "shown": shown, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def record(self, raw: Any) -> int:
        """Validate and save one answer; returns how many items this judge has answered."""
        answer = self.validate(raw)
        with self.lock:
            answers = [a for a in self.results["answers"]
                       if (a["judge"], a["item"]) != (answer["judge"], answer["item"])]
            answers.append(answer)
            self.results = {**self.results, "answers": answers}
            _atomic_json(self.dir / RESULTS, self.results)
            return sum(a["judge"] == answer["judge"] for a in answers)

    def answers_of(self, judge: str) -> dict[str, dict[str, str]]:
        with self.lock:
            return {a["item"]: {"best": a["best"], "worst": a["worst"]}
                    for a in self.results["answers"] if a["judge"] == judge.strip()}


class _Handler(SimpleHTTPRequestHandler):
    store: AnswerStore
    quiet: bool = True

    def log_message(self, format: str, *args: Any) -> None:   # noqa: A002 (stdlib's name)
        if not self.quiet:
            super().log_message(format, *args)

    def end_headers(self) -> None:
        for key, value in STUDY_HEADERS.items():
            self.send_header(key, value)
        super().end_headers()

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refused(self) -> bool:
        """Answer 403 (and say so) to a foreign Host, or to a POST from another site's page."""
        refusal = host_refusal(self.headers, loopback_only=True)
        if refusal is None and self.command == "POST":
            refusal = origin_refusal(self.headers)
        if refusal is None:
            return False
        self.close_connection = True                  # its body, if any, stays unread
        self._json(HTTPStatus.FORBIDDEN, {"error": refusal})
        return True

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self._refused():
            return
        url = urlparse(self.path)
        if url.path == "/api/answers":
            judge = parse_qs(url.query).get("judge", [""])[0]
            self._json(HTTPStatus.OK, {"answers": self.store.answers_of(judge)})
            return
        if self._private():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        super().do_GET()

    def do_HEAD(self) -> None:  # noqa: N802
        if self._refused():
            return
        if self._private():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        super().do_HEAD()

    def _private(self) -> bool:
        """Whether the request maps (after decoding and normalizing) to a file never served."""
        target = Path(self.translate_path(self.path))
        parts = unquote(urlparse(self.path).path).split("/")
        return target.name in _PRIVATE or any(p.startswith(".") for p in parts + [target.name])

    def do_POST(self) -> None:  # noqa: N802
        if self._refused():
            return
        if urlparse(self.path).path != "/api/answer":
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "missing or oversized body"})
            return
        try:
            raw = json.loads(self.rfile.read(length))
            answered = self.store.record(raw)
        except (ValueError, UnicodeDecodeError) as err:   # JSONDecodeError is a ValueError
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
            return
        self._json(HTTPStatus.OK, {"ok": True, "answered": answered})


class StudyServer:
    """Serves a study folder on 127.0.0.1:``port`` (0 = a free port) in a background thread."""

    def __init__(self, study_dir: str | Path, port: int = 0, quiet: bool = True) -> None:
        store = AnswerStore(study_dir)
        directory = str(Path(study_dir).resolve())

        class Handler(_Handler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=directory, **kwargs)

        Handler.store = store
        Handler.quiet = quiet
        self.store = store
        self.httpd = ThreadingHTTPServer((HOST, port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self) -> StudyServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread is not None:
            self.thread.join()

    def __enter__(self) -> StudyServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_study(study_dir: str | Path, port: int = 8765, quiet: bool = True) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = StudyServer(study_dir, port, quiet)
    print(f"study at {server.url} (answers are saved to {Path(study_dir) / RESULTS}); "
          "Ctrl-C to stop")
    try:
        server.httpd.serve_forever()
    finally:
        server.httpd.server_close()
