//! `wasmhttp-node-installer`: runs in a privileged DaemonSet pod with the
//! host's root mounted, puts the shim on the node, registers it with
//! containerd, restarts containerd only when something changed, and labels
//! the node ready for the RuntimeClass's node selector.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use wasmhttp_node_installer::host::{self, Flavour};
use wasmhttp_node_installer::node::{self, ApiAccess};
use wasmhttp_node_installer::restart::{self, Restart};

const USAGE: &str = "\
usage: wasmhttp-node-installer install|uninstall [options]
       wasmhttp-node-installer --version
  --host-root DIR            where the host's / is mounted (default /host)
  --shim PATH                the shim binary to install (default /usr/local/bin/containerd-shim-wasmhttp-v1)
  --flavour NAME             containerd, k3s or rke2 (default: detected from the host)
  --restart MODE             auto, systemd, signal or never (default auto: systemd when the host runs it)
  --no-restart               the same as --restart never
  --node-name NAME           label this node (default: $NODE_NAME; no labelling when neither is set)
  --service-account-dir DIR  token and ca.crt for the API server (default: the pod's)
  --stay                     after the work, wait for SIGTERM (a DaemonSet container must keep running)";

struct Options {
    uninstall: bool,
    host_root: PathBuf,
    shim: PathBuf,
    flavour: Option<Flavour>,
    restart: Restart,
    node_name: Option<String>,
    service_account_dir: PathBuf,
    stay: bool,
}

fn parse() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let uninstall = match args.next().as_deref() {
        Some("install") => false,
        Some("uninstall") => true,
        Some("--version" | "-v") => {
            println!("wasmhttp-node-installer {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        _ => bail!("{USAGE}"),
    };
    let mut options = Options {
        uninstall,
        host_root: PathBuf::from("/host"),
        shim: PathBuf::from("/usr/local/bin").join(host::SHIM_NAME),
        flavour: None,
        restart: Restart::Auto,
        node_name: std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()),
        service_account_dir: node::default_service_account_dir(),
        stay: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--host-root" => options.host_root = value()?.into(),
            "--shim" => options.shim = value()?.into(),
            "--flavour" => options.flavour = Some(value()?.parse()?),
            "--restart" => options.restart = value()?.parse()?,
            "--no-restart" => options.restart = Restart::Never,
            "--node-name" => options.node_name = Some(value()?),
            "--service-account-dir" => options.service_account_dir = value()?.into(),
            "--stay" => options.stay = true,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(options)
}

fn main() -> Result<()> {
    let options = parse()?;
    let say = |line: &str| println!("wasmhttp-node-installer: {line}");
    let flavour = options
        .flavour
        .unwrap_or_else(|| Flavour::detect(&options.host_root));
    say(&format!("containerd flavour: {flavour}"));
    let report = if options.uninstall {
        // unlabel first, so no new wasmhttp pod lands here while the shim goes
        label(&options, false)?;
        host::uninstall(&options.host_root, flavour)?
    } else {
        host::install(&options.host_root, &options.shim, flavour)?
    };
    if report.changed() {
        for path in &report.changed_files {
            say(&format!("changed {}", path.display()));
        }
        say(&restart::restart(
            &options.host_root,
            flavour,
            options.restart,
        )?);
    } else {
        say("nothing to change; containerd left running");
    }
    if !options.uninstall {
        label(&options, true)?;
    }
    if options.stay {
        say("done; waiting for SIGTERM");
        wait_for_termination()?;
    }
    Ok(())
}

fn label(options: &Options, ready: bool) -> Result<()> {
    let Some(node_name) = &options.node_name else {
        println!("wasmhttp-node-installer: no --node-name or NODE_NAME: node labels left alone");
        return Ok(());
    };
    let api = ApiAccess::in_cluster(&options.service_account_dir)?;
    node::set_ready_label(&api, node_name, ready)?;
    let action = if ready { "labelled" } else { "unlabelled" };
    println!(
        "wasmhttp-node-installer: {action} node {node_name} ({}{})",
        node::READY_LABEL,
        if ready { "=true" } else { "" }
    );
    Ok(())
}

fn wait_for_termination() -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block()?;
    signals.wait()?;
    Ok(())
}
