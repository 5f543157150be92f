//! Which streams a run keeps (`--stream`, `--app`, `--client`, `--server`, `--direction`),
//! and the stem of a kept stream's file name.

use std::net::{IpAddr, SocketAddr};

use super::naming;
use crate::rtmp::Role;

/// A shell-style pattern over a name from the wire (`--stream`, `--app`), as globset reads
/// one: `*` any run (`/` included), `?` any one character, `[abc]`, `[!a-z]`, `{a,b}`, and
/// `\` before a character that would be special. Matched against the name as the report
/// shows it (escaped).
#[derive(Clone, Debug)]
pub struct Pattern {
    text: String,
    /// Boxed: a compiled glob is large, and a selection has two.
    matcher: Box<globset::GlobMatcher>,
}

impl Pattern {
    /// The pattern, or why it is not one (an unclosed `[`, say).
    pub fn new(text: &str) -> Result<Self, String> {
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(false)
            .backslash_escape(true)
            .empty_alternates(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        Ok(Pattern {
            text: text.to_string(),
            matcher: Box::new(glob.compile_matcher()),
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }

    /// Whether this `--stream` pattern names a stream: its name as the report shows it, the
    /// name without its query string, or `APP/NAME`.
    pub(super) fn selects(&self, app: Option<&[u8]>, name: Option<&[u8]>) -> bool {
        let Some(name) = name else {
            return false;
        };
        let name = naming::escape(name);
        let bare = name.split('?').next().unwrap_or("");
        let app = app.map(naming::escape).unwrap_or_default();
        [
            name.clone(),
            bare.to_string(),
            format!("{app}/{name}"),
            format!("{app}/{bare}"),
        ]
        .iter()
        .any(|candidate| self.matches(candidate))
    }
}

/// `--client` or `--server`: an address (`IP`) or an address and port (`IP:PORT`,
/// `[IPv6]:PORT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Ip(IpAddr),
    Socket(SocketAddr),
}

impl Endpoint {
    /// The endpoint, or why the text is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(a) = text.parse::<SocketAddr>() {
            return Ok(Endpoint::Socket(a));
        }
        // `[::1]` without a port, as well as `::1`.
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        bare.parse::<IpAddr>()
            .map(Endpoint::Ip)
            .map_err(|_| "not an IP address or IP:PORT (IPv6 with a port: [ADDR]:PORT)".into())
    }

    pub fn matches(&self, a: SocketAddr) -> bool {
        match self {
            Endpoint::Ip(ip) => a.ip() == *ip,
            Endpoint::Socket(s) => a == *s,
        }
    }
}

/// Which streams a run keeps (`--stream`, `--app`, `--client`, `--server`, `--direction`);
/// the others are neither written nor reported.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Over the stream name, the name without its query string, or `APP/NAME`.
    pub stream: Option<Pattern>,
    /// Over the application name.
    pub app: Option<Pattern>,
    pub client: Option<Endpoint>,
    pub server: Option<Endpoint>,
    pub direction: Option<Role>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.stream.is_none()
            && self.app.is_none()
            && self.client.is_none()
            && self.server.is_none()
            && self.direction.is_none()
    }

    pub fn keeps(
        &self,
        app: Option<&[u8]>,
        name: Option<&[u8]>,
        (client, server): (SocketAddr, SocketAddr),
        d: Role,
    ) -> bool {
        if self.direction.is_some_and(|x| x != d) {
            return false;
        }
        if self.client.is_some_and(|c| !c.matches(client)) {
            return false;
        }
        if self.server.is_some_and(|s| !s.matches(server)) {
            return false;
        }
        if let Some(a) = &self.app
            && !a.matches(&app.map(naming::escape).unwrap_or_default())
        {
            return false;
        }
        match &self.stream {
            Some(sel) => sel.selects(app, name),
            None => true,
        }
    }
}

