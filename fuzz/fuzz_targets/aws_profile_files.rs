//! The AWS shared files an AWS KMS slot reads at `C_Initialize`: `~/.aws/credentials` and
//! `~/.aws/config` (`parse_ini`), and the credential chain over them (`find_source`) with
//! the environment variables that steer it. Also the two text fields of the credential
//! services' replies parsed without a JSON library (`xml_text` of an STS reply,
//! `parse_time` of an `Expiration`; `service_replies` reaches them through real requests).
//!
//! Input: `flags` (one byte: bit 0 the slot names a profile, bit 1 `AWS_PROFILE` is set,
//! bit 2 keys in the environment, bit 3 web identity in the environment, bit 4 instance
//! metadata disabled, bit 5 the profile name is `default`), then the credentials file, the
//! config file and a name, separated by 0xFF bytes. The files are written to a scratch
//! directory as they are (not UTF-8 too: the module then reads them as empty).
//!
//! Checked: section names are trimmed with single spaces, keys trimmed and lowercase, values
//! trimmed; a profile the slot names is the only place credentials come from (not the
//! environment, not instance metadata); credentials found have a key id and a secret.
#![no_main]

use std::sync::OnceLock;

use keyfront::backend::aws_kms::fuzzing::{find_source, parse_ini, parse_time, xml_text, Source};
use keyfront_fuzz::*;
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch_dir("aws_profile_files"))
}

fn check_ini(text: &str) {
    for (section, settings) in parse_ini(text) {
        assert_eq!(section, section.split_whitespace().collect::<Vec<_>>().join(" "), "section name {section:?}");
        for (key, value) in settings.iter() {
            assert_eq!(key.as_str(), key.trim(), "key {key:?}");
            assert!(!key.bytes().any(|b| b.is_ascii_uppercase()), "key {key:?} not lowercase");
            assert!(!key.contains('='), "key {key:?}");
            assert_eq!(value.as_str(), value.trim(), "value {:?}", value.as_str());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |b| *b == 0xff);
    let credentials = parts.next().unwrap_or_default();
    let config = parts.next().unwrap_or_default();
    let name_bytes = parts.next().unwrap_or_default();
    let name = String::from_utf8_lossy(name_bytes).into_owned();

    for text in [credentials, config] {
        if let Ok(text) = std::str::from_utf8(text) {
            check_ini(text);
        }
    }

    let dir = scratch();
    let (credentials_path, config_path) = (dir.join("credentials"), dir.join("config"));
    std::fs::write(&credentials_path, credentials).expect("write credentials");
    std::fs::write(&config_path, config).expect("write config");
    let profile_name = if flags & 0x20 != 0 { "default".to_string() } else { name.clone() };
    let mut vars: Vec<(&str, String)> = vec![
        ("AWS_SHARED_CREDENTIALS_FILE", credentials_path.display().to_string()),
        ("AWS_CONFIG_FILE", config_path.display().to_string()),
        ("HOME", dir.display().to_string()),
    ];
    if flags & 0x02 != 0 {
        vars.push(("AWS_PROFILE", profile_name.clone()));
    }
    if flags & 0x04 != 0 {
        vars.push(("AWS_ACCESS_KEY_ID", "AKIDENV".into()));
        vars.push(("AWS_SECRET_ACCESS_KEY", "env-secret".into()));
    }
    if flags & 0x08 != 0 {
        vars.push(("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token".into()));
        vars.push(("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/env".into()));
    }
    if flags & 0x10 != 0 {
        vars.push(("AWS_EC2_METADATA_DISABLED", "true".into()));
    }
    // The process environment treats empty values as unset; so does this one.
    let env = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let slot_profile = (flags & 0x01 != 0).then_some(profile_name.as_str());
    let source = find_source(&env, slot_profile, "us-east-1");
    debug!("profile {slot_profile:?}: {}", source.describe());
    match &source {
        Source::Fixed { credentials, from } => {
            assert!(!credentials.access_key_id().is_empty() && !credentials.secret_access_key().is_empty(), "empty keys from {from}");
            if let Some(p) = slot_profile {
                assert_eq!(from, &format!("profile {p}"), "the slot's profile {p:?} but keys from {from}");
            }
        }
        Source::InstanceMetadata { .. } => {
            assert!(slot_profile.is_none(), "the slot names a profile but instance metadata is asked");
            assert!(flags & 0x10 == 0, "instance metadata although disabled");
        }
        Source::WebIdentity(w) => assert!(!w.role_arn.is_empty() && !w.token_file.as_os_str().is_empty()),
        Source::Nothing(why) => assert!(!why.is_empty()),
    }

    let _ = parse_time(&name);
    let _ = xml_text(&name, "Code");
});
