//! Bodies both ways: the request's, held to WASMHTTP_MAX_BODY whether or not
//! it declares a length, and the guest's response, cut when the guest fails
//! before finishing it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Why a request body could not be read whole.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// It is longer than WASMHTTP_MAX_BODY.
    TooLarge,
    /// The client went away or broke the framing.
    Broken(String),
}

/// A request body as a guest reads it (either wasi:http version): held to
/// WASMHTTP_MAX_BODY, its failures in wasi:http's terms.
pub fn for_guest<B>(body: B, max: u64) -> impl Body<Data = Bytes, Error = ErrorCode> + Send
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    limited(body, max).map_err(move |err| match err {
        BodyError::TooLarge => ErrorCode::HttpRequestBodySize(Some(max)),
        BodyError::Broken(_) => ErrorCode::HttpProtocolError,
    })
}

/// `body` with `guard` held until the body is dropped (sent, or given up).
pub fn holding<G: Send + Unpin + 'static>(body: HyperOutgoingBody, guard: G) -> HyperOutgoingBody {
    Holding {
        body,
        _guard: guard,
    }
    .boxed_unsync()
}

struct Holding<G> {
    body: HyperOutgoingBody,
    _guard: G,
}

impl<G: Unpin> Body for Holding<G> {
    type Data = Bytes;
    type Error = <HyperOutgoingBody as Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// `body`, ending in [`BodyError::TooLarge`] once more than `max` bytes came.
pub fn limited<B>(body: B, max: u64) -> impl Body<Data = Bytes, Error = BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX)).map_err(|err| {
        if err.is::<http_body_util::LengthLimitError>() {
            BodyError::TooLarge
        } else {
            BodyError::Broken(err.to_string())
        }
    })
}

/// How a guest's run ended, told to its response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The handler returned (or the program exited) without failing.
    Clean,
    /// It trapped, or was stopped at the deadline.
    Failed,
}

/// The sending half: the guest's task says how it ended.
pub type RunEndSender = oneshot::Sender<RunEnd>;

/// A channel for one run's [`RunEnd`].
pub fn run_end() -> (RunEndSender, oneshot::Receiver<RunEnd>) {
    oneshot::channel()
}

/// What a [`GuestBody`] does when the guest's body ends.
enum End {
    /// The guest may run on after its body (a handler that streams, then
    /// logs): the body is complete unless the guest has already said that it
    /// failed.
    UnlessFailed(oneshot::Receiver<RunEnd>),
    /// The body ends because the run did (a CGI program's stdout): wait for
    /// how it ended.
    WhenRunEnds(oneshot::Receiver<RunEnd>),
    /// Decided; nothing left to wait for.
    Settled,
}

/// A guest's response body, cut with an error when the guest fails (trap,
/// timeout) before finishing it. wasi:http ends a body whose writer vanished
/// as if it were complete, and the client would take the truncated body for
/// the whole one; an error makes hyper end the connection without the final
/// chunk (or short of the content length), which every client reports.
///
/// Dropped before its end (hyper drops a response whose client went away),
/// it stops the guest's task at once, as Spin does: a guest that sleeps
/// between writes would otherwise hold its slot and memory until its next
/// write failed.
pub struct GuestBody {
    body: HyperOutgoingBody,
    end: End,
    /// Stops the guest's run; `None` when nothing should (a HEAD request,
    /// whose body hyper drops unread).
    stop: Option<AbortHandle>,
    /// The body ended (or was cut): dropping it stops nothing.
    over: bool,
}

impl GuestBody {
    /// The body of a guest that may run on after it (a wasi:http handler).
    pub fn of_handler(
        body: HyperOutgoingBody,
        ended: oneshot::Receiver<RunEnd>,
        stop: Option<AbortHandle>,
    ) -> HyperOutgoingBody {
        GuestBody {
            body,
            end: End::UnlessFailed(ended),
            stop,
            over: false,
        }
        .boxed_unsync()
    }

    /// The body of a program whose output ends when it exits (CGI).
    pub fn of_program(
        body: HyperOutgoingBody,
        ended: oneshot::Receiver<RunEnd>,
        stop: Option<AbortHandle>,
    ) -> HyperOutgoingBody {
        GuestBody {
            body,
            end: End::WhenRunEnds(ended),
            stop,
            over: false,
        }
        .boxed_unsync()
    }

