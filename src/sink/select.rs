//! Which streams a run keeps (`--stream`, `--app`, `--client`, `--direction`), and the stem
//! of a kept stream's file name.

use std::net::SocketAddr;

use super::naming;
use crate::rtmp::Role;

/// Whether a `--stream` selector names this stream: its name as the report shows it, the name
/// without its query string, or `APP/NAME`.
pub(super) fn selects(selector: &str, app: Option<&[u8]>, name: Option<&[u8]>) -> bool {
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
    .any(|candidate| glob(selector.as_bytes(), candidate.as_bytes()))
}

/// Shell-style pattern match: `*` any run, `?` any one character, everything else itself.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Which streams a run keeps (`--stream`, `--app`, `--client`, `--direction`); the others are
/// neither written nor reported.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Glob over the stream name, the name without its query string, or `APP/NAME`.
    pub stream: Option<String>,
    /// Glob over the application name.
    pub app: Option<String>,
    /// The client's address (`IP`) or address and port (`IP:PORT`).
    pub client: Option<String>,
    pub direction: Option<Role>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.stream.is_none()
            && self.app.is_none()
            && self.client.is_none()
            && self.direction.is_none()
    }

    pub(super) fn keeps(
        &self,
        app: Option<&[u8]>,
        name: Option<&[u8]>,
        client: SocketAddr,
        d: Role,
    ) -> bool {
        if self.direction.is_some_and(|x| x != d) {
            return false;
        }
        if let Some(c) = &self.client {
            let ip = client.ip().to_string();
            if *c != ip && *c != client.to_string() {
                return false;
            }
        }
        if let Some(a) = &self.app {
            let app = app.map(naming::escape).unwrap_or_default();
            if !glob(a.as_bytes(), app.as_bytes()) {
                return false;
            }
        }
        match &self.stream {
            Some(sel) => selects(sel, app, name),
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

    #[test]
    fn selectors() {
        let n = Some(&b"cam1?key=abc"[..]);
        let app = Some(&b"live"[..]);
        assert!(selects("cam1", app, n));
        assert!(selects("cam1?key=abc", app, n));
        assert!(selects("live/cam1", app, n));
        assert!(!selects("live/cam", app, n));
        assert!(!selects("other/cam1", app, n));
        assert!(!selects("cam1", app, None));
    }
}
