//! [`Respond`]: how the server calls the stack for one request.
//!
//! The stack is always ready — its layers wait inside their futures (a body read, an upstream
//! slot), never in `poll_ready` — so the request is called at once, without tower's `Oneshot`
//! state machine (the service clone, the request and the stack's future, moved between its
//! states). A service that were not ready is still driven by `oneshot`, boxed: never the
//! common path. The future holds the listener's in-flight gauge until the response head is
//! ready. hyper keeps one such future per HTTP/1 connection (allocated with the connection),
//! so its size is memory per connection: it holds the stack's future once, nothing beside it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::ServiceExt;

use crate::body::Body;
use crate::metrics::GaugeGuard;

type Waiting = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

pin_project! {
    /// The response future of one request: the stack's own future, or (if the stack was not
    /// ready) a boxed `oneshot`.
    pub(super) struct Respond<F> {
        #[pin]
        call: Call<F>,
        in_flight: Option<GaugeGuard>,
    }
}

pin_project! {
    #[project = CallProj]
    enum Call<F> {
        Called { #[pin] future: F },
        Waiting { future: Waiting },
    }
}

impl<F> Respond<F> {
    /// Calls `service` with `req`, holding `in_flight` until the response head is ready.
    pub(super) fn call<S>(mut service: S, req: Request<Body>, in_flight: Option<GaugeGuard>) -> Self
    where
        S: tower_service::Service<
                Request<Body>,
                Response = Response<Body>,
                Error = Infallible,
                Future = F,
            > + Send
            + 'static,
        F: Send + 'static,
    {
        let call = match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => Call::Called {
                future: service.call(req),
            },
            _ => Call::Waiting {
                future: Box::pin(service.oneshot(req)),
            },
        };
        Respond { call, in_flight }
    }
}

impl<F> Future for Respond<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.call.project() {
            CallProj::Called { future } => std::task::ready!(future.poll(cx)),
            CallProj::Waiting { future } => std::task::ready!(future.as_mut().poll(cx)),
        };
        this.in_flight.take();
        Poll::Ready(response)
    }
}
