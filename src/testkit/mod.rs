//! The test kit: what tests, benches and fuzz targets need and no user of
//! the library should compile. Only with the `testkit` feature (off by
//! default; this crate's `[dev-dependencies]` turn it on for `cargo test`,
//! and `fuzz/Cargo.toml` for the fuzz targets).
//!
//! * [`sim`]: [`SimStorage`](sim::SimStorage), a simulated disk that can
//!   crash and lie.
//! * [`failpoint`]: the registry behind the engine's named failpoints
//!   (`Options::failpoints` exists only with this feature).
//! * [`fuzzing`]: the fuzz entry points (they write to the temp directory
//!   and panic on a broken invariant, by design).
//! * [`rng`]: the one seeded generator (SplitMix64).
//! * [`wal`] and [`store`]: the internal modules white-box tests reach into
//!   (frame and segment formats, checkpoints, the crash ledger). Not API:
//!   they change with the code.

pub mod failpoint;
pub mod fuzzing;
pub mod rng;
pub mod sim;

/// Internal modules of the journal, for white-box tests.
pub mod wal {
    pub use crate::wal::{frame, journal, log, payload, reader, recovery, segment, storage};
}

/// Internal modules of the session store, for white-box tests.
pub mod store {
    pub use crate::store::{
        checkpoint, compactor, jcs, ledger, model, names, publish, render, state,
    };
}
