//! What answers an admitted request: one [`App`] per way of running a guest.
//! [`proxy`] hands the request to a `wasi:http/incoming-handler` component,
//! [`cgi`] runs a WASI command once per request as a CGI program. Both run the
//! guest in a task of its own ([`GuestTask`]) that holds the request's slot
//! until the guest is done, and both hand their after-head failures to
//! [`watch_after_head`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, Uri};
use tokio::task::{AbortHandle, JoinHandle};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::engine::Code;
use crate::guest::GuestConfig;
use crate::http::ServerState;
use crate::http::admission::Call;
use crate::http::failure::{ClientGone, Failure, RequestLine};
use crate::http::request_id::RequestId;
use crate::settings::Settings;
use crate::world::Plan;

pub mod cgi;
pub mod proxy;
pub mod reuse;
pub mod service;

/// A response head (its body may stream from the guest for a while yet), or
/// why there is none.
pub type Head = Result<Response<HyperOutgoingBody>, Failure>;

/// What [`App::call`] returns.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Head> + Send + 'a>>;

pub trait App: Send + Sync + 'static {
    /// Serves one admitted request, up to its response head; the body may
    /// still be streaming from the guest after that.
    fn call(&self, req: Request<Incoming>, call: Call) -> Answer<'_>;
}

/// The app for `plan`; fails, with what is missing, when the program cannot
/// be linked that way.
pub fn for_plan(
    code: &Code,
    plan: Plan,
    guest: GuestConfig,
    settings: &Settings,
    state: Arc<ServerState>,
    local: SocketAddr,
) -> Result<Arc<dyn App>> {
    Ok(match (plan, code) {
        (Plan::Proxy, Code::Component(component)) => Arc::new(
            proxy::ProxyApp::new(component, guest, settings, state)
                .context("the component's imports cannot be satisfied by WASI 0.2 and wasi:http")?,
        ),
        (Plan::Service, Code::Component(component)) => Arc::new(
            service::ServiceApp::new(component, guest, settings, state).context(
                "the component's imports cannot be satisfied by WASI 0.3/0.2 and wasi:http",
            )?,
        ),
        (Plan::Cgi, code) => Arc::new(cgi::CgiApp::new(code, guest, settings, state, local)?),
        (plan, _) => bail!("{plan:?} is not served over HTTP by this program"),
    })
}

/// A guest's run in a task of its own: it goes on after the response head
/// (the body streams from it), and is stopped when dropped before it is
/// joined (the client went away, or the request was given up).
pub struct GuestTask<T>(Option<JoinHandle<Result<T>>>);

impl<T: Send + 'static> GuestTask<T> {
    pub fn spawn(run: impl Future<Output = Result<T>> + Send + 'static) -> Self {
        Self(Some(tokio::spawn(run)))
    }

    /// What stops the run; its [`join`](Self::join) then says [`ClientGone`].
    pub fn stopper(&self) -> AbortHandle {
        self.0.as_ref().expect("not joined yet").abort_handle()
    }

    /// How the run ended.
    pub async fn join(mut self) -> Result<T> {
        let task = self.0.take().expect("joined once");
        task.await.unwrap_or_else(|join| {
            if join.is_cancelled() {
                Err(anyhow!(ClientGone))
            } else {
                Err(anyhow!(join).context("the guest task panicked"))
            }
        })
    }
}

impl<T> Drop for GuestTask<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Once the head is sent, how the guest's run ends can only cut the body
/// (see [`crate::http::body::GuestBody`]) and be counted and said in the log;
/// `ended` hears a run that ended without failing.
pub fn watch_after_head<T: Send + 'static>(
    task: GuestTask<T>,
    state: Arc<ServerState>,
    (method, uri, id): (Method, Uri, Option<RequestId>),
    who: &'static str,
    ended: impl FnOnce(&RequestLine, T) + Send + 'static,
) {
    tokio::spawn(async move {
        let request = RequestLine {
            method: &method,
            uri: &uri,
            id: id.as_ref().map_or("-", RequestId::as_str),
        };
        match task.join().await {
            Ok(value) => ended(&request, value),
            Err(err) => Failure::of_guest(err).after_head(&request, who, &state.metrics),
        }
    });
}
