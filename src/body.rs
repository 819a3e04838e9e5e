//! [`Body`]: the one body type that flows through the gateway, in both directions.
//!
//! A request arrives as hyper's `Incoming` and is streamed upstream unchanged, unless a layer
//! had to buffer it (then it is the original bytes, [`Body::full`]). A response is the
//! upstream's stream, holding its upstream connection permit until it is dropped and possibly
//! watched by a [`BodyTap`] (the upstream's error-envelope inspector counts the reason codes of
//! the backend's own error envelopes), or a body rendered by the gateway. One concrete enum
//! keeps every layer's types short and avoids boxing on the common paths.
//!
//! A leaf: it knows hyper and tokio, nothing of the gateway.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

/// Sees the data of a streamed body as it passes, without changing it (the upstream's error
/// inspector is one).
pub trait BodyTap: std::fmt::Debug + Send + Sync {
    /// A data frame went by.
    fn observe(&mut self, data: &Bytes);
    /// The body ended. May be called more than once; only the first call counts.
    fn finish(&mut self);
}

/// A request or response body inside the gateway.
#[derive(Debug, Default)]
pub struct Body {
    kind: Kind,
}

#[derive(Debug, Default)]
enum Kind {
    #[default]
    Empty,
    Full(Option<Bytes>),
    Incoming(Incoming),
    /// An upstream response: its connection permit is given back when the body is dropped.
    Upstream {
        incoming: Incoming,
        inspector: Option<Box<dyn BodyTap>>,
        _permit: Option<OwnedSemaphorePermit>,
    },
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Body { kind: Kind::Empty }
    }

    /// A body of known bytes (a rendered response, or a request body a layer buffered).
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Body::empty();
        }
        Body {
            kind: Kind::Full(Some(bytes)),
        }
    }

    /// A streamed body from a connection.
    pub fn incoming(incoming: Incoming) -> Self {
        Body {
            kind: Kind::Incoming(incoming),
        }
    }

    /// The bytes of a body that is already in memory (none for a stream).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Empty => Some(&[]),
            Kind::Full(bytes) => bytes.as_deref(),
            Kind::Incoming(_) | Kind::Upstream { .. } => None,
        }
    }

    /// A streamed upstream response body that keeps `permit` (the upstream connection it is
    /// read from stays in use) until dropped; its bytes are also shown to `inspector`.
    pub fn upstream(
        incoming: Incoming,
        inspector: Option<Box<dyn BodyTap>>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        Body {
            kind: Kind::Upstream {
                incoming,
                inspector,
                _permit: permit,
            },
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body::full(bytes)
    }
}

impl From<Incoming> for Body {
    fn from(incoming: Incoming) -> Self {
        Body::incoming(incoming)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Incoming(incoming)
            | Kind::Upstream {
                incoming,
                inspector: None,
                ..
            } => Pin::new(incoming).poll_frame(cx),
            Kind::Upstream {
                incoming,
                inspector: Some(inspector),
                ..
            } => {
                let polled = Pin::new(&mut *incoming).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            inspector.observe(data);
                        }
                        // With a known length the server may never poll for the end.
                        if incoming.is_end_stream() {
                            inspector.finish();
                        }
                    }
                    Poll::Ready(None) => inspector.finish(),
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Incoming(incoming) | Kind::Upstream { incoming, .. } => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Incoming(incoming) | Kind::Upstream { incoming, .. } => incoming.size_hint(),
        }
    }
}

pin_project_lite::pin_project! {
    /// Reads a body to its end as one [`Bytes`] (trailers are dropped). A body of one data
    /// frame — a request hyper read at once — is returned as that frame's bytes, without a
    /// copy or an allocation; only a body of several frames is appended into one buffer.
    /// (http-body-util's `Collect` keeps every frame in a queue it allocates first.)
    #[derive(Debug)]
    pub struct ToBytes<B> {
        #[pin]
        body: B,
        first: Option<Bytes>,
        more: Option<bytes::BytesMut>,
    }
}

/// The most [`ToBytes`] reserves ahead for what a body says is still to come.
const PREALLOCATE_AT_MOST: usize = 1 << 20;

impl<B> ToBytes<B> {
    /// A future reading `body` to its end.
    pub fn new(body: B) -> Self {
        ToBytes {
            body,
            first: None,
            more: None,
        }
    }
}

impl<B: http_body::Body<Data = Bytes>> std::future::Future for ToBytes<B> {
    type Output = Result<Bytes, B::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let Some(frame) = std::task::ready!(this.body.as_mut().poll_frame(cx)?) else {
                let bytes = match (this.more.take(), this.first.take()) {
                    (Some(more), _) => more.freeze(),
                    (None, first) => first.unwrap_or_default(),
                };
                return Poll::Ready(Ok(bytes));
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if let Some(more) = this.more.as_mut() {
                more.extend_from_slice(&data);
            } else if let Some(first) = this.first.take() {
                // What is left of the declared length, when there is one (a `Limited` body's
                // hint is capped at its limit), so the buffer is allocated once, not doubled;
                // never more than `PREALLOCATE_AT_MOST` on a body's word.
                let rest = usize::try_from(this.body.size_hint().lower())
                    .unwrap_or(usize::MAX)
                    .min(PREALLOCATE_AT_MOST);
                let mut more = bytes::BytesMut::with_capacity(first.len() + data.len() + rest);
                more.extend_from_slice(&first);
                more.extend_from_slice(&data);
                *this.more = Some(more);
            } else {
                *this.first = Some(data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of the given frames, one per poll (data, or trailers for `None`).
    struct Frames(std::collections::VecDeque<Option<&'static [u8]>>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|part| {
                Ok(match part {
                    Some(data) => Frame::data(Bytes::from_static(data)),
                    None => Frame::trailers(http::HeaderMap::new()),
                })
            }))
        }
    }

    fn frames(parts: Vec<Option<&'static [u8]>>) -> Frames {
        Frames(parts.into())
    }

    #[tokio::test]
    async fn to_bytes_keeps_one_frame_and_joins_several() {
        let one = Bytes::from_static(b"{\"plaintext\":\"AA==\"}");
        let read = ToBytes::new(Body::full(one.clone())).await.unwrap();
        assert_eq!(read, one);
        assert_eq!(
            read.as_ptr(),
            one.as_ptr(),
            "one frame: the same bytes, not a copy"
        );

        let joined = ToBytes::new(frames(vec![
            Some(b"ab"),
            Some(b""),
            Some(b"cd"),
            None,
            Some(b"e"),
        ]))
        .await
        .unwrap();
        assert_eq!(&joined[..], b"abcde");
        assert!(ToBytes::new(frames(vec![])).await.unwrap().is_empty());
        assert!(ToBytes::new(frames(vec![None])).await.unwrap().is_empty());
    }
}
