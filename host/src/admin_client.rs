//! The other end of the admin server, for `sluice plugins` and
//! `sluice reload`: finds the running host, asks it, and formats its answers.
//! Blocking: a command makes one request and exits.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::control::{PluginInfo, VersionInfo};

/// Where `sluice run` listens when its config does not say.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9797";

/// How long to wait for a connection to the host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for an answer: a reload or rollback compiles plugins.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a command did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The host answered and said no.
    #[error("{message}")]
    Refused { status: u16, message: String },
    /// No host answers, or something else does.
    #[error("{0}")]
    Unreachable(String),
    /// The address could not be worked out from the arguments or config.
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// 1 when the host refused, 2 when it could not be asked.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Refused { .. } => 1,
            ClientError::Unreachable(_) | ClientError::Usage(_) => 2,
        }
    }
}

/// A host's admin server, and how its address was found (for error
/// messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port`, no trailing slash.
    pub base: String,
    /// The `[admin] listen` value that would make a host answer there.
    pub listen: String,
}

impl Target {
    /// `--admin HOST:PORT` wins; else `[admin] listen` in `--config FILE`;
    /// else the default.
    pub fn resolve(admin: Option<&str>, config: Option<&Path>) -> Result<Target, ClientError> {
        match (admin, config) {
            (Some(admin), _) => Target::from_arg(admin),
            (None, Some(path)) => {
                let listen = listen_in_config(path)?;
                Target::from_listen(&listen).map_err(|why| ClientError::Usage(format!("{}: {why}", path.display())))
            }
            (None, None) => Target::from_listen(DEFAULT_LISTEN).map_err(ClientError::Usage),
        }
    }

    /// `--admin`: `HOST:PORT`, optionally with `http://` in front.
    fn from_arg(arg: &str) -> Result<Target, ClientError> {
        let address = arg.strip_prefix("http://").unwrap_or(arg).trim_end_matches('/');
        let bad = || ClientError::Usage(format!("--admin {arg}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}"));
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || address.contains(['/', '?', '#']) || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        Ok(Target { base: format!("http://{address}"), listen: address.to_owned() })
    }

    /// An `[admin] listen` value; the error says why it gives no address.
    fn from_listen(listen: &str) -> Result<Target, String> {
        if listen == "off" {
            return Err("[admin] listen is \"off\": that host runs no admin server; \
                 set [admin] listen and restart `sluice run`, or pass --admin HOST:PORT"
                .to_owned());
        }
        let Ok(mut address) = listen.parse::<SocketAddr>() else {
            return Err(format!("[admin] listen {listen:?} is not HOST:PORT or \"off\""));
        };
        if address.port() == 0 {
            return Err(format!(
                "[admin] listen {listen:?} picks a free port when `sluice run` starts; \
                 pass --admin with the address it logged"
            ));
        }
        // A host listening on every address is reached on loopback.
        if address.ip().is_unspecified() {
            address.set_ip(match address.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        Ok(Target { base: format!("http://{address}"), listen: listen.to_owned() })
    }
}

/// Only `[admin] listen` from a config file: the rest may be mid-edit, so
/// it is neither validated nor, if it does not parse, read at all.
fn listen_in_config(path: &Path) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Usage(format!("{}: cannot read: {e}", path.display())))?;
    let whole = toml::from_str::<toml::Table>(&text);
    let admin = match &whole {
        Ok(table) => table.get("admin").cloned(),
        // Another part of the file does not parse: read the [admin] table alone.
        Err(whole_error) => match admin_section(&text).map(|section| toml::from_str::<toml::Table>(&section)) {
            None => None,
            Some(Ok(table)) => Some(toml::Value::Table(table)),
            Some(Err(_)) => {
                return Err(ClientError::Usage(format!(
                    "{}: cannot find [admin] listen: {}; pass --admin HOST:PORT",
                    path.display(),
                    whole_error.message()
                )));
            }
        },
    };
    let Some(admin) = admin else {
        return Ok(DEFAULT_LISTEN.to_owned());
    };
    match admin.get("listen") {
        None => Ok(DEFAULT_LISTEN.to_owned()),
        Some(toml::Value::String(listen)) => Ok(listen.clone()),
        Some(other) => Err(ClientError::Usage(format!(
            "{}: admin.listen must be a string such as \"{DEFAULT_LISTEN}\" or \"off\", not {other}",
            path.display()
        ))),
    }
}

