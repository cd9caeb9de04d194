//! Where the AWS credentials come from: the standard chain, read once when the slot is made
//! (no network then), with the two sources that need a request (web identity through STS,
//! EC2 instance metadata) fetched at first use and kept until shortly before they expire.
//!
//! Order, as the AWS CLI: the slot's `profile` alone when it names one; else the environment
//! keys, then the profile of `AWS_PROFILE` (or `default`) in the shared files, then web
//! identity from the environment, then the instance metadata service (IMDSv2).
//! Not supported: `credential_process`, SSO, `role_arn` + `source_profile` chains, ECS
//! container credentials. Nothing secret is logged; secrets live in `Zeroizing` buffers
//! (the `Credentials` type zeroizes its own copies).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use cryptoki_sys::*;
use parking_lot::Mutex;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::backend::cloud::http::{is_throttled_or_5xx, HttpClient, Request, RetryPolicy};
use crate::error::{Error, Result};

/// Refresh temporary credentials this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// After a failed fetch, callers get the same failure for this long before another try.
const FAILURE_HOLD: Duration = Duration::from_secs(30);
const IMDS_DEFAULT: &str = "http://169.254.169.254";

/// Reads one environment variable (the process environment, or a map in tests).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, empty values treated as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Web identity federation: a token file (Kubernetes service-account token, GitHub OIDC…)
/// exchanged for temporary credentials with STS AssumeRoleWithWebIdentity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebIdentity {
    pub token_file: PathBuf,
    pub role_arn: String,
    pub session_name: String,
    /// `https://sts.<region>.amazonaws.com`, or `AWS_ENDPOINT_URL_STS`.
    pub sts_endpoint: String,
}

/// The source the chain settled on.
pub enum Source {
    /// Keys known now: from the environment or a profile (`from` says which, for the log).
    Fixed { credentials: Credentials, from: String },
    WebIdentity(WebIdentity),
    /// IMDSv2 at this base address.
    InstanceMetadata { endpoint: String },
    /// Nothing usable; says what was looked at, for the error every call returns.
    Nothing(String),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Fixed { from, .. } => from.clone(),
            Source::WebIdentity(w) => format!("web identity (role {})", w.role_arn),
            Source::InstanceMetadata { endpoint } => format!("instance metadata ({endpoint})"),
            Source::Nothing(_) => "none".into(),
        }
    }
}

/// Walks the chain. `profile` is the slot's `profile` key; `region` names the STS endpoint.
pub fn find_source(env: Env, profile: Option<&str>, region: &str) -> Source {
    let sts_endpoint = env("AWS_ENDPOINT_URL_STS")
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"))
        .trim_end_matches('/')
        .to_string();
    let session_name = env("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "keyfront".into());
    let files = SharedFiles::read(env);

    if let Some(name) = profile {
        return match files.profile(name, &sts_endpoint, &session_name) {
            ProfileCredentials::Found(source) => source,
            ProfileCredentials::Unsupported(why) => Source::Nothing(why),
            ProfileCredentials::Empty => Source::Nothing(format!("profile {name} has no aws_access_key_id/aws_secret_access_key")),
            ProfileCredentials::Missing => Source::Nothing(format!("profile {name} is in neither {}", files.places())),
        };
    }

    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        let credentials = Credentials::new(id, secret, env("AWS_SESSION_TOKEN"), None, "environment");
        return Source::Fixed { credentials, from: "environment (AWS_ACCESS_KEY_ID)".into() };
    }

    let name = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    match files.profile(&name, &sts_endpoint, &session_name) {
        ProfileCredentials::Found(source) => return source,
        ProfileCredentials::Unsupported(why) => return Source::Nothing(why),
        ProfileCredentials::Empty | ProfileCredentials::Missing => {}
    }

    if let (Some(token_file), Some(role_arn)) = (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN")) {
        return Source::WebIdentity(WebIdentity { token_file: token_file.into(), role_arn, session_name, sts_endpoint });
    }

    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Source::Nothing(format!(
            "no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, no credentials for profile {name} in {}, no \
             AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN, and instance metadata is disabled",
            files.places()
        ));
    }
    let endpoint = env("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| IMDS_DEFAULT.into());
    Source::InstanceMetadata { endpoint: endpoint.trim_end_matches('/').to_string() }
}

