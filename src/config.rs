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
    AwsKms(AwsKmsSlotConfig),
    VaultTransit(VaultSlotConfig),
}

impl SlotKind {
    /// Relative file paths are taken from the configuration file's folder, not from the
    /// working directory of whichever program loads the module (the same file would name
    /// another token for each). A vendor module given by bare name (no `/`) is left to the
    /// dynamic loader's search, as `dlopen` does.
    fn rebase(&mut self, dir: &Path) {
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        match self {
            SlotKind::Soft { path, .. } => rebase(path),
            SlotKind::Pkcs11(f) => {
                if f.module.components().count() > 1 {
                    rebase(&mut f.module);
                }
            }
            SlotKind::AwsKms(a) => a.cloud.ca_file.iter_mut().for_each(rebase),
            SlotKind::VaultTransit(v) => {
                v.cloud.ca_file.iter_mut().for_each(rebase);
                v.token_file.iter_mut().for_each(rebase);
            }
        }
    }
}

/// What every cloud slot has.
#[derive(Clone, Debug)]
pub struct CloudSlotConfig {
    /// SHA-256 of the PIN `C_Login` must get; `None`: any PIN logs in.
    pub pin_sha256: Option<[u8; 32]>,
    /// How long the key list and public keys are reused before the service is asked again.
    pub refresh_interval_s: u64,
    /// Retries of a throttled or failed (5xx, no connection) request.
    pub retry_attempts: u32,
    /// The longest one call to the service takes, retries included.
    pub timeout_ms: u64,
    /// PEM certificates to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Show a self-signed certificate object for each signing key (Java needs one).
    pub certificates: bool,
}

impl Default for CloudSlotConfig {
    fn default() -> Self {
        CloudSlotConfig {
            pin_sha256: None,
            refresh_interval_s: 300,
            retry_attempts: 3,
            timeout_ms: 10_000,
            ca_file: None,
            certificates: false,
        }
    }
}

/// A slot showing AWS KMS keys.
#[derive(Clone, Debug, Default)]
pub struct AwsKmsSlotConfig {
    pub region: String,
    /// Another endpoint than `https://kms.<region>.amazonaws.com` (a local test server, a VPC
    /// endpoint).
    pub endpoint: Option<String>,
    /// The credentials profile (`~/.aws/credentials`, `~/.aws/config`); else `AWS_PROFILE`,
    /// else `default`.
    pub profile: Option<String>,
    /// Show only keys with an alias starting with this (e.g. `alias/app-`).
    pub alias_prefix: Option<String>,
    /// Show only keys carrying this tag (key, value).
    pub tag: Option<(String, String)>,
    pub cloud: CloudSlotConfig,
}

/// A slot showing the keys of a HashiCorp Vault or OpenBao transit engine.
#[derive(Clone, Debug, Default)]
pub struct VaultSlotConfig {
    /// `https://vault.example:8200`.
    pub address: String,
    /// The transit engine's mount path; default `transit`.
    pub mount: String,
    /// Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    pub namespace: Option<String>,
    /// A file holding the token; else `VAULT_TOKEN`.
    pub token_file: Option<PathBuf>,
    pub cloud: CloudSlotConfig,
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
    /// Each with the place of its `[[slot]]` header, which problems found after parsing name.
    #[serde(default)]
    slot: Vec<toml::Spanned<SlotSection>>,
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
    // cloud (aws-kms, vault-transit)
    region: Option<String>,
    endpoint: Option<String>,
    profile: Option<String>,
    alias_prefix: Option<String>,
    tag: Option<String>,
    address: Option<String>,
    mount: Option<String>,
    namespace: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    pin_sha256: Option<String>,
    refresh_interval_s: Option<u64>,
    timeout_ms: Option<u64>,
    certificates: Option<bool>,
}

