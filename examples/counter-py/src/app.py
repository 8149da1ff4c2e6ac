"""A hit counter in Python, built into a wasi:http component with componentize-py.

It uses the platform's services: wasi:keyvalue for its state (one Redis shared
by every replica, or the container's memory store), wasi:config for its
greeting and its token (a ConfigMap and a Secret), wasi:logging for its log.

    GET  /anything          counts a hit on the path; greets with config `greeting`
    GET  /kv/KEY            the value (404 if none); PUT sets it to the body,
                            DELETE deletes it, HEAD says whether it exists
    GET  /kv/?cursor=N      one page of list-keys, as JSON
    POST /incr/KEY?by=N     increments atomically; answers the new value
    GET  /batch?keys=a,b    get-many as JSON; DELETE deletes them (delete-many);
                            POST with a JSON object body sets them (set-many)
    GET  /config/KEY        wasi:config's value (404 if none); /config: get-all
    GET  /private           200 when the x-token header is config `token`, else 403
    GET  /log?level=L&msg=M one wasi:logging line

`?bucket=NAME` opens another bucket (default `default`). A store error is
answered 503 with the store's reason; a bucket that is not configured, 404.
"""

import json
from urllib.parse import parse_qs, unquote, urlsplit

from wit_world import exports
from wit_world.imports import atomics, batch, logging, wasi_config_store as config
from wit_world.imports import wasi_keyvalue_store as kv
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Delete,
    Method_Head,
    Method_Post,
    Method_Put,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Err, Ok


class Answer(Exception):
    def __init__(self, status: int, body: str):
        self.status = status
        self.body = body


def read_body(request: IncomingRequest) -> bytes:
    body = request.consume()
    data = bytearray()
    with body.stream() as stream:
        while True:
            try:
                data.extend(stream.blocking_read(65536))
            except Err:
                break  # the stream ended (or the host cut it)
    IncomingBody.finish(body)
    return bytes(data)


def store_call(what, *args):
    """Calls the store; its errors become this app's answers."""
    try:
        return what(*args)
    except Err as err:
        error = err.value
        if isinstance(error, kv.Error_NoSuchStore):
            raise Answer(404, "no-such-store\n")
        if isinstance(error, kv.Error_Other):
            logging.log(logging.Level.WARN, "counter", f"store error: {error.value}")
            raise Answer(503, f"store error: {error.value}\n")
        raise Answer(503, f"store error: {error}\n")


def config_get(key: str):
    try:
        return config.get(key)
    except Err as err:
        raise Answer(500, f"config error: {err.value.value}\n")


def handle(request: IncomingRequest) -> tuple[int, str]:
    url = urlsplit(request.path_with_query() or "/")
    query = parse_qs(url.query)
    path = unquote(url.path)
    method = request.method()
    bucket_name = query.get("bucket", ["default"])[0]

    if path == "/config":
        try:
            pairs = config.get_all()
        except Err as err:
            raise Answer(500, f"config error: {err.value.value}\n")
        # the keys only: values may be secrets
        return 200, json.dumps(sorted(key for key, _ in pairs)) + "\n"
    if path.startswith("/config/"):
        value = config_get(path[len("/config/"):])
        if value is None:
            return 404, "no such key\n"
        return 200, value
    if path == "/private":
        token = config_get("token")
        given = None
        for name, value in request.headers().entries():
            if name.lower() == "x-token":
                given = value.decode()
        if token is not None and given == token:
            return 200, "token accepted\n"
        return 403, "token refused\n"
    if path == "/log":
        level = logging.Level[query.get("level", ["info"])[0].upper()]
        logging.log(level, query.get("context", ["counter"])[0], query.get("msg", [""])[0])
        return 200, "logged\n"

    bucket = store_call(kv.open, bucket_name)
    with bucket:
        if path.startswith("/kv/") and len(path) > len("/kv/"):
            key = path[len("/kv/"):]
            if isinstance(method, Method_Put):
                store_call(bucket.set, key, read_body(request))
                return 200, "stored\n"
            if isinstance(method, Method_Delete):
                store_call(bucket.delete, key)
                return 200, "deleted\n"
            if isinstance(method, Method_Head):
                return (200 if store_call(bucket.exists, key) else 404), ""
            value = store_call(bucket.get, key)
            if value is None:
                return 404, "no such key\n"
            return 200, value.decode(errors="replace")
        if path == "/kv/":
            cursor = int(query["cursor"][0]) if "cursor" in query else None
            page = store_call(bucket.list_keys, cursor)
            return 200, json.dumps({"keys": page.keys, "cursor": page.cursor}) + "\n"
        if path.startswith("/incr/"):
            by = int(query.get("by", ["1"])[0])
            value = store_call(atomics.increment, bucket, path[len("/incr/"):], by)
            return 200, f"{value}\n"
        if path == "/batch":
            if isinstance(method, Method_Post):
                pairs = json.loads(read_body(request))
                store_call(batch.set_many, bucket, [(k, v.encode()) for k, v in pairs.items()])
                return 200, f"stored {len(pairs)}\n"
            keys = [k for k in query.get("keys", [""])[0].split(",") if k]
            if isinstance(method, Method_Delete):
                store_call(batch.delete_many, bucket, keys)
                return 200, f"deleted {len(keys)}\n"
            found = store_call(batch.get_many, bucket, keys)
            values = {pair[0]: pair[1].decode() for pair in found if pair is not None}
            return 200, json.dumps(values, sort_keys=True) + "\n"

        hits = store_call(atomics.increment, bucket, f"hits:{path}", 1)
    greeting = config_get("greeting") or "Hello"
    logging.log(logging.Level.INFO, "counter", f"{path} has {hits} hits")
    return 200, f"{greeting}! {path} has been visited {hits} times.\n"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        try:
            status, body = handle(request)
        except Answer as answer:
            status, body = answer.status, answer.body
        headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
        response = OutgoingResponse(headers)
        response.set_status_code(status)
        outgoing = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with outgoing.write() as stream:
            data = body.encode()
            # blocking_write_and_flush takes at most 4096 bytes a call
            for at in range(0, len(data), 4096):
                stream.blocking_write_and_flush(data[at:at + 4096])
        OutgoingBody.finish(outgoing, None)
