"""CORS as wasi:http 0.3 middleware (`wasi:http/middleware@0.3.0`), built into
a component with componentize-py and composed in front of a handler by
`wasmhttp image` (`middleware = [...]` in an app's manifest).

For a request whose `Origin` is one of `CORS_ORIGINS` (comma-separated, from
the route's env): a preflight (`OPTIONS` with
`Access-Control-Request-Method`) is answered here, 204, and never reaches the
handler; any other request goes on, and its answer, whoever gave it, gets
`Access-Control-Allow-Origin`. Placed before an auth middleware, a browser can
read the 401 and its preflights need no token; after it, they would.
"""

import os

import wit_world
from wit_world import exports
from wit_world.imports import handler
from wit_world.imports.wasi_http_types import Fields, Method_Options, Request, Response
from componentize_py_async_support import spawn
from componentize_py_types import Ok

ALLOWED_METHODS = b"GET, POST, PUT, DELETE, OPTIONS"


def allowed_origin(request: Request) -> bytes | None:
    origins = request.get_headers().get("origin")
    if len(origins) != 1:
        return None
    allowed = {o.strip().encode() for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()}
    return origins[0] if origins[0] in allowed else None


def no_trailers():
    writer, reader = wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(lambda: Ok(None))
    spawn(writer.write(Ok(None)))
    return reader


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        origin = allowed_origin(request)
        preflight = isinstance(request.get_method(), Method_Options) and \
            request.get_headers().has("access-control-request-method")
        if origin is not None and preflight:
            headers = Fields.from_list([
                ("access-control-allow-origin", origin),
                ("access-control-allow-methods", ALLOWED_METHODS),
                ("access-control-allow-headers", b"authorization, content-type"),
                ("access-control-max-age", b"600"),
                ("vary", b"origin"),
            ])
            response, _sent = Response.new(headers, None, no_trailers())
            response.set_status_code(204)
            return response
        answer = await handler.handle(request)
        if origin is None:
            return answer
        # a response's headers cannot change once made: make it again, with
        # the same status, body and trailers and the header added
        headers = answer.get_headers().clone()
        headers.set("access-control-allow-origin", [origin])
        headers.append("vary", b"origin")
        status = answer.get_status_code()
        done_tx, done = wit_world.result_unit_wasi_http_types_error_code_future(lambda: Ok(None))
        body, trailers = Response.consume_body(answer, done)
        forwarded, sent = Response.new(headers, body, trailers)
        forwarded.set_status_code(status)

        async def report() -> None:
            await done_tx.write(await sent.read())

        spawn(report())
        return forwarded