impl SlotSection {
    /// The kind-specific keys present in this section.
    fn present_keys(&self) -> Vec<&'static str> {
        let keys = [
            ("path", self.path.is_some()),
            ("pin_kdf_iterations", self.pin_kdf_iterations.is_some()),
            ("module", self.module.is_some()),
            ("token_label", self.token_label.is_some()),
            ("serial", self.serial.is_some()),
            ("slot_id", self.slot_id.is_some()),
            ("init_args", self.init_args.is_some()),
            ("max_sessions", self.max_sessions.is_some()),
            ("retry_attempts", self.retry_attempts.is_some()),
            ("retry_delay_ms", self.retry_delay_ms.is_some()),
            ("allow", self.allow.is_some()),
            ("deny_extractable", self.deny_extractable.is_some()),
            ("region", self.region.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("profile", self.profile.is_some()),
            ("alias_prefix", self.alias_prefix.is_some()),
            ("tag", self.tag.is_some()),
            ("address", self.address.is_some()),
            ("mount", self.mount.is_some()),
            ("namespace", self.namespace.is_some()),
            ("token_file", self.token_file.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("pin_sha256", self.pin_sha256.is_some()),
            ("refresh_interval_s", self.refresh_interval_s.is_some()),
            ("timeout_ms", self.timeout_ms.is_some()),
            ("certificates", self.certificates.is_some()),
        ];
        keys.into_iter().filter(|(_, present)| *present).map(|(k, _)| k).collect()
    }

    fn cloud(&self) -> std::result::Result<CloudSlotConfig, String> {
        let pin_sha256 = match &self.pin_sha256 {
            None => None,
            Some(hex) => Some(parse_sha256(hex).ok_or("pin_sha256 must be 64 hex digits")?),
        };
        let defaults = CloudSlotConfig::default();
        Ok(CloudSlotConfig {
            pin_sha256,
            refresh_interval_s: self.refresh_interval_s.unwrap_or(defaults.refresh_interval_s),
            retry_attempts: self.retry_attempts.unwrap_or(defaults.retry_attempts),
            timeout_ms: self.timeout_ms.unwrap_or(defaults.timeout_ms).max(1),
            ca_file: self.ca_file.clone(),
            certificates: self.certificates.unwrap_or(defaults.certificates),
        })
    }
}

/// The keys each kind takes besides `kind`, `label`, `id` and `rsa_pkcs1v15_decrypt`.
const SOFT_KEYS: &[&str] = &["path", "pin_kdf_iterations"];
const PKCS11_KEYS: &[&str] =
    &["module", "token_label", "serial", "slot_id", "init_args", "max_sessions", "retry_attempts", "retry_delay_ms", "allow", "deny_extractable"];
const AWS_KMS_KEYS: &[&str] =
    &["region", "endpoint", "profile", "alias_prefix", "tag", "ca_file", "pin_sha256", "refresh_interval_s", "retry_attempts", "timeout_ms", "certificates"];
const VAULT_KEYS: &[&str] =
    &["address", "mount", "namespace", "token_file", "ca_file", "pin_sha256", "refresh_interval_s", "retry_attempts", "timeout_ms", "certificates"];

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[derive(Deserialize, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Soft,
    Pkcs11,
    AwsKms,
    VaultTransit,
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
    let mut slots = parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    // Absolute before rebasing: `KEYFRONT_CONFIG=keyfront.toml` has an empty folder, and the
    // files are opened later, perhaps after the host changed its working directory.
    if let Some(dir) = absolute(path.to_path_buf()).parent() {
        for slot in &mut slots {
            slot.kind.rebase(dir);
        }
    }
    Ok(slots)
}

/// Parses a configuration; the error names the line and the problem. A problem toml does not
/// see (a missing key, a key of another kind, a value out of range, an id used twice) is
/// reported at the line of its slot's `[[slot]]`.
pub fn parse(text: &str) -> std::result::Result<Vec<SlotConfig>, String> {
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let file: ConfigFile = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => format!("line {}: {}", line_of(span.start), e.message()),
        None => e.message().to_string(),
    })?;
    if file.slot.is_empty() {
        return Err("no [[slot]] defined".into());
    }
    let mut slots: Vec<(usize, SlotConfig)> = Vec::new();
    for (index, section) in file.slot.into_iter().enumerate() {
        let line = line_of(section.span().start);
        let slot = slot_config(index, section.into_inner()).map_err(|e| format!("line {line}: slot {index}: {e}"))?;
        if let Some((first, _)) = slots.iter().find(|(_, s)| s.id == slot.id) {
            return Err(format!("line {line}: slot {index}: slot id {} is used twice (first at line {first})", slot.id));
        }
        slots.push((line, slot));
    }
    let weak: Vec<String> = slots
        .iter()
        .filter(|(_, s)| matches!(s.kind, SlotKind::Soft { kdf_iterations, .. } if kdf_iterations < DEFAULT_KDF_ITERATIONS))
        .map(|(line, s)| format!("slot {} (line {line})", s.id))
        .collect();
    if !weak.is_empty() {
        // Allowed, for tests and benchmarks; a PIN guessed offline from a stolen token file
        // costs an attacker that many times less. Said once per process and configuration,
        // not at every C_Initialize of a process that initialises again and again.
        let message = format!(
            "pin_kdf_iterations below the recommended {DEFAULT_KDF_ITERATIONS} for {}: PINs set there are cheaper to guess from a copy of the token file",
            weak.join(", ")
        );
        if first_time(&WEAK_KDF_WARNED, &message) {
            tracing::warn!("{message}");
        }
    }
    Ok(slots.into_iter().map(|(_, s)| s).collect())
}

