//! Registers the `wasmhttp` runtime in containerd's `config.toml`, with a real
//! TOML editor so that everything else in the file (comments, order, other
//! runtimes) stays as the operator wrote it.
//!
//! - config `version = 2` (containerd 1.x): `plugins."io.containerd.grpc.v1.cri".containerd.runtimes`;
//! - config `version = 3` (containerd 2.x): `plugins."io.containerd.cri.v1.runtime".containerd.runtimes`;
//! - k3s and rke2 regenerate `config.toml` on every start, so for them we
//!   write `config.toml.tmpl`, which extends their base template;
//! - a version 3 config that imports drop-in files (`imports =
//!   ["/etc/containerd/conf.d/*.toml"]`) gets a drop-in file of ours and is
//!   not edited. containerd 2 merges an imported file's plugin tables into the
//!   main config's; containerd 1.x replaces a whole plugin section with the
//!   imported one (the CRI plugin's sandbox image, CNI and runc settings would
//!   be lost), so a version 2 config is always edited in place.

use anyhow::{Context, Result, bail};
use toml_edit::{DocumentMut, Item, Table, value};

/// The CRI handler name (a RuntimeClass's `handler`).
pub const RUNTIME_NAME: &str = "wasmhttp";
/// The containerd runtime type, which names the shim binary.
pub const RUNTIME_TYPE: &str = "io.containerd.wasmhttp.v1";

/// Where runtimes live, by config version.
fn runtimes_path(doc: &DocumentMut) -> Result<[&'static str; 4]> {
    let version = doc.get("version").and_then(Item::as_integer);
    match version {
        Some(2) => Ok([
            "plugins",
            "io.containerd.grpc.v1.cri",
            "containerd",
            "runtimes",
        ]),
        Some(3) => Ok([
            "plugins",
            "io.containerd.cri.v1.runtime",
            "containerd",
            "runtimes",
        ]),
        Some(other) => {
            bail!("containerd config version {other} is not supported; expected version = 2 or 3")
        }
        None => bail!(
            "the containerd config has no `version`; expected version = 2 (containerd 1.x) or 3 (containerd 2.x)"
        ),
    }
}

/// Adds (or corrects) the wasmhttp runtime. `Ok(None)` when the file already
/// says exactly that, so the caller knows not to restart containerd.
pub fn add_runtime(text: &str) -> Result<Option<String>> {
    let mut doc: DocumentMut = text
        .parse()
        .context("containerd's config.toml is not valid TOML")?;
    let path = runtimes_path(&doc)?;
    let mut table = doc.as_table_mut();
    for key in path {
        table = child_table(table, key)?;
    }
    let mut changed = false;
    // Once any runtime is listed, CRI no longer falls back to its built-in
    // runc entry: without it, the CRI plugin refuses to load.
    if !table.contains_key("runc") {
        let runc = child_table(table, "runc")?;
        runc.set_implicit(false);
        runc.decor_mut()
            .set_prefix(format!("\n{ADDED_RUNC_MARK}\n"));
        runc["runtime_type"] = value("io.containerd.runc.v2");
        changed = true;
    }
    let runtime = child_table(table, RUNTIME_NAME)?;
    runtime.set_implicit(false);
    if runtime.get("runtime_type").and_then(Item::as_str) != Some(RUNTIME_TYPE) {
        runtime["runtime_type"] = value(RUNTIME_TYPE);
        changed = true;
    }
    Ok(changed.then(|| doc.to_string()))
}

/// Removes the wasmhttp runtime; `Ok(None)` when it was not there.
pub fn remove_runtime(text: &str) -> Result<Option<String>> {
    let mut doc: DocumentMut = text
        .parse()
        .context("containerd's config.toml is not valid TOML")?;
    let path = runtimes_path(&doc)?;
    let mut item = doc.as_item_mut();
    for key in path {
        match item.get_mut(key) {
            Some(next) => item = next,
            None => return Ok(None),
        }
    }
    let Some(runtimes) = item.as_table_like_mut() else {
        return Ok(None);
    };
    if runtimes.remove(RUNTIME_NAME).is_none() {
        return Ok(None);
    }
    // the runc entry `add_runtime` added goes too, unless someone changed it
    let added_runc = runtimes
        .get("runc")
        .and_then(Item::as_table)
        .is_some_and(|runc| {
            runc.decor()
                .prefix()
                .and_then(|p| p.as_str())
                .is_some_and(|p| p.contains(ADDED_RUNC_MARK))
                && runc.len() == 1
                && runc.get("runtime_type").and_then(Item::as_str) == Some("io.containerd.runc.v2")
        });
    if added_runc {
        runtimes.remove("runc");
    }
    Ok(Some(doc.to_string()))
}

