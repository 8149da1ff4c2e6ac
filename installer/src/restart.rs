//! Making containerd read its new config. containerd cannot reload, so it is
//! restarted, the way the node runs it:
//! - `systemd`: `systemctl restart` of the flavour's unit, in the host's
//!   namespaces (the pod runs with `hostPID`);
//! - `signal`: SIGTERM to the process that reads the config, for nodes
//!   without systemd (k3d nodes, where k3s is the container's init and the
//!   node container's restart policy starts it again). For a plain
//!   containerd the installer waits until its supervisor has brought it back.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::host::Flavour;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// systemd when the host runs it, otherwise `Signal`.
    Auto,
    Systemd,
    Signal,
    /// Leave it to the operator.
    Never,
}

impl std::str::FromStr for Restart {
    type Err = anyhow::Error;

    fn from_str(value: &str) -> Result<Self> {
        match value {
            "auto" => Ok(Restart::Auto),
            "systemd" => Ok(Restart::Systemd),
            "signal" => Ok(Restart::Signal),
            "never" => Ok(Restart::Never),
            other => bail!("--restart {other:?}: expected auto, systemd, signal or never"),
        }
    }
}

/// How long a supervisor gets to start containerd again after a signal.
const COME_BACK_LIMIT: Duration = Duration::from_secs(60);

/// Restarts what reads `flavour`'s config under `root`; says what it did.
pub fn restart(root: &Path, flavour: Flavour, how: Restart) -> Result<String> {
    let how = match how {
        Restart::Auto if root.join("run/systemd/system").is_dir() => Restart::Systemd,
        Restart::Auto => Restart::Signal,
        other => other,
    };
    match how {
        Restart::Systemd => restart_unit(flavour),
        Restart::Signal => signal(root, flavour),
        Restart::Never => Ok("containerd not restarted (--restart never)".into()),
        Restart::Auto => unreachable!("resolved above"),
    }
}

fn restart_unit(flavour: Flavour) -> Result<String> {
    for unit in flavour.units() {
        if host_systemctl(&["is-active", "--quiet", unit])?.success() {
            let restarted = host_systemctl(&["restart", unit])?;
            if !restarted.success() {
                bail!("systemctl restart {unit} failed ({restarted})");
            }
            return Ok(format!("restarted the systemd unit {unit}"));
        }
    }
    bail!(
        "none of the systemd units {:?} is active on this node; restart containerd by hand \
         or pass --restart signal",
        flavour.units()
    )
}

/// `systemctl ARGS` in the host's mount namespace (found through PID 1, which
/// the pod sees with `hostPID`), so the host's systemctl talks to the host's
/// systemd; the image needs no nsenter or shell.
fn host_systemctl(args: &[&str]) -> Result<std::process::ExitStatus> {
    use std::os::unix::process::CommandExt;
    let mount_namespace = std::fs::File::open("/proc/1/ns/mnt")
        .context("opening the host's mount namespace (the pod needs hostPID and privileges)")?;
    // The host's shell finds the host's systemctl on the host's PATH (it sits
    // in /bin or /usr/bin depending on the distribution).
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", "exec systemctl \"$@\"", "systemctl"])
        .args(args);
    // SAFETY: between fork and exec only setns(2), which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            nix::sched::setns(&mount_namespace, nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(std::io::Error::from)
        });
    }
    command
        .status()
        .with_context(|| format!("running systemctl {} on the host", args.join(" ")))
}

fn signal(root: &Path, flavour: Flavour) -> Result<String> {
    match flavour {
        Flavour::Containerd => {
            let config = flavour.config_file(root);
            let old = containerd_reading(&config)?;
            if old.is_empty() {
                bail!(
                    "no running containerd reads {}; nothing to restart",
                    config.display()
                );
            }
            for pid in &old {
                kill(Pid::from_raw(*pid), Signal::SIGTERM)
                    .with_context(|| format!("signalling containerd (pid {pid})"))?;
            }
            let deadline = Instant::now() + COME_BACK_LIMIT;
            loop {
                let now = containerd_reading(&config)?;
                if let Some(new) = now.iter().find(|pid| !old.contains(pid)) {
                    return Ok(format!(
                        "restarted containerd: pid {old:?} stopped with SIGTERM, pid {new} reads the new config"
                    ));
                }
                if Instant::now() > deadline {
                    bail!(
                        "containerd (pid {old:?}) was stopped but nothing started it again within {}s; \
                         its supervisor must restart it",
                        COME_BACK_LIMIT.as_secs()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Flavour::K3s | Flavour::Rke2 => {
            // k3s/rke2 write containerd's config from the template when they
            // start, so they are what is restarted; on a k3d node that is the
            // node itself (and this pod with it), so there is nothing to wait for.
            let prefix = if flavour == Flavour::K3s {
                "k3s"
            } else {
                "rke2"
            };
            let pids = processes()
                .filter(|(_, comm, _)| comm.starts_with(prefix))
                .map(|(pid, _, _)| pid)
                .collect::<Vec<_>>();
            let Some(pid) = pids.iter().min() else {
                bail!("no {prefix} process is running on this node; restart it by hand");
            };
            kill(Pid::from_raw(*pid), Signal::SIGTERM)
                .with_context(|| format!("signalling {prefix} (pid {pid})"))?;
            Ok(format!(
                "stopped {prefix} (pid {pid}) with SIGTERM; its supervisor starts it again with the new template"
            ))
        }
    }
}

/// Running containerd processes whose config file is `config` (compared as
/// files, through each process's own root, so host paths and the installer's
/// view of them meet).
fn containerd_reading(config: &Path) -> Result<Vec<i32>> {
    let wanted =
        std::fs::metadata(config).with_context(|| format!("reading {}", config.display()))?;
    Ok(processes()
        .filter(|(_, comm, _)| comm == "containerd")
        .filter(|(pid, _, args)| {
            let path = config_argument(args);
            let seen =
                PathBuf::from(format!("/proc/{pid}/root")).join(path.trim_start_matches('/'));
            std::fs::metadata(seen)
                .is_ok_and(|m| m.dev() == wanted.dev() && m.ino() == wanted.ino())
        })
        .map(|(pid, _, _)| pid)
        .collect())
}

/// The `--config`/`-c` argument of a containerd command line, or its default.
fn config_argument(args: &[String]) -> String {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--config" || arg == "-c" {
            if let Some(path) = args.next() {
                return path.clone();
            }
        } else if let Some(path) = arg.strip_prefix("--config=") {
            return path.to_string();
        }
    }
    "/etc/containerd/config.toml".into()
}

/// (pid, comm, argv) of every process this pod can see (the host's, with hostPID).
fn processes() -> impl Iterator<Item = (i32, String, Vec<String>)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, comm.trim_end().to_string(), args))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_argument_forms() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            config_argument(&args(&["containerd"])),
            "/etc/containerd/config.toml"
        );
        assert_eq!(
            config_argument(&args(&["containerd", "-c", "/a.toml"])),
            "/a.toml"
        );
        assert_eq!(
            config_argument(&args(&[
                "containerd",
                "--address",
                "x",
                "--config",
                "/b.toml"
            ])),
            "/b.toml"
        );
        assert_eq!(
            config_argument(&args(&["containerd", "--config=/c.toml"])),
            "/c.toml"
        );
    }

    #[test]
    fn restart_modes_parse_and_name_the_accepted_values() {
        assert_eq!("signal".parse::<Restart>().unwrap(), Restart::Signal);
        let err = "sometimes".parse::<Restart>().unwrap_err().to_string();
        assert!(err.contains("sometimes") && err.contains("auto, systemd, signal or never"));
    }
}