fn slot_config(index: usize, section: SlotSection) -> std::result::Result<SlotConfig, String> {
    let id = section.id.unwrap_or(index as CK_SLOT_ID);
    let (kind_name, allowed) = match section.kind {
        Kind::Soft => ("soft", SOFT_KEYS),
        Kind::Pkcs11 => ("pkcs11", PKCS11_KEYS),
        Kind::AwsKms => ("aws-kms", AWS_KMS_KEYS),
        Kind::VaultTransit => ("vault-transit", VAULT_KEYS),
    };
    if let Some(key) = section.present_keys().into_iter().find(|k| !allowed.contains(k)) {
        return Err(format!("`{key}` is not a key of kind \"{kind_name}\""));
    }
    let kind = match section.kind {
        Kind::Soft => {
            let path = section.path.ok_or("kind \"soft\" needs `path`")?;
            let kdf_iterations = section.pin_kdf_iterations.unwrap_or(DEFAULT_KDF_ITERATIONS);
            if !(MIN_KDF_ITERATIONS..=MAX_KDF_ITERATIONS).contains(&kdf_iterations) {
                return Err(format!("pin_kdf_iterations {kdf_iterations} is outside {MIN_KDF_ITERATIONS}..={MAX_KDF_ITERATIONS}"));
            }
            SlotKind::Soft { path, kdf_iterations }
        }
        Kind::Pkcs11 => {
            let module = section.module.ok_or("kind \"pkcs11\" needs `module`")?;
            let allow = section
                .allow
                .unwrap_or_default()
                .iter()
                .map(|name| mechanism_by_name(name).ok_or_else(|| format!("unknown mechanism `{name}` in allow")))
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
        Kind::AwsKms => {
            let tag = match &section.tag {
                None => None,
                Some(t) => match t.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Some((k.to_string(), v.to_string())),
                    _ => return Err("tag must be \"key=value\"".into()),
                },
            };
            let region = section
                .region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok().filter(|r| !r.is_empty()))
                .ok_or("kind \"aws-kms\" needs `region` (or AWS_REGION)")?;
            SlotKind::AwsKms(AwsKmsSlotConfig {
                region,
                endpoint: section.endpoint.clone(),
                profile: section.profile.clone(),
                alias_prefix: section.alias_prefix.clone(),
                tag,
                cloud: section.cloud()?,
            })
        }
        Kind::VaultTransit => {
            let address = section
                .address
                .clone()
                .or_else(|| std::env::var("VAULT_ADDR").ok().filter(|a| !a.is_empty()))
                .ok_or("kind \"vault-transit\" needs `address` (or VAULT_ADDR)")?;
            SlotKind::VaultTransit(VaultSlotConfig {
                address: address.trim_end_matches('/').to_string(),
                mount: section.mount.clone().unwrap_or_else(|| "transit".into()).trim_matches('/').to_string(),
                namespace: section.namespace.clone(),
                token_file: section.token_file.clone(),
                cloud: section.cloud()?,
            })
        }
    };
    let default_label = match kind {
        SlotKind::Soft { .. } => "keyfront soft token",
        SlotKind::Pkcs11(_) => "keyfront forwarded token",
        SlotKind::AwsKms(_) => "keyfront AWS KMS",
        SlotKind::VaultTransit(_) => "keyfront Vault Transit",
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
/// Made absolute here, once: the token file is opened later, on first use, and a host may
/// have changed its working directory by then (daemons do).
pub fn data_dir() -> Result<PathBuf> {
    data_dir_from(|name| std::env::var_os(name)).map(absolute)
}

/// `path` from the current working directory, now (unchanged if that cannot be read).
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// `data_dir` with the environment given by `var`.
fn data_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf> {
    let from_env = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = from_env("KEYFRONT_DATA_DIR") {
        return Ok(dir);
    }
    match from_env("XDG_DATA_HOME") {
        Some(dir) if dir.is_absolute() => return Ok(dir.join("keyfront")),
        // The XDG Base Directory specification: a relative path there is invalid and to be
        // ignored (it would name a different place in each working directory).
        Some(dir) => tracing::warn!("XDG_DATA_HOME={} is not an absolute path: ignored", dir.display()),
        None => {}
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

/// The last weak-KDF warning given, as a hash (an atomic, not a lock: a forked child must
/// never find it held).
static WEAK_KDF_WARNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether `message` differs from the one `last` saw before; records it.
fn first_time(last: &std::sync::atomic::AtomicU64, message: &str) -> bool {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    message.hash(&mut hasher);
    let hash = hasher.finish();
    last.swap(hash, std::sync::atomic::Ordering::Relaxed) != hash
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
    }

    /// Problems found after toml has parsed the file are reported at the line of their
    /// slot's `[[slot]]` header.
    #[test]
    fn later_errors_name_the_slot_line() {
        // A good slot on lines 1-4 (and a comment), then the one under test from line 7.
        let good = "[[slot]]\nkind = \"soft\"\npath = \"/tmp/a.db\"\nid = 1\n# the next slot\n\n";
        let cases = [
            ("[[slot]]\nkind = \"soft\"\nlabel = \"x\"\n", "line 7: slot 1: kind \"soft\" needs `path`"),
            ("[[slot]]\nkind = \"pkcs11\"\n", "line 7: slot 1: kind \"pkcs11\" needs `module`"),
            ("[[slot]]\nkind = \"soft\"\npath = \"b\"\nmodule = \"x.so\"\n", "line 7: slot 1: `module` is not a key of kind \"soft\""),
            ("[[slot]]\nkind = \"soft\"\npath = \"b\"\npin_kdf_iterations = 10\n", "line 7: slot 1: pin_kdf_iterations 10 is outside 1000..=20000000"),
            ("[[slot]]\nkind = \"soft\"\npath = \"b\"\nid = 1\n", "line 7: slot 1: slot id 1 is used twice (first at line 1)"),
            ("[[slot]]\nkind = \"soft\"\npath = \"b\"\n", "line 7: slot 1: slot id 1 is used twice (first at line 1)"),
            ("[[slot]]\nkind = \"pkcs11\"\nmodule = \"x.so\"\nallow = [\"CKM_NOPE\"]\n", "line 7: slot 1: unknown mechanism `CKM_NOPE` in allow"),
            ("[[slot]]\nkind = \"aws-kms\"\nregion = \"eu-west-1\"\ntag = \"novalue\"\n", "line 7: slot 1: tag must be \"key=value\""),
            ("[[slot]]\nkind = \"aws-kms\"\nregion = \"eu-west-1\"\npin_sha256 = \"abc\"\n", "line 7: slot 1: pin_sha256 must be 64 hex digits"),
            ("[[slot]]\nkind = \"vault-transit\"\naddress = \"http://127.0.0.1:8200\"\npin_sha256 = \"zz\"\n", "line 7: slot 1: pin_sha256 must be 64 hex digits"),
        ];
        for (slot, want) in cases {
            assert_eq!(parse(&format!("{good}{slot}")).unwrap_err(), want, "for:\n{slot}");
        }
        // The header's own line, not the first line of the file.
        let err = parse("# keyfront\n\n[[slot]]\nkind = \"soft\"\n").unwrap_err();
        assert_eq!(err, "line 3: slot 0: kind \"soft\" needs `path`");
    }

    #[test]
    fn low_kdf_iterations_are_allowed_with_a_warning() {
        let text = "[[slot]]\nkind = \"soft\"\npath = \"a\"\nid = 4\npin_kdf_iterations = 1000\n\n[[slot]]\nkind = \"soft\"\npath = \"b\"\n\n[[slot]]\nkind = \"soft\"\npath = \"c\"\npin_kdf_iterations = 599999\n";
        let (log, slots) = crate::logging::capture::logged(tracing_subscriber::EnvFilter::new("warn"), || parse(text));
        let iterations: Vec<u32> = slots
            .unwrap()
            .iter()
            .map(|s| match s.kind {
                SlotKind::Soft { kdf_iterations, .. } => kdf_iterations,
                _ => panic!("not soft"),
            })
            .collect();
        assert_eq!(iterations, vec![1000, 600_000, 599_999]);
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains("WARN") && log.contains("below the recommended 600000 for slot 4 (line 1), slot 2 (line 11)"), "{log}");
        let (log, _) = crate::logging::capture::logged(tracing_subscriber::EnvFilter::new("warn"), || {
            parse("[[slot]]\nkind = \"soft\"\npath = \"a\"\npin_kdf_iterations = 600000\n").unwrap()
        });
        assert_eq!(log, "", "600,000 and up is not warned about");
    }

    #[test]
    fn relative_paths_are_taken_from_the_configuration_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyfront.toml");
        std::fs::write(
            &file,
            "[[slot]]\nkind = \"soft\"\npath = \"tokens/a.db\"\n\n\
             [[slot]]\nkind = \"soft\"\npath = \"/var/lib/b.db\"\n\n\
             [[slot]]\nkind = \"pkcs11\"\nmodule = \"libsofthsm2.so\"\ntoken_label = \"t\"\n\n\
             [[slot]]\nkind = \"pkcs11\"\nmodule = \"vendor/lib.so\"\ntoken_label = \"t\"\n\n\
             [[slot]]\nkind = \"vault-transit\"\naddress = \"https://v:8200\"\ntoken_file = \"token\"\nca_file = \"ca.pem\"\n",
        )
        .unwrap();
        let slots = load_file(&file).unwrap();
        let d = dir.path();
        assert!(matches!(&slots[0].kind, SlotKind::Soft { path, .. } if *path == d.join("tokens/a.db")));
        assert!(matches!(&slots[1].kind, SlotKind::Soft { path, .. } if *path == Path::new("/var/lib/b.db")));
        assert!(matches!(&slots[2].kind, SlotKind::Pkcs11(f) if f.module == Path::new("libsofthsm2.so")), "a bare name is the loader's to find");
        assert!(matches!(&slots[3].kind, SlotKind::Pkcs11(f) if f.module == d.join("vendor/lib.so")));
        let SlotKind::VaultTransit(v) = &slots[4].kind else { panic!("not vault") };
        assert_eq!(v.token_file.as_deref(), Some(d.join("token").as_path()));
        assert_eq!(v.cloud.ca_file.as_deref(), Some(d.join("ca.pem").as_path()));
    }

    #[test]
    fn a_relative_configuration_path_still_gives_absolute_paths() {
        // A folder under the working directory (the crate's root under cargo test), named
        // relative to it: no chdir, which would move every other test too.
        std::fs::create_dir_all("target").unwrap();
        let dir = tempfile::tempdir_in("target").unwrap();
        let relative_dir = Path::new("target").join(dir.path().file_name().unwrap());
        std::fs::write(relative_dir.join("k.toml"), "[[slot]]\nkind = \"soft\"\npath = \"a.db\"\n").unwrap();
        let slots = load_file(&relative_dir.join("k.toml")).unwrap();
        let want = std::env::current_dir().unwrap().join(&relative_dir).join("a.db");
        assert!(matches!(&slots[0].kind, SlotKind::Soft { path, .. } if *path == want), "{:?}", slots[0].kind);
    }

    #[test]
    fn data_dir_ignores_a_relative_xdg_data_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| std::ffi::OsString::from(v))
        };
        let dir = |pairs| data_dir_from(env(pairs)).unwrap();
        assert_eq!(dir(&[("KEYFRONT_DATA_DIR", "kd"), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")]), PathBuf::from("kd"));
        assert_eq!(dir(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")]), PathBuf::from("/x/keyfront"));
        assert_eq!(dir(&[("XDG_DATA_HOME", "x/data"), ("HOME", "/h")]), PathBuf::from("/h/.local/share/keyfront"));
        assert_eq!(dir(&[("XDG_DATA_HOME", ""), ("HOME", "/h")]), PathBuf::from("/h/.local/share/keyfront"));
        assert!(data_dir_from(env(&[("XDG_DATA_HOME", "relative")])).is_err(), "a relative XDG_DATA_HOME alone is no data directory");
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
    }
}