/// Marks the runc entry `add_runtime` had to add, so `remove_runtime` takes
/// it away again and leaves the config as it was.
const ADDED_RUNC_MARK: &str = "# added by wasmhttp-node-installer beside its runtime (CRI needs runc listed once any runtime is)";

/// The existing table under `key`, or a new implicit one (so intermediate
/// levels are not written as empty `[headers]`).
fn child_table<'a>(table: &'a mut Table, key: &str) -> Result<&'a mut Table> {
    let item = table.entry(key).or_insert_with(|| {
        let mut new = Table::new();
        new.set_implicit(true);
        Item::Table(new)
    });
    item.as_table_mut()
        .with_context(|| format!("`{key}` in containerd's config is not a table"))
}

/// The name of our drop-in file, in the directory a config's `imports` reads.
pub const DROP_IN_NAME: &str = "wasmhttp.toml";

/// The directory of the first `imports` entry of a version 3 config whose
/// pattern takes [`DROP_IN_NAME`] (e.g. `/etc/containerd/conf.d/*.toml`), as
/// the node sees it: absolute entries under `root`, relative ones from
/// `config_dir`, as containerd resolves them. `None` for a version 2 config
/// (see the module's comment) or one that imports no such directory.
pub fn drop_in_dir(
    text: &str,
    root: &std::path::Path,
    config_dir: &std::path::Path,
) -> Result<Option<std::path::PathBuf>> {
    let doc: DocumentMut = text
        .parse()
        .context("containerd's config.toml is not valid TOML")?;
    if doc.get("version").and_then(Item::as_integer) != Some(3) {
        return Ok(None);
    }
    let Some(imports) = doc.get("imports").and_then(Item::as_array) else {
        return Ok(None);
    };
    for pattern in imports.iter().filter_map(|entry| entry.as_str()) {
        let pattern = std::path::Path::new(pattern);
        let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
            continue;
        };
        let is_glob = |text: &str| text.contains(['*', '?', '[']);
        if !is_glob(&name.to_string_lossy())
            || is_glob(&dir.to_string_lossy())
            || !glob_matches(&name.to_string_lossy(), DROP_IN_NAME)
        {
            continue;
        }
        return Ok(Some(match dir.strip_prefix("/") {
            Ok(below_root) => root.join(below_root),
            Err(_) => config_dir.join(dir),
        }));
    }
    Ok(None)
}

/// Our drop-in file for a version 3 config: only our runtime (containerd 2
/// keeps its built-in runc entry beside it).
pub fn drop_in() -> String {
    format!(
        "# The wasmhttp runtime, written by wasmhttp-node-installer and removed by its\n\
         # uninstall. containerd reads it through the `imports` of its config.toml.\n\
         version = 3\n\n\
         [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.{RUNTIME_NAME}]\n  \
         runtime_type = \"{RUNTIME_TYPE}\"\n"
    )
}

/// A file-name glob as containerd's imports use them (`*`, `?`; a `[` class
/// is taken for a literal, which only makes us edit config.toml instead).
fn glob_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    // match[i][j]: pattern[..i] matches name[..j]
    let mut matches = vec![vec![false; name.len() + 1]; pattern.len() + 1];
    matches[0][0] = true;
    for i in 1..=pattern.len() {
        for j in 0..=name.len() {
            matches[i][j] = match pattern[i - 1] {
                '*' => matches[i - 1][j] || (j > 0 && matches[i][j - 1]),
                '?' => j > 0 && matches[i - 1][j - 1],
                c => j > 0 && name[j - 1] == c && matches[i - 1][j - 1],
            };
        }
    }
    matches[pattern.len()][name.len()]
}

/// Marks the block we add to a k3s/rke2 template, so it can be found again.
const TEMPLATE_MARK: &str = "# wasmhttp runtime, managed by wasmhttp-node-installer";

/// k3s/rke2: the `config.toml.tmpl` that keeps their generated config and adds
/// our runtime. `existing` is the current template, if the node has one;
/// `version` is that of the config.toml k3s generated (2 or 3).
pub fn add_to_k3s_template(existing: Option<&str>, version: i64) -> Result<Option<String>> {
    let plugin = match version {
        2 => "io.containerd.grpc.v1.cri",
        3 => "io.containerd.cri.v1.runtime",
        other => bail!("containerd config version {other} is not supported; expected 2 or 3"),
    };
    let block = format!(
        "{TEMPLATE_MARK}\n[plugins.\"{plugin}\".containerd.runtimes.{RUNTIME_NAME}]\n  runtime_type = \"{RUNTIME_TYPE}\"\n"
    );
    let base = existing.unwrap_or("{{ template \"base\" . }}\n");
    if base.contains(&block) {
        return Ok(None);
    }
    let mut text = remove_marked_block(base);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&block);
    Ok(Some(text))
}

