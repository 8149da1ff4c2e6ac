"""A wasi:http 0.3 handler in Python (`wasi:http/service@0.3.0`), built into a
component with componentize-py. Its `handle` is async: with
WASMHTTP_INSTANCE_REUSE above 1, one instance serves several requests at once
(WASMHTTP_INSTANCE_CONCURRENCY), and the answer says how many this instance
has served.

Query parameters, as the 0.2 examples have them: `?sleep=MS` answers after MS
milliseconds (awaiting a WASI 0.3 clock, so other requests of the instance go
on meanwhile), `?allocate=MIB` holds MIB MiB while answering, `?fail=1` raises
(the instance traps: its own requests fail, no others). The answer says how
many requests this instance has served, and how many it is serving now.
"""

from urllib.parse import parse_qs, urlsplit

import wit_world
from wit_world import exports
from wit_world.imports import monotonic_clock
from wit_world.imports.wasi_http_types import Fields, Request, Response
from componentize_py_async_support import spawn
from componentize_py_types import Ok

served = 0
serving = 0


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        global served, serving
        served += 1
        serving += 1
        try:
            return await self.answer(request)
        finally:
            serving -= 1

    async def answer(self, request: Request) -> Response:
        path = request.get_path_with_query() or "/"
        url = urlsplit(path)
        query = parse_qs(url.query)
        held = None
        if "allocate" in query:
            held = bytearray(int(query["allocate"][0]) << 20)
        if "sleep" in query:
            await monotonic_clock.wait_for(int(query["sleep"][0]) * 1_000_000)
        if "fail" in query:
            raise RuntimeError("asked to fail")
        body = (
            f"Hello from Python on wasi:http 0.3! You asked for {url.path}; "
            f"this instance has served {served}, {serving} at once\n"
        )
        del held
        writer, reader = wit_world.byte_stream()
        trailers_tx, trailers = wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(lambda: Ok(None))
        headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
        response, _sent = Response.new(headers, reader, trailers)

        async def send() -> None:
            with writer:
                await writer.write_all(body.encode())
            await trailers_tx.write(Ok(None))

        spawn(send())
        return response
