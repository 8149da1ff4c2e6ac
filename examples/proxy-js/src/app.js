// Outbound HTTP from a wasi:http handler: fetches the URL given in `?url=`
// and relays what came back. wasmhttp denies outbound requests unless the
// host is in WASMHTTP_ALLOWED_OUTBOUND_HOSTS; a denied fetch fails at once
// (wasi:http's HTTP-request-denied) and this handler answers 502.
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const target = new URL(request.url).searchParams.get("url");
  if (!target) {
    return new Response("ask for /?url=http://host/path\n", { status: 400 });
  }
  try {
    const upstream = await fetch(target);
    const body = await upstream.text();
    return new Response(`upstream answered ${upstream.status}: ${body}`, {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  } catch (err) {
    console.error(`proxy-js: fetching ${target} failed: ${err}`);
    return new Response(`upstream request failed: ${err}\n`, { status: 502 });
  }
}