/// The lines of the `[admin]` table, without its header.
fn admin_section(text: &str) -> Option<String> {
    let mut lines = text.lines();
    lines.find(|line| {
        let line = line.trim_start();
        line.strip_prefix("[admin]").is_some_and(|rest| rest.trim().is_empty() || rest.trim().starts_with('#'))
    })?;
    let body: Vec<&str> = lines.take_while(|line| !line.trim_start().starts_with('[')).collect();
    Some(body.join("\n"))
}

/// A blocking client of one host's admin server.
#[derive(Debug)]
pub struct Client {
    target: Target,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(target: Target) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // The admin server is local; an HTTP_PROXY meant for the internet must not apply.
            .proxy(None)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(ANSWER_TIMEOUT))
            .build();
        Client { target, agent: ureq::Agent::new_with_config(config) }
    }

    /// `GET /plugins`, as the host wrote it.
    pub fn plugins_json(&self) -> Result<String, ClientError> {
        self.call("GET", "/plugins")
    }

    /// `GET /plugins`.
    pub fn plugins(&self) -> Result<Vec<PluginInfo>, ClientError> {
        self.parse(&self.plugins_json()?)
    }

    /// `POST /plugins/{name}/rollback`: what serves now.
    pub fn rollback(&self, name: &str) -> Result<PluginInfo, ClientError> {
        let body = self.call("POST", &format!("/plugins/{}/rollback", percent_encode(name)))?;
        self.parse(&body)
    }

    /// `POST /reload`: what changed.
    pub fn reload(&self) -> Result<String, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            message: String,
        }
        let body = self.call("POST", "/reload").map_err(|e| match e {
            ClientError::Refused { status: 422, message } => ClientError::Refused {
                status: 422,
                message: format!("the host refused the config and keeps running the one it had: {message}"),
            },
            other => other,
        })?;
        Ok(self.parse::<Answer>(&body)?.message)
    }

    /// One request; the body of a 2xx answer, else the host's error.
    fn call(&self, method: &str, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.target.base);
        let answer = match method {
            "POST" => self.agent.post(&url).send_empty(),
            _ => self.agent.get(&url).call(),
        };
        let mut response = answer.map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().map_err(|e| self.unreachable(e))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        #[derive(serde::Deserialize)]
        struct Refusal {
            error: String,
        }
        let message = match serde_json::from_str::<Refusal>(&body) {
            Ok(refusal) => refusal.error,
            Err(_) => format!("{method} {url}: HTTP {status}: {}", body.trim()),
        };
        Err(ClientError::Refused { status, message })
    }

    fn parse<T: DeserializeOwned>(&self, body: &str) -> Result<T, ClientError> {
        serde_json::from_str(body).map_err(|e| {
            ClientError::Unreachable(format!(
                "{} answered, but not as a sluice host of this version does: {e}",
                self.target.base
            ))
        })
    }

    fn unreachable(&self, e: ureq::Error) -> ClientError {
        let Target { base, listen } = &self.target;
        let no_host = matches!(&e, ureq::Error::Io(io) if matches!(io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset))
            || matches!(
                &e,
                ureq::Error::ConnectionFailed
                    | ureq::Error::HostNotFound
                    | ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve)
            );
        ClientError::Unreachable(if no_host {
            format!("no sluice host answers at {base} (is `sluice run` running with [admin] listen = \"{listen}\"?)")
        } else if let ureq::Error::Timeout(_) = e {
            format!("the sluice host at {base} did not answer within {}s", ANSWER_TIMEOUT.as_secs())
        } else {
            format!("cannot talk to the sluice host at {base}: {e}")
        })
    }
}

