//! WASMHTTP_MODE=cgi: a WASI command (a preview 1 module or a `wasi:cli/run`
//! component) runs once per request as a CGI/1.1 program (RFC 3875), as
//! Apache's mod_wasm does with `WasmEnableCGI On`.
//!
//! The request becomes the program's environment (the meta-variables, then
//! the container's env) and its stdin (the body, read whole first: CGI
//! promises the program a CONTENT_LENGTH). The program's stdout is read as a
//! CGI response, header lines up to a blank line, and the rest is streamed to
//! the client as it is written; stderr goes to the container log. The
//! protocol itself is [`crate::program::cgi`]'s.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use tokio::io::{AsyncRead, DuplexStream, ReadBuf};
use wasmtime_wasi::cli::AsyncStdoutStream;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

use super::{Answer, App, GuestTask, Head, watch_after_head};
use crate::engine::Code;
use crate::guest::{self, GuestConfig};
use crate::http::ServerState;
use crate::http::admission::Call;
use crate::http::body::{self, BodyError, GuestBody, RunEnd};
use crate::http::failure::Failure;
use crate::http::request_id::RequestId;
use crate::program::Command;
use crate::program::cgi::{self, HeadError, MAX_HEAD_BYTES};
use crate::settings::Settings;

/// What the program may write ahead of the client before its writes wait.
const STDOUT_BUFFER: usize = 64 * 1024;

pub struct CgiApp {
    program: Arc<Program>,
    /// The listener's address (SERVER_PORT).
    local: SocketAddr,
    max_body: u64,
    state: Arc<ServerState>,
}

/// What every run shares, and its task holds.
struct Program {
    command: Command,
    guest: GuestConfig,
}

impl CgiApp {
    pub fn new(
        code: &Code,
        guest: GuestConfig,
        settings: &Settings,
        state: Arc<ServerState>,
        local: SocketAddr,
    ) -> Result<Self> {
        Ok(Self {
            program: Arc::new(Program {
                command: Command::new(code)?,
                guest,
            }),
            local,
            max_body: settings.max_body,
            state,
        })
    }

    /// Runs the program for one request. Answers as soon as the program's
    /// header lines are complete; its body follows as it is written, and is
    /// cut if the program then traps (a truncated body must not look whole).
    async fn serve(&self, req: Request<Incoming>, call: Call) -> Head {
        let (parts, body) = req.into_parts();
        let body = call
            .deadline
            .bound(body::limited(body, self.max_body).collect())
            .await
            .map_err(|_| Failure::TimedOut)?
            .map_err(|err| match err {
                BodyError::TooLarge => Failure::BodyTooLarge,
                BodyError::Broken(why) => {
                    Failure::Failed(anyhow!("reading the request body: {why}"))
                }
            })?
            .to_bytes();
        let env =
            cgi::meta_variables(&parts, body.len(), call.peer, self.local).map_err(|reason| {
                Failure::BadRequest {
                    reason,
                    close: false,
                }
            })?;
        let env = cgi::with_container_env(env, &self.program.guest.env);

        // a duplex pipe, not a simplex one: dropping the writer (the program's
        // store) must end the reader, and only a duplex end does that
        let (mut stdout, writer) = tokio::io::duplex(STDOUT_BUFFER);
        let mut wasi = guest::wasi_builder(&self.program.guest, &env).map_err(Failure::Failed)?;
        wasi.stdin(MemoryInputPipe::new(body))
            .stdout(AsyncStdoutStream::new(STDOUT_BUFFER, writer));
        let (tell_end, ended) = body::run_end();
        let (program, state) = (self.program.clone(), self.state.clone());
        let Call { slot, deadline, .. } = call;
        let task = GuestTask::spawn(async move {
            let metrics = &state.metrics;
            let ran = program
                .command
                .run(wasi, &program.guest, Some(deadline), |took| {
                    metrics.instantiated(took)
                })
                .await;
            // The store, and with it the program's stdout, is gone by now.
            // The slot goes before the end is told: the response ends only
            // then, and a client that sends its next request at once must
            // find the slot free.
            drop(slot);
            let end = if ran.is_ok() {
                RunEnd::Clean
            } else {
                RunEnd::Failed
            };
            let _ = tell_end.send(end);
            ran
        });

        let (head, rest) = match cgi::read_head(&mut stdout).await {
            Ok(found) => found,
            Err(HeadError::TooLong) => {
                return Err(Failure::BadGateway(format!(
                    "the CGI program wrote more than {} KiB without the blank line that ends its \
                     header lines",
                    MAX_HEAD_BYTES >> 10
                )));
            }
            // stdout ended before the blank line: the program has ended
            Err(HeadError::Ended(partial)) => {
                return Err(match task.join().await {
                    Err(err) => Failure::of_guest(err),
                    Ok(code) if partial.is_empty() => Failure::BadGateway(format!(
                        "the CGI program exited with status {code} without writing a response"
                    )),
                    Ok(code) => Failure::BadGateway(format!(
                        "the CGI program exited with status {code} before the blank line that ends \
                         its header lines (it wrote {:?})",
                        cgi::preview(&partial)
                    )),
                });
            }
        };
        let (status, headers) = cgi::parse_head(&head).map_err(|reason| {
            Failure::BadGateway(format!(
                "the CGI program wrote a malformed response: {reason}"
            ))
        })?;
        // The head is sent; how the program ends can only cut the body (a
        // trap, the timeout) or be noted (a non-zero exit after a response).
        let id = parts.extensions.get::<RequestId>().cloned();
        // hyper drops a HEAD response's body unread
        let stop = (parts.method != hyper::Method::HEAD).then(|| task.stopper());
        let line = (parts.method, parts.uri, id);
        watch_after_head(
            task,
            self.state.clone(),
            line,
            "the CGI program",
            |request, code| {
                if code != 0 {
                    crate::say!(
                        "{}",
                        request.said(format_args!(
                            "the CGI program exited with status {code} after its response"
                        ))
                    );
                }
            },
        );
        let body = StdoutBody {
            first: (!rest.is_empty()).then(|| Bytes::from(rest)),
            stdout: Some(stdout),
            scratch: vec![0u8; STDOUT_BUFFER].into_boxed_slice(),
        }
        .map_err(wasmtime_wasi_http::Error::from)
        .boxed_unsync();
        let mut response = Response::new(GuestBody::of_program(body, ended, stop));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

impl App for CgiApp {
    fn call(&self, req: Request<Incoming>, call: Call) -> Answer<'_> {
        Box::pin(self.serve(req, call))
    }
}

/// The program's stdout after its header lines, as a response body.
struct StdoutBody {
    first: Option<Bytes>,
    stdout: Option<DuplexStream>,
    /// Read into, once per response: a poll that finds the pipe empty must
    /// not cost an allocation.
    scratch: Box<[u8]>,
}

impl Body for StdoutBody {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let this = &mut *self;
        let Some(stdout) = this.stdout.as_mut() else {
            return Poll::Ready(None);
        };
        let mut buf = ReadBuf::new(&mut this.scratch);
        match ready!(Pin::new(stdout).poll_read(cx, &mut buf)) {
            Ok(()) if buf.filled().is_empty() => {
                this.stdout = None;
                Poll::Ready(None)
            }
            Ok(()) => Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(buf.filled()))))),
            Err(err) => Poll::Ready(Some(Err(ErrorCode::InternalError(Some(err.to_string()))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.stdout.is_none()
    }
}
