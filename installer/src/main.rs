//! `wasmhttp-node-installer`: runs in a privileged DaemonSet pod with the
//! host's root mounted, puts the shim on the node and registers it with
//! containerd, restarting containerd only when something changed.
//!
//!   wasmhttp-node-installer install   [--host-root /host] [--shim PATH] [--no-restart]
//!   wasmhttp-node-installer uninstall [--host-root /host] [--no-restart]

use std::path::PathBuf;

use anyhow::{Result, bail};
use wasmhttp_node_installer::host;

struct Options {
    command: String,
    host_root: PathBuf,
    shim: PathBuf,
    restart: bool,
}

fn parse() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    if command != "install" && command != "uninstall" {
        bail!(
            "usage: wasmhttp-node-installer install|uninstall [--host-root DIR] [--shim PATH] [--no-restart]"
        );
    }
    let mut options = Options {
        command,
        host_root: PathBuf::from("/host"),
        shim: PathBuf::from("/usr/local/bin").join(host::SHIM_NAME),
        restart: true,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--host-root" => options.host_root = args.next().map(PathBuf::from).unwrap_or_default(),
            "--shim" => options.shim = args.next().map(PathBuf::from).unwrap_or_default(),
            "--no-restart" => options.restart = false,
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(options)
}

fn main() -> Result<()> {
    let options = parse()?;
    let report = match options.command.as_str() {
        "install" => host::install(&options.host_root, &options.shim)?,
        _ => host::uninstall(&options.host_root)?,
    };
    if !report.changed() {
        println!(
            "wasmhttp-node-installer: {}: nothing to change",
            options.command
        );
        return Ok(());
    }
    for path in &report.changed_files {
        println!("wasmhttp-node-installer: changed {}", path.display());
    }
    if options.restart {
        let unit = host::restart_containerd(&options.host_root)?;
        println!("wasmhttp-node-installer: restarted {unit}");
    } else {
        println!("wasmhttp-node-installer: containerd not restarted (--no-restart)");
    }
    Ok(())
}
