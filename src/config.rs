//! The configuration: which slots exist and what backs each one. Read once per
//! `C_Initialize` from the TOML file named by `KEYFRONT_CONFIG`, or the embedded default.

use std::path::{Path, PathBuf};

use cryptoki_sys::{CK_MECHANISM_TYPE, CK_SLOT_ID};
use serde::Deserialize;

use crate::backend::soft::{DEFAULT_KDF_ITERATIONS, MAX_KDF_ITERATIONS, MIN_KDF_ITERATIONS};
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
    Pkcs11(Pkcs11SlotConfig),
}

/// A slot that forwards to a token of another PKCS#11 module.
#[derive(Clone, Debug, Default)]
pub struct Pkcs11SlotConfig {
    /// The vendor module to load.
    pub module: PathBuf,
    /// Which of its tokens: by label, serial number or slot id (the first given wins).
    pub token_label: Option<String>,
    pub serial: Option<String>,
    pub slot_id: Option<CK_SLOT_ID>,
    /// Passed as `pReserved` of `CK_C_INITIALIZE_ARGS` (NSS softokn reads its
    /// `configdir=…` there).
    pub init_args: Option<String>,
    /// Most vendor sessions kept open at once.
    pub max_sessions: usize,
    /// Retries of an idempotent call after the vendor lost its session or device.
    pub retry_attempts: u32,
    pub retry_delay_ms: u64,
    /// Mechanisms the slot offers; empty means all the vendor offers.
    pub allow: Vec<CK_MECHANISM_TYPE>,
    /// Refuse to create extractable private or secret keys.
    pub deny_extractable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    slot: Vec<SlotSection>,
}

/// One `[[slot]]` table. Flat, not an internally tagged enum, so that toml reports errors at
/// the line of the offending key; `check_keys` then refuses keys of another kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotSection {
    kind: Kind,
    label: Option<String>,
    id: Option<CK_SLOT_ID>,
    // soft
    path: Option<PathBuf>,
    pin_kdf_iterations: Option<u32>,
    rsa_pkcs1v15_decrypt: Option<bool>,
    // pkcs11
    module: Option<PathBuf>,
    token_label: Option<String>,
    serial: Option<String>,
    slot_id: Option<CK_SLOT_ID>,
    init_args: Option<String>,
    max_sessions: Option<usize>,
    retry_attempts: Option<u32>,
    retry_delay_ms: Option<u64>,
    allow: Option<Vec<String>>,
    deny_extractable: Option<bool>,
}

#[derive(Deserialize, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Soft,
    Pkcs11,
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
        let slot = slot_config(index, section)?;
        if slots.iter().any(|s: &SlotConfig| s.id == slot.id) {
            return Err(format!("slot {index}: slot id {} is used twice", slot.id));
        }
        slots.push(slot);
    }
    Ok(slots)
}

