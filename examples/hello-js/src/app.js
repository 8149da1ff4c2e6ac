// A wasi:http handler in plain JavaScript: componentize-js turns the standard
// fetch event into an export of wasi:http/incoming-handler.
//
// Two query parameters let you try the server's limits with a real guest:
// `?sleep=MS` answers after MS milliseconds (WASMHTTP_MAX_CONCURRENCY,
// WASMHTTP_REQUEST_TIMEOUT, draining on SIGTERM) and `?allocate=MIB` holds
// MIB MiB while answering (WASMHTTP_MAX_INSTANCE_MEMORY).
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  console.log(`hello-js: ${request.method} ${url.pathname}`);
  const allocate = url.searchParams.get("allocate");
  // filled, so the memory is really used while the request is served
  const held = allocate ? new Uint8Array(Number(allocate) * 1024 * 1024).fill(1) : null;
  const sleep = url.searchParams.get("sleep");
  if (sleep) {
    await new Promise((resolve) => setTimeout(resolve, Number(sleep)));
  }
  const body = `Hello from JavaScript, running as a WebAssembly component in wasmhttp! You asked for ${url.pathname}\n`;
  return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
}