/// Takes our block out of a k3s/rke2 template; `None` when it was not there.
pub fn remove_from_k3s_template(existing: &str) -> Option<String> {
    existing
        .contains(TEMPLATE_MARK)
        .then(|| remove_marked_block(existing))
}

fn remove_marked_block(text: &str) -> String {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line == TEMPLATE_MARK {
            // the header and its key lines, up to the next blank line or table
            lines.next();
            while lines
                .peek()
                .is_some_and(|l| l.starts_with(' ') || l.starts_with('\t'))
            {
                lines.next();
            }
            while out.last().is_some_and(|l: &&str| l.is_empty()) {
                out.pop();
            }
            continue;
        }
        out.push(line);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn version_3_configs_that_import_a_directory_get_a_drop_in_there() {
        let root = Path::new("/host");
        let dir = Path::new("/host/etc/containerd");
        let absolute = "version = 3\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n";
        assert_eq!(
            drop_in_dir(absolute, root, dir).unwrap().unwrap(),
            Path::new("/host/etc/containerd/conf.d")
        );
        let relative = "version = 3\nimports = [\"/etc/other.toml\", \"conf.d/*.toml\"]\n";
        assert_eq!(
            drop_in_dir(relative, root, dir).unwrap().unwrap(),
            Path::new("/host/etc/containerd/conf.d")
        );
        // patterns our file would not match, single files, globbed directories
        for text in [
            "version = 3\nimports = [\"/etc/containerd/conf.d/*.conf\"]\n",
            "version = 3\nimports = [\"/etc/containerd/extra.toml\"]\n",
            "version = 3\nimports = [\"/etc/*/conf.d/*.toml\"]\n",
            "version = 3\nimports = []\n",
            "version = 3\n",
        ] {
            assert_eq!(drop_in_dir(text, root, dir).unwrap(), None, "{text}");
        }
        // containerd 1.x replaces a whole plugin section from an imported file
        let v2 = "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n";
        assert_eq!(drop_in_dir(v2, root, dir).unwrap(), None);
        assert!(drop_in_dir("imports = [", root, dir).is_err());
    }

    #[test]
    fn the_drop_in_is_a_version_3_config_with_only_our_runtime() {
        let doc: DocumentMut = drop_in().parse().unwrap();
        assert_eq!(doc["version"].as_integer(), Some(3));
        let runtimes = &doc["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"];
        assert_eq!(runtimes.as_table().unwrap().len(), 1);
        assert_eq!(
            runtimes[RUNTIME_NAME]["runtime_type"].as_str(),
            Some(RUNTIME_TYPE)
        );
    }

    #[test]
    fn import_globs_match_as_containerd_matches_them() {
        for (pattern, name, matches) in [
            ("*.toml", "wasmhttp.toml", true),
            ("*", "wasmhttp.toml", true),
            ("wasm*.toml", "wasmhttp.toml", true),
            ("wasmhttp.tom?", "wasmhttp.toml", true),
            ("*.conf", "wasmhttp.toml", false),
            ("10-*.toml", "wasmhttp.toml", false),
            ("?", "wasmhttp.toml", false),
        ] {
            assert_eq!(glob_matches(pattern, name), matches, "{pattern} {name}");
        }
    }

    const V2: &str = r#"# the operator's comment
version = 2
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true
"#;

    #[test]
    fn v2_gets_the_runtime_and_keeps_everything_else() {
        let out = add_runtime(V2).unwrap().expect("a change");
        assert!(
            out.starts_with(V2.trim_end()),
            "existing text must stay as written:\n{out}"
        );
        assert!(
            out.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmhttp]"),
            "{out}"
        );
        assert!(
            out.contains("runtime_type = \"io.containerd.wasmhttp.v1\""),
            "{out}"
        );
        let doc: DocumentMut = out.parse().unwrap();
        let runtimes = &doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
        assert_eq!(
            runtimes["runc"]["options"]["SystemdCgroup"].as_bool(),
            Some(true)
        );
        assert_eq!(
            runtimes["wasmhttp"]["runtime_type"].as_str(),
            Some(RUNTIME_TYPE)
        );
    }

    #[test]
    fn adding_twice_changes_nothing() {
        let once = add_runtime(V2).unwrap().unwrap();
        assert_eq!(add_runtime(&once).unwrap(), None);
    }

    #[test]
    fn v3_uses_the_containerd_2_plugin() {
        let out = add_runtime("version = 3\n").unwrap().unwrap();
        let doc: DocumentMut = out.parse().unwrap();
        let runtime =
            &doc["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["wasmhttp"];
        assert_eq!(runtime["runtime_type"].as_str(), Some(RUNTIME_TYPE));
        // intermediate levels are not written as empty tables
        assert!(!out.contains("[plugins]\n"), "{out}");
        // CRI only loads when runc is declared next to any added runtime
        let runc =
            &doc["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"];
        assert_eq!(runc["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
    }

    #[test]
    fn a_wrong_runtime_type_is_corrected() {
        let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmhttp]\n  runtime_type = \"io.containerd.other.v1\"\n  extra = 1\n";
        let out = add_runtime(text).unwrap().unwrap();
        assert!(
            out.contains("\"io.containerd.wasmhttp.v1\"") && out.contains("extra = 1"),
            "{out}"
        );
    }

    #[test]
    fn remove_undoes_add() {
        let added = add_runtime(V2).unwrap().unwrap();
        let removed = remove_runtime(&added).unwrap().unwrap();
        let doc: DocumentMut = removed.parse().unwrap();
        assert!(
            doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
                .get("wasmhttp")
                .is_none()
        );
        assert!(removed.contains("SystemdCgroup = true"));
        assert_eq!(remove_runtime(&removed).unwrap(), None);
        assert_eq!(remove_runtime("version = 3\n").unwrap(), None);
    }

    #[test]
    fn remove_takes_away_the_runc_entry_add_put_there_and_no_other() {
        // a config that lists no runtime (containerd 2's own default, k8s suite's nodes)
        for original in [
            "version = 3\nroot = \"/var/lib/containerd\"\n",
            "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"/usr/lib/cni\"\n",
        ] {
            let added = add_runtime(original).unwrap().unwrap();
            assert!(added.contains(ADDED_RUNC_MARK), "{added}");
            assert_eq!(remove_runtime(&added).unwrap().unwrap(), original);
        }
        // runc already listed (V2 has it with options): it stays
        let removed = remove_runtime(&add_runtime(V2).unwrap().unwrap())
            .unwrap()
            .unwrap();
        assert!(removed.contains("runtimes.runc]"), "{removed}");
        // an added runc entry an operator changed since: it stays
        let added = add_runtime("version = 3\n").unwrap().unwrap();
        let edited = added.replace(
            "runtime_type = \"io.containerd.runc.v2\"",
            "runtime_type = \"io.containerd.runc.v2\"\nsnapshotter = \"native\"",
        );
        let removed = remove_runtime(&edited).unwrap().unwrap();
        assert!(removed.contains("snapshotter = \"native\""), "{removed}");
    }

    #[test]
    fn unknown_versions_and_bad_toml_are_explained() {
        assert!(
            add_runtime("root = \"/x\"\n")
                .unwrap_err()
                .to_string()
                .contains("no `version`")
        );
        assert!(
            add_runtime("version = 1\n")
                .unwrap_err()
                .to_string()
                .contains("version 1")
        );
        assert!(
            add_runtime("version = [\n")
                .unwrap_err()
                .to_string()
                .contains("not valid TOML")
        );
    }

    #[test]
    fn k3s_template_extends_the_base_idempotently() {
        let created = add_to_k3s_template(None, 2).unwrap().unwrap();
        assert!(
            created.starts_with("{{ template \"base\" . }}\n"),
            "{created}"
        );
        assert!(
            created
                .contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmhttp]")
        );
        assert_eq!(add_to_k3s_template(Some(&created), 2).unwrap(), None);

        // an operator's own template keeps its content; a version change rewrites our block
        let own = "{{ template \"base\" . }}\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/registries\"\n";
        let with_ours = add_to_k3s_template(Some(own), 2).unwrap().unwrap();
        let v3 = add_to_k3s_template(Some(&with_ours), 3).unwrap().unwrap();
        assert!(
            v3.contains("io.containerd.cri.v1.runtime")
                && !v3.contains(
                    "runtimes.wasmhttp]\n  runtime_type = \"io.containerd.wasmhttp.v1\"\n\n#"
                )
        );
        assert_eq!(v3.matches(TEMPLATE_MARK).count(), 1, "{v3}");
        assert!(v3.contains("config_path = \"/etc/registries\""));

        assert_eq!(remove_from_k3s_template(&with_ours).unwrap(), own);
        assert_eq!(remove_from_k3s_template(own), None);
    }
}
