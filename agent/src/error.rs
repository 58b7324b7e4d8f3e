//! Errors that reach the user, with the exit codes of CONTRACT §1.

use std::fmt;

/// Exit codes every subcommand uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    NotFound = 1,
    Usage = 2,
    Store = 3,
}

/// A failure that ends a command: one line for stderr and the exit code that goes with it.
#[derive(Debug)]
pub struct CliError {
    pub code: ExitCode,
    pub message: String,
}

impl CliError {
    pub fn not_found(message: impl Into<String>) -> Self {
        CliError {
            code: ExitCode::NotFound,
            message: message.into(),
        }
    }
    /// The archive differs from what its manifests promise (`verify`): exit 1, like "nothing
    /// found", since both mean "what you asked for is not there as it should be".
    pub fn mismatch(message: impl Into<String>) -> Self {
        CliError {
            code: ExitCode::NotFound,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: ExitCode::Usage,
            message: message.into(),
        }
    }
    pub fn store(message: impl Into<String>) -> Self {
        CliError {
            code: ExitCode::Store,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        match e.kind {
            crate::store::ErrorKind::Config => CliError::usage(e.message),
            _ => CliError::store(e.message),
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;