/// `~/.aws/credentials` and `~/.aws/config` (or the files the environment names), parsed.
struct SharedFiles {
    credentials: (PathBuf, Sections),
    config: (PathBuf, Sections),
}

/// INI sections: name → key → value. Values may be secrets: wiped when dropped.
type Sections = HashMap<String, Settings>;
type Settings = HashMap<String, Zeroizing<String>>;

enum ProfileCredentials {
    Found(Source),
    /// The profile gets its credentials in a way keyfront does not do.
    Unsupported(String),
    /// The profile exists but holds no credentials (e.g. only `region`).
    Empty,
    Missing,
}

impl SharedFiles {
    fn read(env: Env) -> SharedFiles {
        let home = env("HOME").map(PathBuf::from).unwrap_or_default();
        let credentials = env("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).unwrap_or_else(|| home.join(".aws/credentials"));
        let config = env("AWS_CONFIG_FILE").map(PathBuf::from).unwrap_or_else(|| home.join(".aws/config"));
        // The files hold secrets: the text is wiped once parsed.
        let load = |path: &PathBuf| {
            let text = Zeroizing::new(std::fs::read_to_string(path).unwrap_or_default());
            parse_ini(&text)
        };
        SharedFiles { credentials: (credentials.clone(), load(&credentials)), config: (config.clone(), load(&config)) }
    }

    fn places(&self) -> String {
        format!("{} or {}", self.credentials.0.display(), self.config.0.display())
    }

    /// The profile's settings, the credentials file winning over the config file.
    fn settings(&self, name: &str) -> Option<Settings> {
        let in_config = if name == "default" {
            self.config.1.get("default").or_else(|| self.config.1.get("profile default"))
        } else {
            self.config.1.get(&format!("profile {name}"))
        };
        let in_credentials = self.credentials.1.get(name);
        if in_config.is_none() && in_credentials.is_none() {
            return None;
        }
        let mut merged = in_config.cloned().unwrap_or_default();
        merged.extend(in_credentials.cloned().unwrap_or_default());
        Some(merged)
    }

    fn profile(&self, name: &str, sts_endpoint: &str, session_name: &str) -> ProfileCredentials {
        let Some(mut settings) = self.settings(name) else { return ProfileCredentials::Missing };
        let take = |s: &mut Settings, k: &str| s.remove(k).filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (take(&mut settings, "aws_access_key_id"), take(&mut settings, "aws_secret_access_key")) {
            let token = take(&mut settings, "aws_session_token");
            let credentials = Credentials::new(id.as_str(), secret.as_str(), token.map(|t| t.to_string()), None, "profile");
            return ProfileCredentials::Found(Source::Fixed { credentials, from: format!("profile {name}") });
        }
        if let (Some(token_file), Some(role_arn)) = (take(&mut settings, "web_identity_token_file"), take(&mut settings, "role_arn")) {
            let session_name = take(&mut settings, "role_session_name").map_or_else(|| session_name.to_string(), |n| n.to_string());
            return ProfileCredentials::Found(Source::WebIdentity(WebIdentity {
                token_file: token_file.as_str().into(),
                role_arn: role_arn.to_string(),
                session_name,
                sts_endpoint: sts_endpoint.to_string(),
            }));
        }
        const UNSUPPORTED: [&str; 6] = ["credential_process", "sso_session", "sso_start_url", "source_profile", "credential_source", "role_arn"];
        if let Some(key) = UNSUPPORTED.iter().find(|k| settings.contains_key(**k)) {
            return ProfileCredentials::Unsupported(format!(
                "profile {name} gets its credentials through `{key}`, which keyfront does not support \
                 (use keys, web identity or instance metadata; see docs/backends.md)"
            ));
        }
        ProfileCredentials::Empty
    }
}

/// Parses an AWS shared config/credentials file: `[section]` headers, `key = value` lines,
/// `#`/`;` comments; indented lines (nested settings such as `s3 =` blocks) are skipped.
pub fn parse_ini(text: &str) -> Sections {
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let name = header.split(']').next().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        let (Some(section), Some((key, value))) = (&current, line.split_once('=')) else { continue };
        sections.get_mut(section).expect("section entered").insert(key.trim().to_ascii_lowercase(), Zeroizing::new(value.trim().to_string()));
    }
    sections
}

