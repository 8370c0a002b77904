//! Who may connect and subscribe.
//!
//! - [`token`]: connection and subscription JWTs (HS256/384/512, RS256/384/512, ES256/384).
//! - [`authorizer`]: the subscribe decision for channels without a token — the seam where the
//!   API's subscribe proxy plugs in.
//! - [`proxy`]: Centrifugo's subscribe proxy, the HTTP call to the backend.

pub mod authorizer;
pub mod proxy;
pub mod token;

pub use authorizer::{NamespacePermissions, SubscribeAuthorizer, SubscribeContext, SubscribeGrant};
pub use proxy::SubscribeProxy;
pub use token::{ConnectClaims, SubscribeClaims, TokenError, TokenVerifier};
