//! The gateway's Tower layers, one file per layer, and the future they share.
//!
//! Every policy layer follows one template (tower-http's): `FooLayer` (cheap to clone, `Arc`
//! inside) → `Foo<S>` → [`ResponseFuture`]. A refusal is a response, never an error: `type
//! Error = S::Error`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;

use crate::body::Body;
use crate::context;
use crate::reason::{Reason, Rejection};

pub mod allowed_ip;
pub mod bearer;
pub mod body;
pub mod client_ip;
pub mod guard;
pub mod instance;
pub mod key_access;
pub mod network;
pub mod observe;
pub mod policy_api;
pub mod route;
pub mod service_rules;
pub mod shadow;

/// A refusal with `reason` that names the request's operation in its `errorMsg`.
pub fn refusal<B>(reason: Reason, req: &Request<B>) -> Rejection {
    Rejection::new(reason).operation(context::route(req).operation())
}

pin_project! {
    /// The response future of a layer that either refuses at once or calls the inner service.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<Body>> },
    }
}

impl<F> ResponseFuture<F> {
    /// Waits for the inner service.
    pub fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    /// Answers with this refusal without calling the inner service.
    pub fn refused(rejection: Rejection) -> Self {
        Self::response(rejection.into_response())
    }

    /// Answers with this response without calling the inner service.
    pub fn response(response: Response<Body>) -> Self {
        ResponseFuture {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Ready(Ok(crate::reason::Rejection::new(
                    crate::reason::Reason::GatewayInternal,
                )
                .into_response())),
            },
        }
    }
}
