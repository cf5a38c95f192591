//! Connection limits, the same on both ports: at most `max` connections open at once (one
//! over the cap is closed as soon as it is accepted, before anything is read from it), and
//! a connection whose peer sends nothing for too long is closed: the first bytes (the TLS
//! handshake or the HTTP/2 preface) must arrive within the handshake timeout, and later
//! ones within the idle timeout of the previous ones. On the gRPC port the server pings
//! (HTTP/2 PING) well within the idle timeout, so a live peer's acknowledgements keep an
//! idle but healthy connection open, while a silent or half-open one is closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Admits connections up to a cap and wraps them in [`Guarded`].
#[derive(Debug, Clone)]
pub struct Gate {
    open: Arc<Semaphore>,
    handshake: Duration,
    idle: Duration,
}

impl Gate {
    /// At most `max` connections (at least one); first bytes within `handshake`, then no
    /// silence longer than `idle`.
    pub fn new(max: usize, handshake: Duration, idle: Duration) -> Self {
        Gate {
            open: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
            handshake,
            idle,
        }
    }

    /// `io` guarded, or `None` (and `io` dropped, which closes it) when the cap is reached.
    pub fn admit<IO>(&self, io: IO) -> Option<Guarded<IO>> {
        let Ok(permit) = self.open.clone().try_acquire_owned() else {
            crate::metrics::metrics().connections_refused.inc();
            tracing::debug!("connection refused: the connection limit is reached");
            return None;
        };
        let opened = Instant::now();
        Some(Guarded {
            inner: io,
            _permit: permit,
            idle: self.idle,
            due: opened + self.handshake,
            heard: false,
            last: opened,
            timer: Box::pin(tokio::time::sleep_until(opened + self.handshake)),
        })
    }
}

/// A connection counted against its [`Gate`] until dropped, and closed (reads fail with
/// `TimedOut`) once its peer has been silent too long.
#[derive(Debug)]
pub struct Guarded<IO> {
    inner: IO,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    /// When the connection is closed unless the peer sends something.
    due: Instant,
    /// Whether the peer has sent anything yet.
    heard: bool,
    /// When it last did.
    last: Instant,
    /// Fires at `due` (re-armed lazily: a read only records the time).
    timer: Pin<Box<Sleep>>,
}

impl<IO> Guarded<IO> {
    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.heard = true;
                    this.last = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => loop {
                if this.heard {
                    this.due = this.last + this.idle;
                }
                if this.timer.deadline() != this.due {
                    this.timer.as_mut().reset(this.due);
                }
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if Instant::now() >= this.due {
                    tracing::debug!(
                        heard = this.heard,
                        "connection closed: the peer sent nothing in time"
                    );
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer sent nothing in time",
                    )));
                }
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Guarded<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
