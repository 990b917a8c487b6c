//! [`ArgsError`]: flags or files the user has to fix before running again
//! (the binary exits with code 2), and what else can fail while turning
//! arguments into a configuration.

use std::path::PathBuf;

use coupon_stream_core::config::ConfigError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ArgsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open input {}: {error}", path.display())]
    OpenInput {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot create output {}: {error}", path.display())]
    CreateOutput {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("finding this program's path, to run the processor under test: {0}")]
    CurrentExe(std::io::Error),
}

/// Whether `error` is the user's to fix (exit code 2): a bad configuration
/// value, or an [`ArgsError`] of that kind.
pub fn is_usage(error: &(dyn std::error::Error + 'static)) -> bool {
    error.is::<ConfigError>()
        || error
            .downcast_ref::<ArgsError>()
            .is_some_and(ArgsError::is_usage)
}

impl ArgsError {
    /// Whether the user can fix it by changing flags or files (exit code 2)
    /// rather than a failure of the machine (exit code 1).
    pub fn is_usage(&self) -> bool {
        !matches!(self, ArgsError::CurrentExe(_))
    }
}
