//! Section `recovery`: see main.rs. (To be written.)

use crate::report::{Config, Progress, Section};

/// Runs the section.
pub fn run(_config: &Config, progress: &Progress) -> Vec<Section> {
    progress.step("not written yet");
    Vec::new()
}
