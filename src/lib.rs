//! hookd receives signed webhooks, keeps every accepted one durably on disk, and processes
//! them in the background.
//!
//! The modules follow the path of one webhook:
//! [`receive`] (HTTP) → [`verify`] (Standard Webhooks signature) → [`store`] (sled: delivery
//! log, dedup, durable queue, Fasten export index) → [`process`] (workers, retries, dead
//! letters; `log`, `forward` and Fasten processors) → [`prune`] (retention) → [`admin`] (the
//! API and web UI that show it all; [`telemetry`] for metrics, [`alerts`] for telling the
//! operator unasked). [`server`] wires them together; [`config`] is read once; [`cli`]
//! holds the commands (serve, send, backup, ...); [`simulate`] stands in for Fasten.
#![warn(clippy::unwrap_used)]

pub mod admin;
pub mod alerts;
pub mod cli;
pub mod clock;
pub mod config;
pub mod nice;
pub mod process;
pub mod prune;
pub mod ratelimit;
pub mod receive;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod simulate;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod verify;