fn slot_config(index: usize, section: SlotSection) -> std::result::Result<SlotConfig, String> {
    let named = |what: &str, present: bool| if present { Some(what.to_string()) } else { None };
    let id = section.id.unwrap_or(index as CK_SLOT_ID);
    let kind = match section.kind {
        Kind::Soft => {
            let foreign = [
                named("module", section.module.is_some()),
                named("token_label", section.token_label.is_some()),
                named("serial", section.serial.is_some()),
                named("slot_id", section.slot_id.is_some()),
                named("init_args", section.init_args.is_some()),
                named("max_sessions", section.max_sessions.is_some()),
                named("retry_attempts", section.retry_attempts.is_some()),
                named("retry_delay_ms", section.retry_delay_ms.is_some()),
                named("allow", section.allow.is_some()),
                named("deny_extractable", section.deny_extractable.is_some()),
            ];
            if let Some(key) = foreign.into_iter().flatten().next() {
                return Err(format!("slot {index}: `{key}` is not a key of kind \"soft\""));
            }
            let path = section.path.ok_or_else(|| format!("slot {index}: kind \"soft\" needs `path`"))?;
            let kdf_iterations = section.pin_kdf_iterations.unwrap_or(DEFAULT_KDF_ITERATIONS);
            if !(MIN_KDF_ITERATIONS..=MAX_KDF_ITERATIONS).contains(&kdf_iterations) {
                return Err(format!(
                    "slot {index}: pin_kdf_iterations {kdf_iterations} is outside {MIN_KDF_ITERATIONS}..={MAX_KDF_ITERATIONS}"
                ));
            }
            SlotKind::Soft { path, kdf_iterations }
        }
        Kind::Pkcs11 => {
            let foreign = [named("path", section.path.is_some()), named("pin_kdf_iterations", section.pin_kdf_iterations.is_some())];
            if let Some(key) = foreign.into_iter().flatten().next() {
                return Err(format!("slot {index}: `{key}` is not a key of kind \"pkcs11\""));
            }
            let module = section.module.ok_or_else(|| format!("slot {index}: kind \"pkcs11\" needs `module`"))?;
            let allow = section
                .allow
                .unwrap_or_default()
                .iter()
                .map(|name| mechanism_by_name(name).ok_or_else(|| format!("slot {index}: unknown mechanism `{name}` in allow")))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            SlotKind::Pkcs11(Pkcs11SlotConfig {
                module,
                token_label: section.token_label,
                serial: section.serial,
                slot_id: section.slot_id,
                init_args: section.init_args,
                max_sessions: section.max_sessions.unwrap_or(16).max(1),
                retry_attempts: section.retry_attempts.unwrap_or(2),
                retry_delay_ms: section.retry_delay_ms.unwrap_or(50),
                allow,
                deny_extractable: section.deny_extractable.unwrap_or(false),
            })
        }
    };
    let default_label = match kind {
        SlotKind::Soft { .. } => "keyfront soft token",
        SlotKind::Pkcs11(_) => "keyfront forwarded token",
    };
    Ok(SlotConfig {
        id,
        label: section.label.unwrap_or_else(|| default_label.into()),
        kind,
        policy: SlotPolicy { rsa_pkcs1v15_decrypt: section.rsa_pkcs1v15_decrypt.unwrap_or(true) },
    })
}

/// A mechanism named as in the PKCS#11 headers (`CKM_AES_GCM`) or as a number (`0x1087`).
fn mechanism_by_name(name: &str) -> Option<CK_MECHANISM_TYPE> {
    if let Some(hex) = name.strip_prefix("0x") {
        return CK_MECHANISM_TYPE::from_str_radix(hex, 16).ok();
    }
    crate::names::MECHANISM_NAMES.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
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

    #[test]
    fn parses_forwarding_slots() {
        let slots = parse(
            "[[slot]]\nkind = \"pkcs11\"\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken_label = \"fwd\"\nallow = [\"CKM_AES_GCM\", \"0x1087\"]\ndeny_extractable = true\n",
        )
        .unwrap();
        let SlotKind::Pkcs11(cfg) = &slots[0].kind else { panic!("not a forwarding slot") };
        assert_eq!(cfg.token_label.as_deref(), Some("fwd"));
        assert_eq!(cfg.allow, vec![cryptoki_sys::CKM_AES_GCM, 0x1087]);
        assert!(cfg.deny_extractable);
        assert_eq!((cfg.max_sessions, cfg.retry_attempts), (16, 2));
        let err = parse("[[slot]]\nkind = \"pkcs11\"\nmodule = \"x.so\"\nallow = [\"CKM_NOPE\"]\n").unwrap_err();
        assert!(err.contains("unknown mechanism `CKM_NOPE`"), "{err}");
        let err = parse("[[slot]]\nkind = \"soft\"\npath = \"a.db\"\nmodule = \"x.so\"\n").unwrap_err();
        assert!(err.contains("`module` is not a key of kind \"soft\""), "{err}");
        assert!(parse("[[slot]]\nkind = \"pkcs11\"\n").unwrap_err().contains("needs `module`"));
    }
}
