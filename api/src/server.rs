//! Serving: the router on a listener the caller bound, the outbox relay, the state-event
//! consumer and the housekeeping beside it, all stopped by one cancellation token.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::app;
use crate::state::AppState;

pub async fn run(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let tasks = TaskTracker::new();
    tasks.spawn(crate::outbox::run_relay(state.clone(), shutdown.clone()));
    tasks.spawn(crate::housekeeping::run(state.clone(), shutdown.clone()));
    tasks.spawn(crate::outbox::reactor::run(
        state.clone(),
        state.reactor.clone(),
        shutdown.clone(),
    ));
    tasks.close();
    let stop = shutdown.clone();
    // With the peer's address, for the per-address rate limits.
    let app = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    shutdown.cancel();
    tasks.wait().await;
    served
}