/// A plugin name as one URL path segment.
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `sluice plugins list`: NAME, CURRENT, LOADED, PREVIOUS, ROUTES.
pub fn plugin_table(plugins: &[PluginInfo]) -> String {
    let mut rows = vec![["NAME", "CURRENT", "LOADED", "PREVIOUS", "ROUTES"].map(str::to_owned)];
    for p in plugins {
        rows.push([
            p.name.clone(),
            p.current.version.clone(),
            loaded_at(&p.current),
            p.previous.as_ref().map_or_else(|| "-".to_owned(), |v| v.version.clone()),
            if p.routes.is_empty() { "-".to_owned() } else { p.routes.join(",") },
        ]);
    }
    let mut widths = [0; 5];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `sluice plugins rollback`: what serves now.
pub fn rollback_summary(plugin: &PluginInfo) -> String {
    let mut out = format!(
        "{}: now serving {} (compiled {}, {})\n",
        plugin.name,
        plugin.current.version,
        loaded_at(&plugin.current),
        plugin.current.path
    );
    match &plugin.previous {
        Some(previous) => {
            let _ = writeln!(out, "previous: {} (a second rollback returns to it)", previous.version);
        }
        None => out.push_str("previous: none\n"),
    }
    out
}

/// When a version was compiled, in UTC to the second.
fn loaded_at(version: &VersionInfo) -> String {
    if version.loaded_at_ms == 0 {
        return "-".to_owned();
    }
    // humantime formats nothing past the year 9999; a host never sends that,
    // but a wrong answer must not panic.
    let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    let at = (UNIX_EPOCH + Duration::from_millis(version.loaded_at_ms)).min(last);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(v: &str, at: u64) -> VersionInfo {
        VersionInfo { version: v.into(), hash: "h".into(), path: "/p.wasm".into(), size: 1, loaded_at_ms: at }
    }

    #[test]
    fn admin_flag_wins_and_takes_an_http_prefix() {
        let t = Target::resolve(Some("http://10.0.0.1:9000/"), Some(Path::new("/nonexistent"))).unwrap();
        assert_eq!(t.base, "http://10.0.0.1:9000");
        assert_eq!(Target::resolve(Some("[::1]:80"), None).unwrap().base, "http://[::1]:80");
        for bad in ["9797", "localhost", ":9797", "h:port", "https://h:1", "h:1/x"] {
            let e = Target::resolve(Some(bad), None).unwrap_err();
            assert!(matches!(e, ClientError::Usage(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn no_flags_means_the_default_address() {
        assert_eq!(Target::resolve(None, None).unwrap().base, "http://127.0.0.1:9797");
    }

    #[test]
    fn config_gives_only_its_admin_listen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sluice.toml");
        let at = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Target::resolve(None, Some(&file))
        };
        assert_eq!(at("[admin]\nlisten = \"127.0.0.1:1234\"\n").unwrap().base, "http://127.0.0.1:1234");
        assert_eq!(at("[broker]\nbootstrap = \"x\"\n").unwrap().base, "http://127.0.0.1:9797");
        assert_eq!(at("[admin]\nlisten = \"0.0.0.0:77\"\n").unwrap().base, "http://127.0.0.1:77");
        assert_eq!(at("[admin]\nlisten = \"[::]:77\"\n").unwrap().base, "http://[::1]:77");
        // Unknown keys and a broken route elsewhere do not matter.
        let mid_edit = "[[routes]]\nname = \n[admin] # ops\nlisten = \"127.0.0.1:4321\"\n[reload]\nwatch = tru\n";
        assert_eq!(at(mid_edit).unwrap().base, "http://127.0.0.1:4321");
        let off = at("[admin]\nlisten = \"off\"\n").unwrap_err().to_string();
        assert!(off.contains("sluice.toml: [admin] listen is \"off\""), "{off}");
        let zero = at("[admin]\nlisten = \"127.0.0.1:0\"\n").unwrap_err().to_string();
        assert!(zero.contains("free port"), "{zero}");
        let number = at("[admin]\nlisten = 9797\n").unwrap_err().to_string();
        assert!(number.contains("admin.listen must be a string"), "{number}");
        let missing = Target::resolve(None, Some(&dir.path().join("none.toml"))).unwrap_err();
        assert!(missing.to_string().contains("none.toml: cannot read"), "{missing}");
    }

    #[test]
    fn names_are_one_path_segment() {
        assert_eq!(percent_encode("a-b_c.1"), "a-b_c.1");
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn table_lines_up_its_columns() {
        let plugins = vec![
            PluginInfo {
                name: "validate".into(),
                current: version("validate@aaaa", 1_700_000_000_000),
                previous: Some(version("validate@bbbb", 1)),
                routes: vec!["orders".into(), "payments".into()],
            },
            PluginInfo { name: "x".into(), current: version("x@cc", 0), previous: None, routes: vec![] },
        ];
        let table = plugin_table(&plugins);
        let expected = "\
NAME      CURRENT        LOADED                PREVIOUS       ROUTES
validate  validate@aaaa  2023-11-14T22:13:20Z  validate@bbbb  orders,payments
x         x@cc           -                     -              -
";
        assert_eq!(table, expected);
    }
}
