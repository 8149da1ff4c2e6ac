//! The node's filesystem as the installer sees it: the host's root is mounted
//! at `root` (a DaemonSet's hostPath), and every path below is relative to it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::containerd_config;

pub const SHIM_NAME: &str = "containerd-shim-wasmhttp-v1";
/// Where the shim lives on the host, and the link containerd finds on its PATH.
pub const SHIM_DIR: &str = "opt/wasmhttp/bin";
pub const SHIM_LINK_DIR: &str = "usr/local/bin";

/// How containerd is run on this node, which decides where its config is and
/// how it is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// A containerd of its own, configured by `/etc/containerd/config.toml`.
    Containerd,
    /// k3s (and k3d nodes): containerd config generated from a template.
    K3s,
    /// rke2: like k3s, under its own directory.
    Rke2,
}

impl Flavour {
    pub fn detect(root: &Path) -> Flavour {
        if root
            .join("var/lib/rancher/k3s/agent/etc/containerd/config.toml")
            .exists()
        {
            Flavour::K3s
        } else if root
            .join("var/lib/rancher/rke2/agent/etc/containerd/config.toml")
            .exists()
        {
            Flavour::Rke2
        } else {
            Flavour::Containerd
        }
    }

    /// The config file containerd reads (k3s and rke2 generate it from the template).
    pub fn config_file(self, root: &Path) -> PathBuf {
        root.join(self.config_dir()).join("config.toml")
    }

    fn config_dir(self) -> &'static str {
        match self {
            Flavour::Containerd => "etc/containerd",
            Flavour::K3s => "var/lib/rancher/k3s/agent/etc/containerd",
            Flavour::Rke2 => "var/lib/rancher/rke2/agent/etc/containerd",
        }
    }

    /// systemd units that run containerd, in the order they are tried.
    pub fn units(self) -> &'static [&'static str] {
        match self {
            Flavour::Containerd => &["containerd"],
            Flavour::K3s => &["k3s", "k3s-agent"],
            Flavour::Rke2 => &["rke2-server", "rke2-agent"],
        }
    }
}

/// What an install or uninstall did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub changed_files: Vec<PathBuf>,
}

impl Report {
    pub fn changed(&self) -> bool {
        !self.changed_files.is_empty()
    }
}

impl std::str::FromStr for Flavour {
    type Err = anyhow::Error;

    fn from_str(value: &str) -> Result<Self> {
        match value {
            "containerd" => Ok(Flavour::Containerd),
            "k3s" | "k3d" => Ok(Flavour::K3s),
            "rke2" => Ok(Flavour::Rke2),
            other => {
                anyhow::bail!("--flavour {other:?}: expected containerd, k3s (also k3d) or rke2")
            }
        }
    }
}

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flavour::Containerd => "containerd",
            Flavour::K3s => "k3s",
            Flavour::Rke2 => "rke2",
        })
    }
}

