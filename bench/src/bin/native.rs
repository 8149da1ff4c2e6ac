//! The ceiling of `make bench`: the same answers as the wasm fixtures (hello's
//! text on GET, the request body echoed on POST), from plain hyper with no
//! WebAssembly in between. Also the "native static server" the cold-start rows
//! run under runc, so it stops on SIGTERM (it is PID 1 there).
//!
//!   wasmhttp-bench-native [LISTEN_ADDR]      (default 0.0.0.0:8080)

use std::convert::Infallible;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// The hello fixture's answer, byte for byte, so both do the same work on the wire.
const HELLO: &str = "Hello from a WebAssembly component, served by wasmhttp!\n";

#[tokio::main]
async fn main() -> Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.0.0.0:8080".into());
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("native: serving HTTP on {}", listener.local_addr()?);
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = terminate.recv() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(respond))
                .await;
        });
    }
}

async fn respond(
    req: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, hyper::Error>>, Infallible> {
    let body = if req.method() == Method::POST {
        // streamed straight back, as the echo fixture does
        req.into_body().boxed()
    } else {
        Full::new(Bytes::from_static(HELLO.as_bytes()))
            .map_err(|never| match never {})
            .boxed()
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}