    /// At the end of the guest's body: whether the guest failed, or
    /// `Pending` while that is still to be heard.
    fn failed(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let failed = match &mut self.end {
            End::Settled => false,
            End::WhenRunEnds(ended) => match Pin::new(ended).poll(cx) {
                Poll::Pending => return Poll::Pending,
                // the run's task vanished without a word: it did not end well
                Poll::Ready(ended) => ended != Ok(RunEnd::Clean),
            },
            End::UnlessFailed(ended) => match ended.try_recv() {
                Ok(ended) => ended == RunEnd::Failed,
                Err(oneshot::error::TryRecvError::Closed) => true,
                Err(oneshot::error::TryRecvError::Empty) => false,
            },
        };
        self.end = End::Settled;
        Poll::Ready(failed)
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = <HyperOutgoingBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) => match self.failed(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(false) => Poll::Ready(None),
                Poll::Ready(true) => Poll::Ready(Some(Err(ErrorCode::InternalError(Some(
                    "the guest failed before finishing the body".into(),
                ))
                .into()))),
            },
            other => other,
        };
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.over = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.end, End::Settled) && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for GuestBody {
    fn drop(&mut self) {
        if !self.over
            && let Some(stop) = self.stop.take()
        {
            stop.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn body(text: &'static str) -> HyperOutgoingBody {
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    /// The body's frames, and whether it ended in an error.
    async fn read(mut body: HyperOutgoingBody) -> (Vec<u8>, bool) {
        let mut data = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => data.extend_from_slice(frame.data_ref().unwrap()),
                Err(_) => return (data, true),
            }
        }
        (data, false)
    }

    #[tokio::test]
    async fn a_handlers_body_is_cut_only_when_it_said_it_failed() {
        for (said, cut) in [(Some(RunEnd::Clean), false), (Some(RunEnd::Failed), true)] {
            let (tell, ended) = run_end();
            tell.send(said.unwrap()).unwrap();
            let (data, errored) = read(GuestBody::of_handler(body("hi"), ended, None)).await;
            assert_eq!((data.as_slice(), errored), (&b"hi"[..], cut), "{said:?}");
        }
        // still running after its body: the body is whole
        let (_still_running, ended) = run_end();
        assert_eq!(
            read(GuestBody::of_handler(body("hi"), ended, None)).await,
            (b"hi".to_vec(), false)
        );
        // its task gone without a word (aborted, panicked): cut
        let (gone, ended) = run_end();
        drop(gone);
        assert!(read(GuestBody::of_handler(body("hi"), ended, None)).await.1);
    }

    #[tokio::test]
    async fn a_programs_body_waits_for_how_the_program_ended() {
        let (tell, ended) = run_end();
        let reader = tokio::spawn(read(GuestBody::of_program(body("out"), ended, None)));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!reader.is_finished(), "the body ended before the program");
        tell.send(RunEnd::Failed).unwrap();
        assert_eq!(reader.await.unwrap(), (b"out".to_vec(), true));

        let (tell, ended) = run_end();
        tell.send(RunEnd::Clean).unwrap();
        assert_eq!(
            read(GuestBody::of_program(body("out"), ended, None)).await,
            (b"out".to_vec(), false)
        );
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_stops_the_guest_and_only_then() {
        let guest = || tokio::spawn(std::future::pending::<()>());
        // the client went away mid-body
        let running = guest();
        let (_tell, ended) = run_end();
        let mut unfinished = GuestBody::of_handler(body("hi"), ended, Some(running.abort_handle()));
        drop(unfinished.frame().await);
        drop(unfinished);
        assert!(running.await.unwrap_err().is_cancelled());

        // sent whole: the guest runs on (a handler may log after its body)
        let running = guest();
        let (_tell, ended) = run_end();
        let whole = GuestBody::of_handler(body("hi"), ended, Some(running.abort_handle()));
        assert_eq!(read(whole).await, (b"hi".to_vec(), false));
        tokio::task::yield_now().await;
        assert!(!running.is_finished());
        running.abort();
    }

    #[tokio::test]
    async fn request_bodies_stop_at_the_limit_declared_or_not() {
        let whole = limited(Full::new(Bytes::from_static(b"12345")), 5);
        assert_eq!(whole.collect().await.unwrap().to_bytes(), &b"12345"[..]);
        let over = limited(Full::new(Bytes::from_static(b"123456")), 5);
        assert_eq!(over.collect().await.unwrap_err(), BodyError::TooLarge);
    }
}