/// Copies the shim and registers the runtime; touches nothing that is already right.
pub fn install(root: &Path, shim: &Path, flavour: Flavour) -> Result<Report> {
    let mut report = Report::default();
    let binary =
        std::fs::read(shim).with_context(|| format!("reading the shim at {}", shim.display()))?;
    let target = root.join(SHIM_DIR).join(SHIM_NAME);
    if std::fs::read(&target).ok().as_deref() != Some(binary.as_slice()) {
        write_atomically(&target, &binary, 0o755)?;
        report.changed_files.push(target.clone());
    }
    let link = root.join(SHIM_LINK_DIR).join(SHIM_NAME);
    let link_target = Path::new("/").join(SHIM_DIR).join(SHIM_NAME);
    if std::fs::read_link(&link).ok().as_deref() != Some(link_target.as_path()) {
        std::fs::create_dir_all(link.parent().unwrap())?;
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&link_target, &link)
            .with_context(|| format!("linking {}", link.display()))?;
        report.changed_files.push(link);
    }

    let dir = root.join(flavour.config_dir());
    match flavour {
        Flavour::Containerd => {
            let path = dir.join("config.toml");
            let current = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                // containerd runs on defaults; a version 2 file that only adds us keeps them.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "version = 2\n".to_string(),
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            if let Some(drop_ins) = containerd_config::drop_in_dir(&current, root, &dir)
                .with_context(|| format!("in {}", path.display()))?
            {
                let drop_in = drop_ins.join(containerd_config::DROP_IN_NAME);
                let content = containerd_config::drop_in();
                if std::fs::read_to_string(&drop_in).ok().as_deref() != Some(content.as_str()) {
                    write_atomically(&drop_in, content.as_bytes(), 0o644)?;
                    report.changed_files.push(drop_in);
                }
            } else if let Some(updated) = containerd_config::add_runtime(&current)
                .with_context(|| format!("in {}", path.display()))?
            {
                write_atomically(&path, updated.as_bytes(), 0o644)?;
                report.changed_files.push(path);
            }
        }
        Flavour::K3s | Flavour::Rke2 => {
            let generated = std::fs::read_to_string(dir.join("config.toml"))?;
            let version = generated_version(&generated)?;
            let path = dir.join("config.toml.tmpl");
            let existing = std::fs::read_to_string(&path).ok();
            if let Some(updated) =
                containerd_config::add_to_k3s_template(existing.as_deref(), version)?
            {
                write_atomically(&path, updated.as_bytes(), 0o644)?;
                report.changed_files.push(path);
            }
        }
    }
    Ok(report)
}

/// Reverses `install`: the runtime entry, the link and the shim.
pub fn uninstall(root: &Path, flavour: Flavour) -> Result<Report> {
    let mut report = Report::default();
    let dir = root.join(flavour.config_dir());
    match flavour {
        Flavour::Containerd => {
            let path = dir.join("config.toml");
            if let Ok(current) = std::fs::read_to_string(&path) {
                // our drop-in file and nothing else of that directory
                if let Some(drop_ins) = containerd_config::drop_in_dir(&current, root, &dir)? {
                    let drop_in = drop_ins.join(containerd_config::DROP_IN_NAME);
                    if drop_in.exists() {
                        std::fs::remove_file(&drop_in)
                            .with_context(|| format!("removing {}", drop_in.display()))?;
                        report.changed_files.push(drop_in);
                    }
                }
                // and the entry an install before the config imported files wrote
                if let Some(updated) = containerd_config::remove_runtime(&current)? {
                    write_atomically(&path, updated.as_bytes(), 0o644)?;
                    report.changed_files.push(path);
                }
            }
        }
        Flavour::K3s | Flavour::Rke2 => {
            let path = dir.join("config.toml.tmpl");
            if let Ok(current) = std::fs::read_to_string(&path)
                && let Some(updated) = containerd_config::remove_from_k3s_template(&current)
            {
                // a template that only extended the base is ours entirely
                if updated.trim() == "{{ template \"base\" . }}" {
                    std::fs::remove_file(&path)?;
                } else {
                    write_atomically(&path, updated.as_bytes(), 0o644)?;
                }
                report.changed_files.push(path);
            }
        }
    }
    for path in [
        root.join(SHIM_LINK_DIR).join(SHIM_NAME),
        root.join(SHIM_DIR).join(SHIM_NAME),
    ] {
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            report.changed_files.push(path);
        }
    }
    Ok(report)
}

/// The `version` of a generated containerd config (k3s writes 2 or 3).
fn generated_version(text: &str) -> Result<i64> {
    let doc: toml_edit::DocumentMut = text
        .parse()
        .context("the generated containerd config is not valid TOML")?;
    doc.get("version")
        .and_then(|v| v.as_integer())
        .context("the generated containerd config has no version")
}

/// Writes through a temporary file and a rename, so containerd never reads a
/// half-written config and a running shim binary is never overwritten in place.
fn write_atomically(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().context("a path with a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temporary = dir.join(format!(
        ".{}.wasmhttp-new",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&temporary, content)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}
