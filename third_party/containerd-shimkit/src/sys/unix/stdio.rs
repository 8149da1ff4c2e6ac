use std::fs::{File, OpenOptions};
use std::io::{Error, ErrorKind, Read, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn open(path: impl AsRef<Path>) -> Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

// wasmhttp patch: containerd's log URIs.

/// Where containerd asks a container's stdout and stderr to go: a FIFO it
/// reads (`ctr`, CRI), or a log URI (`ctr run --log-uri`, nerdctl's
/// loggers), which containerd's runc shim handles and runwasi did not.
pub enum Output {
    Fifo,
    /// `file:///path`: both streams appended to one file.
    File(std::path::PathBuf),
    /// `binary:///path?name=value`: a logging binary that reads the streams.
    Binary { path: std::path::PathBuf, args: Vec<String> },
}

impl Output {
    pub fn of(stdout: &str) -> Result<Self> {
        let Some((scheme, _)) = stdout.split_once("://") else {
            return Ok(Output::Fifo);
        };
        let uri = url::Url::parse(stdout)
            .map_err(|err| Error::new(ErrorKind::InvalidInput, format!("log URI {stdout:?}: {err}")))?;
        let path = std::path::PathBuf::from(uri.path());
        match scheme {
            "file" => Ok(Output::File(path)),
            "binary" => Ok(Output::Binary {
                path,
                args: uri
                    .query_pairs()
                    .flat_map(|(name, value)| {
                        std::iter::once(name.into_owned())
                            .chain((!value.is_empty()).then(|| value.into_owned()))
                    })
                    .collect(),
            }),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("log URI {stdout:?}: the scheme {other:?} is not supported (file, binary)"),
            )),
        }
    }
}

/// How long a logging binary may take to say it is ready (by closing or
/// writing to its fd 5); containerd's runc shim waits without a bound.
const LOGGER_READY: Duration = Duration::from_secs(10);

/// Opens the log file of `file://`, or starts the logging binary of
/// `binary://` as containerd's runc shim does: the container's stdout and
/// stderr are pipes it reads as its fds 3 and 4, fd 5 tells when it is
/// ready, and its environment is CONTAINER_ID and CONTAINER_NAMESPACE.
/// Returns the container's stdout and stderr.
pub fn open_log(output: &Output, id: &str, namespace: &str) -> Result<(File, File)> {
    match output {
        Output::Fifo => Err(Error::new(ErrorKind::InvalidInput, "not a log URI")),
        Output::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(path)?;
            Ok((file.try_clone()?, file))
        }
        Output::Binary { path, args } => {
            let (out_reader, out_writer) = std::io::pipe()?;
            let (err_reader, err_writer) = std::io::pipe()?;
            let (mut ready_reader, ready_writer) = std::io::pipe()?;
            let passed: [OwnedFd; 3] = [out_reader.into(), err_reader.into(), ready_writer.into()];
            let sources: Vec<i32> = passed.iter().map(|fd| fd.as_raw_fd()).collect();
            let mut command = Command::new(path);
            command
                .args(args)
                .env_clear()
                .env("CONTAINER_ID", id)
                .env("CONTAINER_NAMESPACE", namespace)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    // first out of the way of 3..=5, then into place
                    let mut high = [0; 3];
                    for (slot, source) in high.iter_mut().zip(&sources) {
                        *slot = libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, 10);
                        if *slot < 0 {
                            return Err(Error::last_os_error());
                        }
                    }
                    for (target, source) in (3..).zip(high) {
                        if libc::dup2(source, target) < 0 {
                            return Err(Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
            let mut child = command.spawn().map_err(|err| {
                Error::new(err.kind(), format!("starting the logging binary {}: {err}", path.display()))
            })?;
            // our ends of what the logger reads, and its ready pipe's writer
            drop(passed);
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut byte = [0u8; 1];
                let _ = sender.send(ready_reader.read(&mut byte));
            });
            match receiver.recv_timeout(LOGGER_READY) {
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    return Err(Error::new(
                        ErrorKind::TimedOut,
                        format!(
                            "the logging binary {} did not get ready within {LOGGER_READY:?}",
                            path.display()
                        ),
                    ));
                }
            }
            // reaped by whoever reaps the shim's children; it ends when the
            // container's last copy of the pipes closes
            drop(child);
            Ok((
                File::from(OwnedFd::from(out_writer)),
                File::from(OwnedFd::from(err_writer)),
            ))
        }
    }
}
