//! `chorus-runtime`: what every Chorus service runs on, whatever it does. It depends on no
//! service crate; the hub, the API, the sink and the transcriber all use it.
//!
//! | module | concept |
//! |---|---|
//! | [`process`] | logging, and the shutdown token that SIGTERM or SIGINT cancels |
//! | [`config`] | config layering (defaults, TOML file, `CHORUS_<SERVICE>__*` variables), `Log`, `Http` |
//! | [`server`] | `/health` and `/metrics` over a [`server::Probe`] |
//! | [`metrics`] | registering Prometheus metrics and rendering a registry |
//! | [`backoff`] | exponential backoff with full jitter, stopped by a token |
//! | [`kafka`] | the librdkafka client config every service starts from, group liveness, and the one dead-letter writer |

pub mod backoff;
pub mod config;
pub mod kafka;
pub mod metrics;
pub mod process;
pub mod server;