/// `app_name_client-port_direction`, every part sanitised.
pub(super) fn file_stem(
    app: Option<&[u8]>,
    name: Option<&[u8]>,
    msid: u32,
    client: SocketAddr,
    d: Role,
) -> String {
    let app = naming::sanitize(app.unwrap_or(b"noapp"));
    let name = match name {
        Some(n) => naming::sanitize(n),
        None => format!("msid{msid}"),
    };
    let ip = naming::sanitize(client.ip().to_string().as_bytes());
    format!("{app}_{name}_{ip}-{}_{}", client.port(), d.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Pattern {
        Pattern::new(text).unwrap()
    }

    #[test]
    fn selectors() {
        let n = Some(&b"cam1?key=abc"[..]);
        let app = Some(&b"live"[..]);
        assert!(p("cam1").selects(app, n));
        assert!(p("cam1?key=abc").selects(app, n));
        assert!(p("live/cam1").selects(app, n));
        assert!(!p("live/cam").selects(app, n));
        assert!(!p("other/cam1").selects(app, n));
        assert!(!p("cam1").selects(app, None));
    }

    #[test]
    fn patterns_have_classes_alternatives_and_escapes() {
        let app = Some(&b"live"[..]);
        let a = Some(&b"a"[..]);
        let c = Some(&b"c"[..]);
        assert!(p("[ab]").selects(app, a));
        assert!(!p("[ab]").selects(app, c));
        assert!(p("[!ab]").selects(app, c));
        assert!(!p("[!ab]").selects(app, a));
        assert!(p("{a,c}").selects(app, c));
        assert!(p("cam[0-9]").selects(app, Some(b"cam7")));
        // `*` crosses `/`: `*` alone names every stream, even as APP/NAME.
        assert!(p("*").selects(app, Some(b"x/y")));
        assert!(p("l*1").selects(app, Some(b"cam1")));
        // An escaped wildcard is the character itself.
        assert!(p("a\\*").selects(app, Some(b"a*")));
        assert!(!p("a\\*").selects(app, Some(b"ab")));
        assert!(p("a\\?").selects(app, Some(b"a?")));
        assert!(!p("a\\?").selects(app, Some(b"ab")));
    }

    #[test]
    fn a_pattern_that_is_not_one_says_why() {
        let e = Pattern::new("[ab").unwrap_err();
        assert!(e.contains("unclosed character class"), "{e}");
        assert!(Pattern::new("{a,b").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn endpoints() {
        let a: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:1935".parse().unwrap();
        assert!(Endpoint::parse("10.0.0.2").unwrap().matches(a));
        assert!(Endpoint::parse("10.0.0.2:4000").unwrap().matches(a));
        assert!(!Endpoint::parse("10.0.0.2:4001").unwrap().matches(a));
        assert!(!Endpoint::parse("10.0.0.3").unwrap().matches(a));
        assert!(Endpoint::parse("2001:db8::1").unwrap().matches(v6));
        assert!(Endpoint::parse("[2001:db8::1]").unwrap().matches(v6));
        assert!(Endpoint::parse("[2001:db8::1]:1935").unwrap().matches(v6));
        for bad in [
            "notanip",
            "10.0.0",
            "10.0.0.2:",
            "10.0.0.2:99999",
            "host:1935",
            "",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selection_by_server_and_client() {
        let client: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        let server: SocketAddr = "10.0.0.1:1935".parse().unwrap();
        let keeps =
            |s: &Selection| s.keeps(Some(b"live"), Some(b"a"), (client, server), Role::Publish);
        let mut s = Selection::default();
        assert!(keeps(&s));
        s.server = Some(Endpoint::parse("10.0.0.1:1935").unwrap());
        assert!(keeps(&s));
        s.server = Some(Endpoint::parse("10.0.0.2").unwrap());
        assert!(!keeps(&s));
        s.server = None;
        s.client = Some(Endpoint::parse("10.0.0.1").unwrap());
        assert!(!keeps(&s));
        s.client = None;
        s.app = Some(p("li[uv]e"));
        assert!(keeps(&s));
        s.app = Some(p("[!l]*"));
        assert!(!keeps(&s));
    }
}
