"""A wasi:http handler in Python, built into a component with componentize-py.

Two query parameters let you try the server's limits with a real guest:
`?sleep=MS` answers after MS milliseconds (WASMHTTP_MAX_CONCURRENCY,
WASMHTTP_REQUEST_TIMEOUT, draining on SIGTERM) and `?allocate=MIB` holds
MIB MiB while answering (WASMHTTP_MAX_INSTANCE_MEMORY).
"""

import time
from urllib.parse import parse_qs, urlsplit

from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Ok


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = request.path_with_query() or "/"
        print(f"hello-py: {path}", flush=True)
        url = urlsplit(path)
        query = parse_qs(url.query)
        held = None
        if "allocate" in query:
            held = bytearray(int(query["allocate"][0]) << 20)
        if "sleep" in query:
            time.sleep(int(query["sleep"][0]) / 1000)
        body = f"Hello from Python, running as a WebAssembly component in wasmhttp! You asked for {url.path}\n"
        del held

        headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
        response = OutgoingResponse(headers)
        response.set_status_code(200)
        outgoing = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with outgoing.write() as stream:
            stream.blocking_write_and_flush(body.encode())
        OutgoingBody.finish(outgoing, None)
