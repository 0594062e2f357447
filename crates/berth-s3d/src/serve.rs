//! One HTTP/1.1 listener with graceful shutdown: when `shutdown` fires it stops accepting,
//! lets requests in flight finish (idle keep-alive connections close at once) and returns
//! when they have, or after `drain` at the latest.

use std::error::Error as StdError;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A client must send its request headers within this time; keeps slow or stuck clients from
/// holding connections forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn serve<S, B>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    shutdown: CancellationToken,
    drain: Duration,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(listener = name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Without it every small response on a reused connection waits ~40 ms for the
        // client's delayed ACK (measured with s3s-fs' own binary, which never sets it).
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(listener = name, %peer, "TCP_NODELAY: {e}");
        }
        let conn = http.serve_connection(TokioIo::new(socket), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(listener = name, %peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(listener = name, "all requests finished"),
        () = tokio::time::sleep(drain) => {
            tracing::warn!(listener = name, "requests still running after {drain:?}; leaving them");
        }
    }
}
