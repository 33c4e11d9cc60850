//! How a command fails: the message printed as `error: ...`, or a closed
//! stdout that ends the command quietly.

use std::fmt;
use std::io;

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// Print `error: <message>` and exit 1.
    Message(String),
    /// Stdout was closed by the reader (`dump | head`): stop quietly.
    BrokenPipe,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Message(m) => f.write_str(m),
            Failure::BrokenPipe => f.write_str("broken pipe"),
        }
    }
}

impl From<tracejournal::Error> for Failure {
    fn from(e: tracejournal::Error) -> Failure {
        Failure::Message(e.to_string())
    }
}

impl From<tracejournal::JournalError> for Failure {
    fn from(e: tracejournal::JournalError) -> Failure {
        Failure::Message(e.to_string())
    }
}

impl From<io::Error> for Failure {
    /// Only for errors writing to stdout.
    fn from(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Message(format!("cannot write output: {e}"))
        }
    }
}

/// What a command returns.
pub(crate) type CliResult<T = ()> = Result<T, Failure>;

/// A failure with `message`.
pub(crate) fn fail<T>(message: impl Into<String>) -> CliResult<T> {
    Err(Failure::Message(message.into()))
}
