//! The one "run myself as a child process and kill it" harness.
//!
//! A test re-runs its own test binary with only itself selected
//! ([`rerun`]) and an environment variable that tells the copy it is the
//! child; the parent reads the child's stdout lines ([`lines`],
//! [`lines_marked`]) and kills it with SIGKILL ([`KillOnDrop::sigkill`]).
//! A child left over by a failing parent is killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;

/// This test binary, set to run only `test` (`--exact`, `--nocapture`),
/// with stdout piped, stderr inherited and stdin closed (ask for
/// `Stdio::piped()` on the returned command to talk to the child).
///
/// Without `--test-threads=1` libtest prints its `test <name> ... ` line
/// only when the test ends, so each line the child prints stands alone; a
/// caller that adds `--test-threads=1` must look for its lines with a mark
/// ([`lines_marked`]).
pub fn rerun(test: &str) -> Command {
    let exe = std::env::current_exe().expect("the path of this test binary");
    let mut command = Command::new(exe);
    command
        .args(["--exact", test, "--nocapture"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// A child process, killed (SIGKILL) and reaped when dropped, so a failing
/// parent leaves no orphan behind.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Starts `command` (see [`rerun`]).
    pub fn spawn(command: &mut Command) -> KillOnDrop {
        KillOnDrop(command.spawn().expect("start the child process"))
    }

    /// The child's stdout as lines (see [`lines`]); once only.
    pub fn lines(&mut self) -> mpsc::Receiver<String> {
        lines(
            self.0
                .stdout
                .take()
                .expect("stdout piped and not yet taken"),
        )
    }

    /// Kills the child with SIGKILL (no destructor, no flush) and waits for
    /// it; returns how it ended.
    pub fn sigkill(&mut self) -> ExitStatus {
        self.0.kill().expect("SIGKILL the child");
        self.0.wait().expect("reap the child")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every line of `stream`, read on a thread (so a silent child times out a
/// `recv_timeout` instead of hanging the test). The channel closes at the
/// end of the stream.
pub fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The lines of `stream` that hold `mark`, each as the text after it (the
/// child's protocol lines, apart from libtest's own output).
pub fn lines_marked(
    stream: impl Read + Send + 'static,
    mark: &'static str,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find(mark) {
                if tx.send(line[at + mark.len()..].to_string()).is_err() {
                    break;
                }
            }
        }
    });
    rx
}
