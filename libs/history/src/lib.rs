//! `chorus-history`: the DynamoDB `messages` table, described once. The sink writes it
//! through [`model`] and [`store`]; the API reads it through [`query`]; the key and attribute
//! names live in [`model`] alone.
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | the `[dynamodb]` section: endpoint, region, table, credentials, timeouts |
//! | [`model`] | what an event becomes in the table (keys, attributes, the 400 KB check) |
//! | [`store`] | the table through aws-sdk-dynamodb, one attempt per call |
//! | [`query`] | a chat's messages newest first before a cursor, as JSON |
//!
//! See `docs/data-model.md` for the access patterns.

pub mod config;
pub mod model;
pub mod query;
pub mod store;

pub use config::DynamoDb;
pub use store::{Failure, Store};
