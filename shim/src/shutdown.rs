//! The shim process's end, bounded: once containerd has shut the shim down
//! (no container left), the process exits within [`SHUTDOWN_BOUND`] even if
//! something it still waits for never finishes — a ttrpc handler stuck in a
//! call that does not return, a log pipe nobody reads. Left alive, such a shim
//! would hold its socket and memory with nobody to end it: containerd has
//! already forgotten it.

use std::time::Duration;

/// How long the shim process may take to exit after containerd's `shutdown`.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// Installs the bound: runwasi's shim calls it when containerd's `shutdown`
/// has ended the last container's life in this process.
pub fn bound_the_exit() {
    let _ = containerd_shimkit::sandbox::shim::AT_SHUTDOWN.set(|| exit_within(SHUTDOWN_BOUND));
}

/// Ends the process with exit code 0 if it is still alive `bound` from now,
/// saying why on stderr (which containerd logs).
pub fn exit_within(bound: Duration) {
    let spawned = std::thread::Builder::new()
        .name("shutdown bound".into())
        .spawn(move || {
            std::thread::sleep(bound);
            // said from a thread of its own: a stderr nobody reads must not
            // hold the exit it reports
            let _ = std::thread::Builder::new().spawn(move || {
                eprintln!(
                    "wasmhttp: the shim did not exit within {} ms of containerd's shutdown \
                     (something it waits for does not finish): exiting now",
                    bound.as_millis()
                );
            });
            std::thread::sleep(Duration::from_millis(100));
            std::process::exit(0);
        });
    if let Err(err) = spawned {
        eprintln!("wasmhttp: cannot bound the shim's exit: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    const CHILD: &str = "WASMHTTP_TEST_EXIT_WITHIN_CHILD";

    /// Run in a child process of its own (the test binary again): a process
    /// that would never end, ended at the bound with exit code 0.
    #[test]
    fn a_process_that_does_not_exit_is_ended_at_the_bound() {
        if std::env::var_os(CHILD).is_some() {
            exit_within(Duration::from_millis(300));
            // what a stuck exit looks like: a thread that never returns
            std::thread::sleep(Duration::from_secs(60));
            panic!("still alive 60 s after a 300 ms bound");
        }
        let started = Instant::now();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "shutdown::tests::a_process_that_does_not_exit_is_ended_at_the_bound",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("the child outlived its 300 ms bound by 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        let mut said = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut said).unwrap();
        assert_eq!(status.code(), Some(0), "{said}");
        assert!(
            took >= Duration::from_millis(300),
            "ended before its bound: {took:?}"
        );
        assert!(
            said.contains("the shim did not exit within 300 ms of containerd's shutdown"),
            "{said}"
        );
    }
}
