"""A wasi:http handler in Python, built into a component with componentize-py."""

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
        body = f"Hello from Python, running as a WebAssembly component in wasmhttp! You asked for {path}\n"

        headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
        response = OutgoingResponse(headers)
        response.set_status_code(200)
        outgoing = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with outgoing.write() as stream:
            stream.blocking_write_and_flush(body.encode())
        OutgoingBody.finish(outgoing, None)
