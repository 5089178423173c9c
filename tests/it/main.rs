//! Integration tests: real SQLite files, real local storage, real HTTP on random ports.

mod architecture;
mod auth;
mod backends;
mod bounds;
mod budget;
mod cli;
#[cfg(feature = "client")]
mod client;
mod common;
mod corpus;
mod cors;
mod demo;
mod embedding;
mod fairness;
mod faults;
mod files;
mod fuzzed;
mod idempotency;
mod media;
mod memory;
mod moderation;
mod openapi;
mod ops;
mod originals;
mod pipeline;
mod processes;
mod push;
mod queue;
mod scale_out;
mod shrink;
mod status;
#[cfg(feature = "otel")]
mod telemetry;
mod tokens;
mod upload;
mod webhooks;
mod worker;