/// Hands out credentials from the source, fetching and caching temporary ones.
pub struct Provider {
    source: Source,
    /// The last fetched credentials, or the last failure and when it happened.
    cache: Mutex<Option<std::result::Result<Credentials, (Instant, Error)>>>,
    /// For STS and instance metadata; made at first use (trusts the system roots).
    fetcher: std::sync::OnceLock<std::result::Result<HttpClient, String>>,
    timeout_ms: u64,
}

impl Provider {
    pub fn new(source: Source, timeout_ms: u64) -> Self {
        Provider { source, cache: Mutex::new(None), fetcher: std::sync::OnceLock::new(), timeout_ms }
    }

    /// Credentials to sign a request with, or `CKR_USER_NOT_LOGGED_IN` when there are none.
    pub fn get(&self) -> Result<Credentials> {
        let nothing = |why: &str| Error::Service {
            rv: CKR_USER_NOT_LOGGED_IN,
            message: format!("aws-kms: no AWS credentials: {why}"),
        };
        match &self.source {
            Source::Fixed { credentials, .. } => return Ok(credentials.clone()),
            Source::Nothing(why) => return Err(nothing(why)),
            Source::WebIdentity(_) | Source::InstanceMetadata { .. } => {}
        }
        let mut cache = self.cache.lock();
        let now = SystemTime::now();
        match &*cache {
            Some(Ok(c)) if c.expiry().is_none_or(|e| e > now + REFRESH_MARGIN) => return Ok(c.clone()),
            Some(Err((when, e))) if when.elapsed() < FAILURE_HOLD => return Err(same_error(e)),
            _ => {}
        }
        match self.fetch() {
            Ok(fresh) => {
                tracing::info!("aws-kms: got temporary credentials from {}", self.source.describe());
                *cache = Some(Ok(fresh.clone()));
                Ok(fresh)
            }
            Err(e) => {
                // Credentials that have not expired yet still serve while the refresh fails.
                if let Some(Ok(old)) = &*cache {
                    if old.expiry().is_some_and(|e| e > now) {
                        tracing::warn!("aws-kms: refreshing credentials from {} failed, using the current ones: {e}", self.source.describe());
                        return Ok(old.clone());
                    }
                }
                *cache = Some(Err((Instant::now(), same_error(&e))));
                Err(e)
            }
        }
    }

    fn fetcher(&self) -> Result<&HttpClient> {
        let timeout_ms = self.timeout_ms;
        let made = self.fetcher.get_or_init(|| {
            // Instance metadata answers within a second where it exists; elsewhere a short
            // timeout keeps a machine without credentials from hanging every call.
            let policy = match self.source {
                Source::InstanceMetadata { .. } => RetryPolicy::new(1, 2_000),
                _ => RetryPolicy::new(2, timeout_ms),
            };
            HttpClient::new("aws-credentials", None, policy).map_err(|e| e.to_string())
        });
        made.as_ref().map_err(|e| Error::Service { rv: CKR_DEVICE_ERROR, message: e.clone() })
    }

    fn fetch(&self) -> Result<Credentials> {
        match &self.source {
            Source::WebIdentity(w) => self.assume_role_with_web_identity(w),
            Source::InstanceMetadata { endpoint } => self.instance_metadata(endpoint),
            Source::Fixed { .. } | Source::Nothing(_) => unreachable!("no fetch for fixed sources"),
        }
    }

