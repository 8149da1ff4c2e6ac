//! The cache format: the artifacts of one layer's programs behind a JSON
//! header that says which engine made them and where each program sits.

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use crate::footprint::Footprint;
use crate::world::World;

const MAGIC: &[u8] = b"WASMHTTP-PRECOMPILED\n";

/// The precompiled form of one layer.
#[derive(Debug, PartialEq, Eq)]
pub struct Bundle {
    pub cache_key: String,
    pub entries: Vec<Entry>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path in the rootfs for tar layers; `None` for a bare component layer.
    pub path: Option<String>,
    pub world: World,
    /// What an instance takes from the pool; absent in bundles of earlier
    /// versions (the program is then loaded once more to find out).
    pub footprint: Option<Footprint>,
    pub artifact: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    cache_key: String,
    entries: Vec<EntryHeader>,
}

#[derive(Serialize, Deserialize)]
struct EntryHeader {
    path: Option<String>,
    world: World,
    #[serde(default)]
    footprint: Option<Footprint>,
    len: u64,
}

impl Bundle {
    pub fn encode(&self) -> Vec<u8> {
        let header = Header {
            cache_key: self.cache_key.clone(),
            entries: self
                .entries
                .iter()
                .map(|e| EntryHeader {
                    path: e.path.clone(),
                    world: e.world,
                    footprint: e.footprint,
                    len: e.artifact.len() as u64,
                })
                .collect(),
        };
        let header = serde_json::to_vec(&header).expect("the header serialises");
        let mut out = Vec::with_capacity(
            MAGIC.len()
                + 4
                + header.len()
                + self.entries.iter().map(|e| e.artifact.len()).sum::<usize>(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for entry in &self.entries {
            out.extend_from_slice(&entry.artifact);
        }
        out
    }

    pub fn is_bundle(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .context("not a wasmhttp precompiled bundle")?;
        ensure!(rest.len() >= 4, "truncated precompiled bundle");
        let header_len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        let rest = &rest[4..];
        ensure!(
            rest.len() >= header_len,
            "truncated precompiled bundle header"
        );
        let header: Header =
            serde_json::from_slice(&rest[..header_len]).context("bad precompiled bundle header")?;
        let mut artifacts = &rest[header_len..];
        let mut entries = Vec::with_capacity(header.entries.len());
        for entry in header.entries {
            let len = usize::try_from(entry.len)?;
            ensure!(artifacts.len() >= len, "truncated precompiled artifact");
            let (artifact, tail) = artifacts.split_at(len);
            artifacts = tail;
            entries.push(Entry {
                path: entry.path,
                world: entry.world,
                footprint: entry.footprint,
                artifact: artifact.to_vec(),
            });
        }
        ensure!(
            artifacts.is_empty(),
            "trailing bytes after the precompiled artifacts"
        );
        Ok(Bundle {
            cache_key: header.cache_key,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_round_trips() {
        let bundle = Bundle {
            cache_key: "k".into(),
            entries: vec![
                Entry {
                    path: Some("/a.wasm".into()),
                    world: World::HttpHandler,
                    footprint: Some(Footprint {
                        memories: 3,
                        tables: 2,
                        largest_initial_memory: 1 << 20,
                        largest_initial_table: 7,
                    }),
                    artifact: vec![1, 2, 3],
                },
                Entry {
                    path: None,
                    world: World::Command,
                    footprint: None,
                    artifact: vec![],
                },
            ],
        };
        let bytes = bundle.encode();
        assert!(Bundle::is_bundle(&bytes));
        assert_eq!(Bundle::decode(&bytes).unwrap(), bundle);
        assert!(Bundle::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    /// A bundle written before footprints were kept still decodes.
    #[test]
    fn bundles_without_footprints_decode() {
        let header = br#"{"cache_key":"k","entries":[{"path":null,"world":"http-handler","source_sha256":"s","len":2}]}"#;
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[7, 8]);
        let bundle = Bundle::decode(&bytes).unwrap();
        assert_eq!(bundle.entries[0].footprint, None);
        assert_eq!(bundle.entries[0].artifact, vec![7, 8]);
    }
}
