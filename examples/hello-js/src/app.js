// A wasi:http handler in plain JavaScript: componentize-js turns the standard
// fetch event into an export of wasi:http/incoming-handler.
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  console.log(`hello-js: ${request.method} ${url.pathname}`);
  const body = `Hello from JavaScript, running as a WebAssembly component in wasmhttp! You asked for ${url.pathname}\n`;
  return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
}
