//! s3wal makes a database's commits durable on S3.
//!
//! The application hands over commits in order; s3wal packs them into batch
//! objects `batches/{n:020}`, writes each with `If-None-Match: *` so only one
//! writer can ever own a position, keeps many PUTs in flight, and reports
//! commits durable strictly in order.
//!
//! The heart is a sans-IO state machine, [`Persister`]: it never touches a
//! socket, a file, a clock or a random number generator. Its whole contract
//! is [`protocol`]: the inputs it accepts and the actions it asks for.

#![warn(missing_docs)]

pub mod config;
pub mod driver;
pub mod format;
pub mod machine;
pub mod protocol;
pub mod reader;
pub mod store;
pub mod types;
pub mod valid_log;

pub use config::{Config, ConfigError, ConfigErrors, ValidConfig};
pub use machine::{Identity, Persister, StartPoint, Stats};
pub use protocol::{Action, Failure, Fault, HeadOutcome, Input, ListOutcome, PutOutcome, PutRequest, Refused};
pub use types::{BatchNumber, CommitRange, CommitSeq, Epoch, LeaderId, Position, RequestId, Time};

/// The README's examples, compiled as doctests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
