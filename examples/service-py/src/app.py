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

`?header=NAME` answers the request header NAME's values, one a line (404 when
it has none): what a middleware in front of this handler forwarded.

`?url=URL` fetches URL with wasi:http 0.3's `client.send` and answers what came
back (502 with the error code when the host refuses or the request fails);
`?file=PATH` answers the file's contents (404 when missing), and a PUT with it
writes the request's body there (201; 403 where the volume is read-only; 413
when the body did not arrive whole because it exceeds the host's limit).
Files go through Python's `open`, which componentize-py's runtime (wasi-libc)
serves with the WASI 0.2 filesystem — the host's preopens are the same for both.

The platform's services, from a 0.3 handler: `?count=KEY` increments KEY in
the wasi:keyvalue bucket `default` and answers the new value (503 with the
store's reason when it fails), `?config=KEY` answers wasi:config's value
(404 when there is none), `?log=MESSAGE` writes a wasi:logging line at info.
"""

from urllib.parse import parse_qs, urlsplit

import wit_world
from wit_world import exports
from wit_world.imports import atomics, client, logging, monotonic_clock
from wit_world.imports import wasi_config_store as config
from wit_world.imports import wasi_keyvalue_store as kv
from wit_world.imports.wasi_http_types import (
    ErrorCode_HttpRequestBodySize,
    Fields,
    Method_Get,
    Method_Put,
    Request,
    Response,
    Scheme_Http,
    Scheme_Https,
)
from componentize_py_async_support import spawn
from componentize_py_async_support.streams import ByteStreamReader
from componentize_py_types import Err, Ok

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
        if "url" in query:
            return await fetch(query["url"][0])
        if "file" in query:
            return await file(query["file"][0], request)
        if "count" in query:
            try:
                with kv.open("default") as bucket:
                    value = atomics.increment(bucket, query["count"][0], 1)
            except Err as err:
                return respond(503, f"store error: {err.value}\n".encode())
            return respond(200, f"{query['count'][0]} = {value}\n".encode())
        if "config" in query:
            value = config.get(query["config"][0])
            if value is None:
                return respond(404, b"no such key\n")
            return respond(200, value.encode())
        if "header" in query:
            # what arrived of a request header (one line a value; 404 when
            # absent): what middleware in front of this handler forwarded
            values = request.get_headers().get(query["header"][0])
            if not values:
                return respond(404, b"no such header\n")
            return respond(200, b"".join(value + b"\n" for value in values))
        if "log" in query:
            logging.log(logging.Level.INFO, "service-py", query["log"][0])
        body = (
            f"Hello from Python on wasi:http 0.3! You asked for {url.path}; "
            f"this instance has served {served}, {serving} at once\n"
        )
        del held
        return respond(200, body.encode())


def no_trailers():
    """A trailers future that resolves to none once read."""
    writer, reader = wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(lambda: Ok(None))
    spawn(writer.write(Ok(None)))
    return reader


def respond(status: int, body: bytes) -> Response:
    writer, reader = wit_world.byte_stream()
    headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
    response, _sent = Response.new(headers, reader, no_trailers())
    response.set_status_code(status)

    async def send() -> None:
        with writer:
            await writer.write_all(body)

    spawn(send())
    return response


async def read_all(body: ByteStreamReader) -> bytes:
    chunks = []
    with body:
        while not body.writer_dropped:
            chunks.append(await body.read(65536))
    return b"".join(chunks)


async def fetch(target: str) -> Response:
    parts = urlsplit(target)
    request, _sent = Request.new(Fields(), None, no_trailers(), None)
    request.set_method(Method_Get())
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    try:
        upstream = await client.send(request)
    except Err as err:
        return respond(502, f"{target}: {err.value}\n".encode())
    status = upstream.get_status_code()
    done_tx, done = wit_world.result_unit_wasi_http_types_error_code_future(lambda: Ok(None))
    body, _trailers = Response.consume_body(upstream, done)
    text = await read_all(body)
    spawn(done_tx.write(Ok(None)))
    return respond(200, f"upstream answered {status}: ".encode() + text)


async def file(path: str, request: Request) -> Response:
    try:
        if isinstance(request.get_method(), Method_Put):
            done_tx, done = wit_world.result_unit_wasi_http_types_error_code_future(lambda: Ok(None))
            body, trailers = Request.consume_body(request, done)
            content = await read_all(body)
            spawn(done_tx.write(Ok(None)))
            # the stream just ends when the body fails (over the host's
            # WASMHTTP_MAX_BODY, a broken upload): its trailers say why
            ended = await trailers.read()
            if isinstance(ended, Err):
                status = 413 if isinstance(ended.value, ErrorCode_HttpRequestBodySize) else 400
                return respond(status, f"{path}: the body did not arrive: {ended.value}\n".encode())
            with open(path, "wb") as out:
                out.write(content)
            return respond(201, f"wrote {path}\n".encode())
        with open(path, "rb") as into:
            return respond(200, into.read())
    except FileNotFoundError as err:
        return respond(404, f"{path}: {err}\n".encode())
    except OSError as err:
        print(f"service-py: {path}: {err}", flush=True)
        return respond(403, f"{path}: {err}\n".encode())
