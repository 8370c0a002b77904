//! Accounts and sign-in: register, login, rotating refresh tokens, logout, `/me`, and a user
//! looked up by username (`/users?username=`).
//!
//! | module | concept |
//! |---|---|
//! | [`accounts`] | the handlers |
//! | [`password`] | argon2id hashing on the blocking pool |
//! | [`access`] | access JWTs, and the [`access::User`] extractor every signed-in route uses |
//! | [`refresh`] | hashed rotating refresh tokens, a grace window, family revocation on reuse |

pub mod access;
pub mod accounts;
pub mod password;
pub mod refresh;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(accounts::register))
        .route("/auth/login", post(accounts::login))
        .route("/auth/refresh", post(accounts::refresh))
        .route("/auth/logout", post(accounts::logout))
        .route("/me", get(accounts::me))
        .route("/users", get(accounts::lookup))
}
