//! hookd receives signed webhooks, keeps every accepted one durably on disk, and processes
//! them in the background.
//!
//! The modules follow the path of one webhook:
//! [`receive`] (HTTP) → [`verify`] (Standard Webhooks signature) → [`store`] (sled: delivery
//! log, dedup, durable queue) → [`process`] (workers, retries, dead letters) → [`admin`]
//! (the JSON API that shows it all); [`prune`] keeps the data directory within retention. [`server`] wires them together; [`config`] is read once.
#![warn(clippy::unwrap_used)]

pub mod admin;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod process;
pub mod prune;
pub mod ratelimit;
pub mod receive;
pub mod secret;
pub mod send;
pub mod server;
pub mod shutdown;
pub mod simulate;
pub mod store;
pub mod telemetry;
pub mod verify;
