//! The configuration: which slots exist and what backs each one. Read once per
//! `C_Initialize` from the TOML file named by `KEYFRONT_CONFIG`, or the embedded default.

use std::path::{Path, PathBuf};

use cryptoki_sys::CK_SLOT_ID;
use serde::Deserialize;

use crate::backend::soft::{DEFAULT_KDF_ITERATIONS, MIN_KDF_ITERATIONS};
use crate::core::SlotPolicy;
use crate::error::{Error, Result};

/// One configured slot.
#[derive(Clone, Debug)]
pub struct SlotConfig {
    pub id: CK_SLOT_ID,
    /// Slot description, and the token label before `C_InitToken`.
    pub label: String,
    pub kind: SlotKind,
    pub policy: SlotPolicy,
}

#[derive(Clone, Debug)]
pub enum SlotKind {
    Soft { path: PathBuf, kdf_iterations: u32 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    slot: Vec<SlotSection>,
}

/// One `[[slot]]` table. Flat, not an internally tagged enum, so that toml reports errors at
/// the line of the offending key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotSection {
    kind: Kind,
    path: PathBuf,
    label: Option<String>,
    id: Option<CK_SLOT_ID>,
    pin_kdf_iterations: Option<u32>,
    /// Allow `CKM_RSA_PKCS` decryption and unwrapping (default true).
    rsa_pkcs1v15_decrypt: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Soft,
}

/// The slots to present: from `KEYFRONT_CONFIG` if set, else one soft token in the data
/// directory.
pub fn load() -> Result<Vec<SlotConfig>> {
    match std::env::var_os("KEYFRONT_CONFIG") {
        Some(path) if !path.is_empty() => load_file(Path::new(&path)),
        _ => Ok(vec![default_slot()?]),
    }
}

pub fn load_file(path: &Path) -> Result<Vec<SlotConfig>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{}: cannot read: {e}", path.display())))?;
    parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// Parses a configuration; the error names the line and the problem.
pub fn parse(text: &str) -> std::result::Result<Vec<SlotConfig>, String> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
        match line {
            Some(l) => format!("line {l}: {}", e.message()),
            None => e.message().to_string(),
        }
    })?;
    if file.slot.is_empty() {
        return Err("no [[slot]] defined".into());
    }
    let mut slots = Vec::new();
    for (index, section) in file.slot.into_iter().enumerate() {
        let SlotSection { kind: Kind::Soft, path, label, id, pin_kdf_iterations, rsa_pkcs1v15_decrypt } = section;
        let kdf_iterations = pin_kdf_iterations.unwrap_or(DEFAULT_KDF_ITERATIONS);
        if kdf_iterations < MIN_KDF_ITERATIONS {
            return Err(format!(
                "slot {index}: pin_kdf_iterations {kdf_iterations} is below the minimum {MIN_KDF_ITERATIONS}"
            ));
        }
        let slot = SlotConfig {
            id: id.unwrap_or(index as CK_SLOT_ID),
            label: label.unwrap_or_else(|| "keyfront soft token".into()),
            kind: SlotKind::Soft { path, kdf_iterations },
            policy: SlotPolicy { rsa_pkcs1v15_decrypt: rsa_pkcs1v15_decrypt.unwrap_or(true) },
        };
        if slots.iter().any(|s: &SlotConfig| s.id == slot.id) {
            return Err(format!("slot {index}: slot id {} is used twice", slot.id));
        }
        slots.push(slot);
    }
    Ok(slots)
}

/// `$KEYFRONT_DATA_DIR`, else `$XDG_DATA_HOME/keyfront`, else `~/.local/share/keyfront`.
pub fn data_dir() -> Result<PathBuf> {
    let from_env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = from_env("KEYFRONT_DATA_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = from_env("XDG_DATA_HOME") {
        return Ok(dir.join("keyfront"));
    }
    from_env("HOME")
        .map(|home| home.join(".local/share/keyfront"))
        .ok_or_else(|| Error::Config("no KEYFRONT_DATA_DIR, XDG_DATA_HOME or HOME to keep the token in".into()))
}

fn default_slot() -> Result<SlotConfig> {
    Ok(SlotConfig {
        id: 0,
        label: "keyfront".into(),
        kind: SlotKind::Soft { path: data_dir()?.join("soft.db"), kdf_iterations: DEFAULT_KDF_ITERATIONS },
        policy: SlotPolicy::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_slots_with_ids_and_defaults() {
        let slots = parse(
            "[[slot]]\nkind = \"soft\"\npath = \"/tmp/a.db\"\n\n[[slot]]\nkind = \"soft\"\npath = \"/tmp/b.db\"\nid = 9\nlabel = \"b\"\npin_kdf_iterations = 1000\n",
        )
        .unwrap();
        assert_eq!(slots.iter().map(|s| s.id).collect::<Vec<_>>(), vec![0, 9]);
        assert_eq!(slots[1].label, "b");
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("[[slot]]\nkind = \"soft\"\npath = \"/tmp/a.db\"\ncolour = 3\n").unwrap_err();
        assert!(err.starts_with("line 4: unknown field `colour`"), "{err}");
        let err = parse("[[slot]]\nkind = \"soft\"\npath = 3\n").unwrap_err();
        assert!(err.starts_with("line 3: "), "{err}");
        let err = parse("[[slot]]\nkind = \"cloud\"\npath = \"x\"\n").unwrap_err();
        assert!(err.starts_with("line "), "{err}");
        assert!(parse("[[slot]]\nkind=\"soft\"\npath=\"a\"\nid=1\n[[slot]]\nkind=\"soft\"\npath=\"b\"\nid=1\n").is_err());
        assert!(parse("[[slot]]\nkind=\"soft\"\npath=\"a\"\npin_kdf_iterations=10\n").is_err());
    }
}
