"""A minimal OpenAI-compatible server over a local backend (stdlib `http.server`).

No other OpenAI-compatible server runs offline here (vLLM needs its own environment,
llama.cpp has no wheel), so this one serves the transformers backend on 127.0.0.1: the HTTP
client is tested against a real server answering with a real model, and a small team can share
one loaded model across jobs. Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``,
``GET /v1/models``. One request is generated at a time (the model is not thread-safe).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from funfactory.synth.llm.base import GenerationParams, LLMBackend, Request

MAX_BODY_BYTES = 1 << 20


class BadRequest(ValueError):
    pass


def params_from_body(body: dict) -> GenerationParams:
    stop = body.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    try:
        return GenerationParams(temperature=float(body.get("temperature", 1.0)),
                                top_p=float(body.get("top_p", 1.0)),
                                max_tokens=int(body.get("max_tokens") or 16),
                                seed=int(body.get("seed") or 0),
                                stop=tuple(str(s) for s in stop))
    except (TypeError, ValueError) as e:
        raise BadRequest(f"bad generation parameter: {e}") from None


def request_from_body(path: str, body: dict) -> Request:
    if path.endswith("/chat/completions"):
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            raise BadRequest("messages must be a list of {role, content} objects")
        return Request.chat(messages)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be one string")
    return Request(prompt=prompt)


class _Handler(BaseHTTPRequestHandler):
    server: "LLMServer"

    def log_message(self, format, *args):  # quiet: tests and jobs read their own logs
        return

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [
                {"id": self.server.backend.model, "object": "model", "owned_by": "funfactory"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        path = self.path.rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, {"error": {"message": "request body over 1 MiB"}})
            return
        try:
            body = json.loads(self.rfile.read(length).decode("utf-8"))
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            request = request_from_body(path, body)
            params = params_from_body(body)
        except (BadRequest, json.JSONDecodeError, UnicodeDecodeError) as e:
            self._send(400, {"error": {"message": str(e), "type": "invalid_request_error"}})
            return
        try:
            with self.server.generate_lock:
                completion = self.server.backend.generate_uncached([request], params)[0]
        except Exception as e:  # the client gets a 500 with the reason, the server keeps serving
            self._send(500, {"error": {"message": f"{type(e).__name__}: {e}"}})
            return
        self.server.requests_served += 1
        choice = {"index": 0, "finish_reason": completion.finish_reason}
        if request.is_chat:
            choice["message"] = {"role": "assistant", "content": completion.text}
        else:
            choice["text"] = completion.text
        self._send(200, {
            "id": f"cmpl-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion" if request.is_chat else "text_completion",
            "created": int(time.time()), "model": self.server.backend.model, "choices": [choice],
            "usage": {"prompt_tokens": completion.prompt_tokens,
                      "completion_tokens": completion.completion_tokens,
                      "total_tokens": completion.prompt_tokens + completion.completion_tokens}})


class LLMServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend: LLMBackend, host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Handler)
        self.backend = backend
        self.generate_lock = threading.Lock()
        self.requests_served = 0
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LLMServer:
        """Serve in a background thread (tests, notebooks); `stop()` ends it."""
        self._thread = threading.Thread(target=self.serve_forever, name="llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
