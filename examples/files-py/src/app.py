"""Files through wasi:filesystem, in Python: `GET /some/path` answers the file's
contents, `PUT /some/path` writes the request body there. wasmhttp maps the
container's volumes (Kubernetes configMap, secret, emptyDir, hostPath) to
the same paths in the guest, read-only ones read-only, and nothing else."""

from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
    Method_Put,
)
from componentize_py_types import Ok


def read_body(request: IncomingRequest) -> bytes:
    body = request.consume()
    stream = body.stream()
    data = b""
    while True:
        try:
            data += stream.blocking_read(65536)
        except Exception:
            break
    return data


def respond(response_out: ResponseOutparam, status: int, text: bytes) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain; charset=utf-8")]))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    with outgoing.write() as stream:
        stream.blocking_write_and_flush(text)
    OutgoingBody.finish(outgoing, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = (request.path_with_query() or "/").split("?")[0]
        try:
            if isinstance(request.method(), Method_Put):
                with open(path, "wb") as file:
                    file.write(read_body(request))
                respond(response_out, 201, f"wrote {path}\n".encode())
            else:
                with open(path, "rb") as file:
                    respond(response_out, 200, file.read())
        except FileNotFoundError as err:
            respond(response_out, 404, f"{path}: {err}\n".encode())
        except OSError as err:
            print(f"files-py: {path}: {err}", flush=True)
            respond(response_out, 403, f"{path}: {err}\n".encode())