    fn assume_role_with_web_identity(&self, w: &WebIdentity) -> Result<Credentials> {
        let token = std::fs::read_to_string(&w.token_file).map(Zeroizing::new).map_err(|e| Error::Service {
            rv: CKR_USER_NOT_LOGGED_IN,
            message: format!("aws-kms: web identity token file {}: {e}", w.token_file.display()),
        })?;
        let form = Zeroizing::new(format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
            form_encode(&w.role_arn),
            form_encode(&w.session_name),
            Zeroizing::new(form_encode(token.trim())).as_str()
        ));
        let url = format!("{}/", w.sts_endpoint);
        let reply = self.fetcher()?.send(
            "AssumeRoleWithWebIdentity",
            true,
            || {
                ureq::http::Request::post(url.as_str())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form.as_bytes().to_vec())
                    .map_err(|e| Error::Internal(e.to_string()))
            },
            is_throttled_or_5xx,
        )?;
        let text = Zeroizing::new(String::from_utf8_lossy(&reply.body).into_owned());
        if !reply.is_success() {
            let code = xml_text(&text, "Code").unwrap_or_default();
            let message = xml_text(&text, "Message").unwrap_or_default();
            let rv = if reply.status >= 500 { CKR_DEVICE_ERROR } else { CKR_USER_NOT_LOGGED_IN };
            return Err(Error::Service {
                rv,
                message: format!("aws-kms: STS AssumeRoleWithWebIdentity for {} refused ({}): {code}: {message}", w.role_arn, reply.status),
            });
        }
        let field = |name: &str| {
            xml_text(&text, name).ok_or_else(|| Error::Service {
                rv: CKR_DEVICE_ERROR,
                message: format!("aws-kms: STS AssumeRoleWithWebIdentity: no {name} in the reply"),
            })
        };
        let expiry = parse_time(&field("Expiration")?);
        Ok(Credentials::new(field("AccessKeyId")?, field("SecretAccessKey")?, Some(field("SessionToken")?), expiry, "web-identity"))
    }

    fn instance_metadata(&self, endpoint: &str) -> Result<Credentials> {
        let client = self.fetcher()?;
        let failed = |what: &str, status: u16| Error::Service {
            rv: CKR_USER_NOT_LOGGED_IN,
            message: format!("aws-kms: no AWS credentials: instance metadata at {endpoint}: {what} ({status})"),
        };
        let request = |method: &str, path: &str, token: Option<&str>| -> Result<Request> {
            let mut builder = ureq::http::Request::builder().method(method).uri(format!("{endpoint}{path}"));
            builder = match token {
                None => builder.header("x-aws-ec2-metadata-token-ttl-seconds", "21600"),
                Some(t) => builder.header("x-aws-ec2-metadata-token", t),
            };
            builder.body(Vec::new()).map_err(|e| Error::Internal(e.to_string()))
        };
        // No instance metadata here is "no credentials", not a broken device.
        let unreachable = |e: Error| match e {
            Error::Service { message, .. } => Error::Service {
                rv: CKR_USER_NOT_LOGGED_IN,
                message: format!("aws-kms: no AWS credentials (environment, profile files, web identity) and {message}"),
            },
            other => other,
        };
        let reply = client.send("IMDS token", true, || request("PUT", "/latest/api/token", None), is_throttled_or_5xx).map_err(unreachable)?;
        if !reply.is_success() {
            return Err(failed("session token refused", reply.status));
        }
        let token = Zeroizing::new(String::from_utf8_lossy(&reply.body).trim().to_string());
        let path = "/latest/meta-data/iam/security-credentials/";
        let reply = client.send("IMDS role", true, || request("GET", path, Some(&token)), is_throttled_or_5xx).map_err(unreachable)?;
        if !reply.is_success() {
            return Err(failed("no IAM role attached to this instance", reply.status));
        }
        let role = String::from_utf8_lossy(&reply.body).lines().next().unwrap_or("").trim().to_string();
        if role.is_empty() {
            return Err(failed("no IAM role attached to this instance", reply.status));
        }
        let role_path = format!("{path}{role}");
        let mut reply = client.send("IMDS credentials", true, || request("GET", &role_path, Some(&token)), is_throttled_or_5xx).map_err(unreachable)?;
        if !reply.is_success() {
            return Err(failed("credentials of the role refused", reply.status));
        }
        let parsed: std::result::Result<Value, _> = serde_json::from_slice(&reply.body);
        zeroize::Zeroize::zeroize(&mut reply.body);
        let mut doc = parsed.map_err(|_| failed("credentials reply is not JSON", reply.status))?;
        let mut field = |name: &str| match doc.get_mut(name) {
            Some(Value::String(s)) => Ok(Zeroizing::new(std::mem::take(s))),
            _ => Err(failed(&format!("no {name} in the credentials reply"), reply.status)),
        };
        let (id, secret, token, expiration) = (field("AccessKeyId")?, field("SecretAccessKey")?, field("Token")?, field("Expiration")?);
        Ok(Credentials::new(id.as_str(), secret.as_str(), Some(token.to_string()), parse_time(&expiration), "imds"))
    }
}

