//! A sign-in session that ends (logout, or its refresh family revoked because a rotated token
//! came back) ends on the hub too, before the request answers.
//!
//! Hub tokens carry `iat`; the hub is asked to refuse every hub token of the user issued until
//! now (`invalidate_user_tokens`, as expired) and to close the user's connections with a code
//! that reconnects. The user's other sessions, still live, fetch new hub tokens and are back at
//! once; the ended one gets none (`POST /hub/connection-token` checks the session), and its
//! cookie no longer connects or refreshes (`hub::session`). A hub that cannot be reached fails
//! the request with 503: the session is revoked in PostgreSQL, and asking again retries.

use crate::auth::access;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn end_hub_access(s: &AppState, user: i64) -> Result<(), ApiError> {
    // `iat` counts whole seconds: the line is the next second, so a hub token issued in this
    // one, before the session ended, is refused too. A session still live gets its next token
    // accepted from that second on (its SDK asks again on "token expired").
    let line = access::now() + 1;
    // A hub token issued now is still valid until its exp; past that, the line can go.
    let expire_at = line + s.config.hub.connection_token_ttl_secs + 60;
    s.hub
        .end_user_tokens(&user.to_string(), line, expire_at)
        .await
        .map_err(|e| {
            tracing::warn!(user, error = %format!("{e:#}"), "session ended but the hub was not told");
            ApiError::Unavailable(
                "signed out, but the hub did not confirm that this session's connections were closed: ask again".into(),
            )
        })
}
