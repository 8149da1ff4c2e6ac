"""An auth check as wasi:http 0.3 middleware (`wasi:http/middleware@0.3.0`),
built into a component with componentize-py. `wasmhttp image --middleware`
composes it in front of a wasi:http 0.3 handler, so the two are one component.

A request must carry `Authorization: Bearer <token>`, where the token is one of
`AUTH_TOKENS` (`user=token,user=token`, from the route's env; in Kubernetes a
Secret). Without one it is answered 401 here and never reaches the handler.
With one, the handler gets the request with `x-authenticated-user: <user>`;
any `x-authenticated-user` a client sent is removed first, so the handler can
trust it.
"""

import hmac
import os

import wit_world
from wit_world import exports
from wit_world.imports import handler
from wit_world.imports.wasi_http_types import Fields, Request, Response
from componentize_py_async_support import spawn
from componentize_py_types import Ok

USER_HEADER = "x-authenticated-user"


def tokens() -> list[tuple[str, bytes]]:
    pairs = []
    for entry in os.environ.get("AUTH_TOKENS", "").split(","):
        user, _, token = entry.strip().partition("=")
        if user and token:
            pairs.append((user, token.encode()))
    return pairs


def user_of(authorization: list[bytes]) -> str | None:
    if len(authorization) != 1:
        return None
    scheme, _, offered = authorization[0].partition(b" ")
    if scheme.lower() != b"bearer" or not offered:
        return None
    found = None
    # every token compared, in constant time: how long the check takes says
    # nothing about which one nearly matched
    for user, token in tokens():
        if hmac.compare_digest(offered.strip(), token):
            found = user
    return found


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        headers = request.get_headers()
        user = user_of(headers.get("authorization"))
        if user is None:
            return unauthorized()
        forwarded_headers = headers.clone()
        forwarded_headers.delete(USER_HEADER)
        forwarded_headers.append(USER_HEADER, user.encode())
        method = request.get_method()
        scheme = request.get_scheme()
        authority = request.get_authority()
        path = request.get_path_with_query()
        options = request.get_options()
        done_tx, done = wit_world.result_unit_wasi_http_types_error_code_future(lambda: Ok(None))
        body, trailers = Request.consume_body(request, done)
        forwarded, sent = Request.new(forwarded_headers, body, trailers, options)
        forwarded.set_method(method)
        forwarded.set_scheme(scheme)
        forwarded.set_authority(authority)
        forwarded.set_path_with_query(path)

        async def report() -> None:
            # how the body went to the handler is how it went for the client
            await done_tx.write(await sent.read())

        spawn(report())
        return await handler.handle(forwarded)


def no_trailers():
    writer, reader = wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(lambda: Ok(None))
    spawn(writer.write(Ok(None)))
    return reader


def unauthorized() -> Response:
    body = b"401 unauthorized: send Authorization: Bearer <token>\n"
    writer, reader = wit_world.byte_stream()
    headers = Fields.from_list([
        ("content-type", b"text/plain; charset=utf-8"),
        ("www-authenticate", b'Bearer realm="api"'),
    ])
    response, _sent = Response.new(headers, reader, no_trailers())
    response.set_status_code(401)

    async def send() -> None:
        with writer:
            await writer.write_all(body)

    spawn(send())
    return response