/// An error again, for the callers of a held failure.
fn same_error(e: &Error) -> Error {
    match e {
        Error::Service { rv, message } => Error::Service { rv: *rv, message: message.clone() },
        other => Error::Service { rv: other.rv(), message: other.to_string() },
    }
}

/// `application/x-www-form-urlencoded` value: unreserved characters kept, the rest %XX.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of the first `<name>…</name>` element, with the five XML entities decoded.
pub fn xml_text(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    let raw = xml[start..end].trim();
    Some(raw.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&"))
}

/// An RFC 3339 / ISO 8601 time (`2026-11-23T12:34:56Z`, fractions and offsets allowed).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let t = text.trim();
    let num = |s: &str| -> Option<i64> { s.parse().ok() };
    let (date, rest) = t.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(zone_at);
    let clock = clock.split('.').next()?;
    let mut c = clock.splitn(3, ':');
    let (hour, minute, second) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    let offset = match zone {
        "" | "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (h, m) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
            let (h, m) = (num(h)?, num(m)?);
            if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    // RFC 3339 years have four digits; the bounds also keep the arithmetic below in range.
    if !(0..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if !(0..=23).contains(&hour) || !(0..=59).contains(&minute) || !(0..=60).contains(&second) {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(secs).ok().map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn keys(source: &Source) -> (String, String, Option<String>) {
        match source {
            Source::Fixed { credentials: c, .. } => {
                (c.access_key_id().into(), c.secret_access_key().into(), c.session_token().map(String::from))
            }
            _ => panic!("expected fixed credentials, got {}", source.describe()),
        }
    }

    const CREDENTIALS: &str = "\
# a comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = secret/default+key

[work]
aws_access_key_id=AKIDWORK
aws_secret_access_key=secretwork
aws_session_token = tokenwork
; another comment
";
    const CONFIG: &str = "\
[default]
region = eu-west-1
s3 =
  max_concurrent_requests = 20
[profile cfgonly]
aws_access_key_id = AKIDCFG
aws_secret_access_key = secretcfg
[profile web]
role_arn = arn:aws:iam::123456789012:role/web
web_identity_token_file = /var/run/token
[profile sso]
sso_session = corp
[profile regiononly]
region = us-west-2
[profile work]
region = us-east-2
aws_access_key_id = AKIDOVERRIDDEN
";

    fn files() -> (tempfile::TempDir, Vec<(&'static str, String)>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("credentials"), CREDENTIALS).unwrap();
        std::fs::write(dir.path().join("config"), CONFIG).unwrap();
        let vars = vec![
            ("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("credentials").display().to_string()),
            ("AWS_CONFIG_FILE", dir.path().join("config").display().to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ];
        (dir, vars)
    }

    fn source_with(extra: &[(&str, &str)], profile: Option<&str>) -> Source {
        let (_dir, vars) = files();
        let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        find_source(&env_of(&all), profile, "us-east-1")
    }

    #[test]
    fn ini_sections_keys_and_comments() {
        let s = parse_ini(CONFIG);
        assert_eq!(s["default"]["region"].as_str(), "eu-west-1");
        assert!(!s["default"].contains_key("max_concurrent_requests"), "nested lines are skipped");
        assert_eq!(s["profile cfgonly"]["aws_access_key_id"].as_str(), "AKIDCFG");
        let c = parse_ini(CREDENTIALS);
        assert_eq!(c["default"]["aws_secret_access_key"].as_str(), "secret/default+key");
        assert_eq!(c["work"]["aws_session_token"].as_str(), "tokenwork");
        assert_eq!(parse_ini("[ profile   spaced ]\nk = v = w\n")["profile spaced"]["k"].as_str(), "v = w");
    }

    #[test]
    fn environment_keys_come_first() {
        let s = source_with(&[("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "secretenv"), ("AWS_SESSION_TOKEN", "t")], None);
        assert_eq!(keys(&s), ("AKIDENV".into(), "secretenv".into(), Some("t".into())));
    }

    #[test]
    fn the_slot_profile_wins_over_environment_keys() {
        let s = source_with(&[("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "secretenv")], Some("work"));
        // The credentials file wins over the config file for the same profile.
        assert_eq!(keys(&s), ("AKIDWORK".into(), "secretwork".into(), Some("tokenwork".into())));
    }

    #[test]
    fn aws_profile_then_default() {
        assert_eq!(keys(&source_with(&[("AWS_PROFILE", "cfgonly")], None)).0, "AKIDCFG");
        assert_eq!(keys(&source_with(&[], None)).0, "AKIDDEFAULT");
    }

    #[test]
    fn web_identity_from_a_profile_or_the_environment() {
        match source_with(&[], Some("web")) {
            Source::WebIdentity(w) => {
                assert_eq!(w.role_arn, "arn:aws:iam::123456789012:role/web");
                assert_eq!(w.token_file, PathBuf::from("/var/run/token"));
                assert_eq!(w.sts_endpoint, "https://sts.us-east-1.amazonaws.com");
            }
            other => panic!("got {}", other.describe()),
        }
        let vars = [("AWS_PROFILE", "regiononly"), ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ROLE_ARN", "arn:r"), ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1/")];
        match source_with(&vars, None) {
            Source::WebIdentity(w) => assert_eq!((w.role_arn.as_str(), w.sts_endpoint.as_str()), ("arn:r", "http://127.0.0.1:1")),
            other => panic!("got {}", other.describe()),
        }
    }

    #[test]
    fn unsupported_missing_and_empty_profiles() {
        assert!(matches!(source_with(&[], Some("sso")), Source::Nothing(why) if why.contains("sso_session")));
        assert!(matches!(source_with(&[], Some("nosuch")), Source::Nothing(why) if why.contains("neither")));
        assert!(matches!(source_with(&[], Some("regiononly")), Source::Nothing(why) if why.contains("no aws_access_key_id")));
        // With metadata disabled and nothing else, nothing.
        assert!(matches!(source_with(&[("AWS_PROFILE", "regiononly")], None), Source::Nothing(_)));
    }

    #[test]
    fn instance_metadata_is_the_last_resort() {
        let s = find_source(&env_of(&[("HOME", "/nonexistent")]), None, "us-east-1");
        assert!(matches!(s, Source::InstanceMetadata { ref endpoint } if endpoint == IMDS_DEFAULT));
    }

    #[test]
    fn no_credentials_is_user_not_logged_in_without_network() {
        let provider = Provider::new(Source::Nothing("nothing here".into()), 1000);
        let e = provider.get().unwrap_err();
        assert_eq!(e.rv(), CKR_USER_NOT_LOGGED_IN);
        assert!(e.to_string().contains("nothing here"));
    }

    #[test]
    fn times() {
        let at = |s| parse_time(s).unwrap().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(at("1970-01-01T00:00:00Z"), 0);
        assert_eq!(at("2019-11-09T13:34:41Z"), 1_573_306_481);
        assert_eq!(at("2019-11-09T13:34:41.123Z"), 1_573_306_481);
        assert_eq!(at("2019-11-09T15:34:41+02:00"), 1_573_306_481);
        assert_eq!(at("2024-02-29T00:00:00Z"), 1_709_164_800);
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("2019-13-09T13:34:41Z").is_none());
    }

    /// A huge year or zone offset overflowed the arithmetic: a panic with overflow checks, a
    /// wrong expiry without (the `aws_profile_files` fuzz target, seeds `expiration-huge-*`).
    #[test]
    fn out_of_range_times_are_refused() {
        for bad in [
            "9999999999999-01-01T00:00:00Z",
            "-9999999999999-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
            "2019-11-09T15:34:41+9999999999999999:00",
            "2019-11-09T15:34:41-01:9999999999999999",
            "2019-11-09T15:34:41+24:00",
            "2019-11-09T99999999999999:34:41Z",
            "2019-11-09T-1:34:41Z",
        ] {
            assert!(parse_time(bad).is_none(), "{bad}");
        }
        assert!(parse_time("9999-12-31T23:59:59Z").is_some());
        assert!(parse_time("2019-11-09T15:34:41-23:59").is_some());
    }

    #[test]
    fn form_and_xml() {
        assert_eq!(form_encode("arn:aws:iam::1:role/a b+c"), "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b%2Bc");
        let xml = "<R><Credentials><AccessKeyId>AK</AccessKeyId><SecretAccessKey>a&amp;b</SecretAccessKey></Credentials></R>";
        assert_eq!(xml_text(xml, "SecretAccessKey").as_deref(), Some("a&b"));
        assert_eq!(xml_text(xml, "SessionToken"), None);
    }

    /// A one-thread HTTP server answering each request with the next canned reply; returns
    /// its address and the request lines it saw.
    pub(crate) fn canned(replies: Vec<(u16, String)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in replies {
                let (mut conn, _) = listener.accept().unwrap();
                seen.push(read_request(&mut conn));
                let _ = write!(conn, "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
            seen
        });
        (addr, handle)
    }

    /// One whole HTTP/1.1 request (head and `Content-Length` body) as text.
    pub(crate) fn read_request(conn: &mut std::net::TcpStream) -> String {
        use std::io::Read;
        let mut data = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let text = String::from_utf8_lossy(&data).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    return text;
                }
            }
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&data).to_string(),
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn instance_metadata_v2_fetch_and_cache() {
        let creds = r#"{"Code":"Success","AccessKeyId":"ASIAIMDS","SecretAccessKey":"imdssecret","Token":"imdstoken","Expiration":"2999-01-01T00:00:00Z"}"#;
        let (addr, server) = canned(vec![(200, "tok".into()), (200, "my-role\n".into()), (200, creds.into())]);
        let provider = Provider::new(Source::InstanceMetadata { endpoint: addr }, 1000);
        let c = provider.get().unwrap();
        assert_eq!((c.access_key_id(), c.secret_access_key(), c.session_token()), ("ASIAIMDS", "imdssecret", Some("imdstoken")));
        // Cached: a second get makes no request (the server would not answer it).
        assert_eq!(provider.get().unwrap().access_key_id(), "ASIAIMDS");
        let seen = server.join().unwrap();
        assert!(seen[0].starts_with("PUT /latest/api/token") && seen[0].to_ascii_lowercase().contains("x-aws-ec2-metadata-token-ttl-seconds: 21600"));
        assert!(seen[1].starts_with("GET /latest/meta-data/iam/security-credentials/ ") && seen[1].to_ascii_lowercase().contains("x-aws-ec2-metadata-token: tok"));
        assert!(seen[2].starts_with("GET /latest/meta-data/iam/security-credentials/my-role "));
    }

    #[test]
    fn no_instance_metadata_is_user_not_logged_in() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let provider = Provider::new(Source::InstanceMetadata { endpoint: format!("http://127.0.0.1:{port}") }, 1000);
        assert_eq!(provider.get().unwrap_err().rv(), CKR_USER_NOT_LOGGED_IN);
        // The failure is held: the second call answers at once, the same way.
        let started = Instant::now();
        assert_eq!(provider.get().unwrap_err().rv(), CKR_USER_NOT_LOGGED_IN);
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn web_identity_through_sts() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "eyJ.token\n").unwrap();
        let reply = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
            <AccessKeyId>ASIAWEB</AccessKeyId><SecretAccessKey>websecret</SecretAccessKey>\
            <SessionToken>webtoken</SessionToken><Expiration>2999-01-01T00:00:00Z</Expiration>\
            </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        let (addr, server) = canned(vec![(200, reply.into())]);
        let w = WebIdentity { token_file, role_arn: "arn:aws:iam::1:role/r".into(), session_name: "s".into(), sts_endpoint: addr };
        let c = Provider::new(Source::WebIdentity(w), 2000).get().unwrap();
        assert_eq!((c.access_key_id(), c.secret_access_key(), c.session_token()), ("ASIAWEB", "websecret", Some("webtoken")));
        assert!(c.expiry().is_some());
        let seen = server.join().unwrap();
        assert!(seen[0].starts_with("POST / "));
        assert!(seen[0].contains("Action=AssumeRoleWithWebIdentity&") && seen[0].ends_with("&WebIdentityToken=eyJ.token"));
    }

    #[test]
    fn web_identity_refused_is_user_not_logged_in() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "bad").unwrap();
        let reply = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>nope</Message></Error></ErrorResponse>";
        let (addr, _server) = canned(vec![(400, reply.into())]);
        let w = WebIdentity { token_file, role_arn: "arn:r".into(), session_name: "s".into(), sts_endpoint: addr };
        let e = Provider::new(Source::WebIdentity(w), 2000).get().unwrap_err();
        assert_eq!(e.rv(), CKR_USER_NOT_LOGGED_IN);
        assert!(e.to_string().contains("InvalidIdentityToken"));
    }
}
