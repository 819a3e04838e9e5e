//! [`Guard`]: the one Tower layer/service pair behind every layer that decides synchronously.
//!
//! The client_ip, instance, network, allowed_ip and key_access layers differ only in what they
//! check. Each implements [`Check`]; `Guard` does the rest the same way for all of them (the
//! tower-http `ValidateRequest` pattern): the check may read and annotate the request; `Ok`
//! calls the inner service, `Err` answers with the rendered [`Rejection`] without calling it.
//! `type Error = S::Error`: a refusal is a response, never an error.

use std::task::{Context, Poll};

use http::{Request, Response};

use crate::body::Body;
use crate::layer::ResponseFuture;
use crate::reason::Rejection;

/// What a guarding layer checks. Implementations are cheap to clone (`Arc` inside).
pub trait Check {
    /// Inspects (and may annotate) the request; `Err` refuses it.
    fn check(&self, req: &mut Request<Body>) -> Result<(), Rejection>;
}

/// Checks run one after another, the first refusal wins: consecutive guarding layers as one
/// step (one call and one future level instead of one per layer). The gateway runs route,
/// client_ip, instance, network and allowed_ip this way; each stays usable as its own layer.
macro_rules! check_in_order {
    ($($check:ident),+) => {
        impl<$($check: Check),+> Check for ($($check,)+) {
            #[inline]
            fn check(&self, req: &mut Request<Body>) -> Result<(), Rejection> {
                #[allow(non_snake_case, reason = "the type parameters name the checks")]
                let ($($check,)+) = self;
                $($check.check(req)?;)+
                Ok(())
            }
        }
    };
}

check_in_order!(A, B);
check_in_order!(A, B, C);
check_in_order!(A, B, C, D);
check_in_order!(A, B, C, D, E);

/// Adds a [`Guard`] running `C` to a stack.
///
/// # Example
///
/// Every guarding layer is a `GuardLayer` over its check; `GuardLayer::with` builds one from
/// a check value.
///
/// ```
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use kmsgate::layer::guard::GuardLayer;
/// use kmsgate::layer::key_access::KeyAccessCheck;
///
/// let service = tower::ServiceBuilder::new()
///     .layer(GuardLayer::with(KeyAccessCheck))
///     .service(kms);
/// ```
#[derive(Clone, Debug, Default)]
pub struct GuardLayer<C> {
    check: C,
}

impl<C> GuardLayer<C> {
    /// A layer running `check` on every request.
    pub fn with(check: C) -> Self {
        GuardLayer { check }
    }

    /// The check.
    pub fn check(&self) -> &C {
        &self.check
    }
}

impl<C: Clone, S> tower_layer::Layer<S> for GuardLayer<C> {
    type Service = Guard<C, S>;

    fn layer(&self, inner: S) -> Guard<C, S> {
        Guard {
            check: self.check.clone(),
            inner,
        }
    }
}

/// Runs `C` before the inner service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Guard<C, S> {
    check: C,
    inner: S,
}

impl<C, S> tower_service::Service<Request<Body>> for Guard<C, S>
where
    C: Check,
    S: tower_service::Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        match self.check.check(&mut req) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(rejection) => ResponseFuture::refused(rejection),
        }
    }
}
