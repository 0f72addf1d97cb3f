//! placeholder (being written)
#![warn(missing_docs)]

mod config;
mod error;
mod inflight;
mod message;
mod stats;

pub use config::{Backpressure, SenderConfig};
pub use error::{CloseReport, ConfigError, ConnectError, SendError};
pub use message::{OutgoingMessage, Receipt};
pub use stats::SenderStats;
