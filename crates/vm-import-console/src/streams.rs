//! The rules of a VM's screen and serial console, as plain decisions: which KubeVirt
//! subresource each stream is, whether a websocket upgrade comes from this console's own
//! pages (its `Origin`), how many streams one user may hold open, and what the browser
//! is told when a stream ends. The websocket plumbing is the server's; nothing here
//! touches a socket.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

/// A stream a VM offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The VNC framebuffer (`virtualmachineinstances/vnc`).
    Vnc,
    /// The first serial port (`virtualmachineinstances/console`).
    Serial,
}

impl Stream {
    /// KubeVirt's subresource of `virtualmachineinstances` for it.
    pub fn subresource(self) -> &'static str {
        match self {
            Self::Vnc => "vnc",
            Self::Serial => "console",
        }
    }

    /// The stream a page path segment names.
    pub fn parse(segment: &str) -> Option<Self> {
        match segment {
            "vnc" => Some(Self::Vnc),
            "serial" => Some(Self::Serial),
            _ => None,
        }
    }

    /// The page path segment.
    pub fn segment(self) -> &'static str {
        match self {
            Self::Vnc => "vnc",
            Self::Serial => "serial",
        }
    }

    /// The button that opens it.
    pub fn action(self) -> &'static str {
        match self {
            Self::Vnc => "Open screen (VNC)",
            Self::Serial => "Open serial console",
        }
    }

    /// What the pages call it.
    pub fn title(self) -> &'static str {
        match self {
            Self::Vnc => "Screen (VNC)",
            Self::Serial => "Serial console",
        }
    }
}

/// Whether an upgrade's `Origin` is this console: the same host (and port) the request
/// was sent to, or one of the operator's `allowed` origins (`https://console.example`).
/// A missing or opaque (`null`) origin is refused: every browser sends one on a
/// websocket, and a page of another site must never ride the user's session.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin.map(str::trim).filter(|o| !o.is_empty() && *o != "null") else {
        return false;
    };
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    // An origin is scheme://host[:port], with no path.
    !rest.is_empty() && !rest.contains('/') && host.is_some_and(|h| h.trim().eq_ignore_ascii_case(rest))
}

/// Why a stream ended, as the browser is told in the websocket close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// KubeVirt closed it: the VM stopped, or virt-handler went away.
    Upstream,
    /// No input from the browser for the idle timeout.
    Idle,
    /// The browser closed it.
    Browser,
    /// The console is shutting down, or a socket failed.
    Failed,
}

impl End {
    /// The close code (RFC 6455): 1000 for a normal end, 1001 for going away, 1011 for
    /// an error.
    pub fn code(self) -> u16 {
        match self {
            Self::Upstream | Self::Browser => 1000,
            Self::Idle => 1001,
            Self::Failed => 1011,
        }
    }

    /// The close reason (at most 123 bytes, as a close frame allows).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Upstream => "The VM's stream ended: the VM stopped or restarted.",
            Self::Idle => "Closed after a period without input. Reconnect to go on.",
            Self::Browser => "Closed.",
            Self::Failed => "The connection to the cluster failed.",
        }
    }
}

/// Open streams per user, capped. A user is known by a keyed hash of their token (the
/// server's), so no token is held here.
#[derive(Clone, Debug)]
pub struct Sessions {
    cap: usize,
    open: Arc<Mutex<HashMap<u64, usize>>>,
}

/// One open stream; dropping it frees its place.
#[derive(Debug)]
pub struct Session {
    user: u64,
    open: Arc<Mutex<HashMap<u64, usize>>>,
}

impl Sessions {
    /// At most `cap` open streams per user.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            open: Arc::default(),
        }
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A place for one more stream of `user`, or `None` at the cap.
    pub fn try_open(&self, user: u64) -> Option<Session> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Session {
            user,
            open: Arc::clone(&self.open),
        })
    }

    /// How many streams are open, all users together.
    pub fn total(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).values().sum()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_consoles_origin_may_open_a_stream() {
        let host = Some("console.example:8443");
        assert!(origin_allowed(Some("https://console.example:8443"), host, &[]));
        assert!(origin_allowed(Some("http://console.example:8443"), host, &[]));
        assert!(!origin_allowed(Some("https://evil.example"), host, &[]));
        assert!(
            !origin_allowed(Some("https://console.example"), host, &[]),
            "another port"
        );
        assert!(!origin_allowed(Some("https://console.example:8443.evil"), host, &[]));
        assert!(!origin_allowed(Some("https://console.example:8443/x"), host, &[]));
        assert!(!origin_allowed(None, host, &[]), "no origin");
        assert!(!origin_allowed(Some("null"), host, &[]), "opaque origin");
        assert!(
            !origin_allowed(Some("https://console.example:8443"), None, &[]),
            "no host"
        );
        assert!(!origin_allowed(Some("file://"), host, &[]));
        // Behind a proxy that rewrites Host, the operator names the public origin.
        let allowed = vec!["https://vms.example/".to_owned()];
        assert!(origin_allowed(
            Some("https://vms.example"),
            Some("10.0.0.1:8080"),
            &allowed
        ));
        assert!(!origin_allowed(
            Some("https://other.example"),
            Some("10.0.0.1:8080"),
            &allowed
        ));
    }

    #[test]
    fn a_user_holds_at_most_the_cap_and_a_closed_stream_frees_its_place() {
        let sessions = Sessions::new(2);
        let a = sessions.try_open(1).expect("first");
        let _b = sessions.try_open(1).expect("second");
        assert!(sessions.try_open(1).is_none(), "a third is refused");
        let _other = sessions.try_open(2).expect("another user is not counted against it");
        assert_eq!(sessions.total(), 3);
        drop(a);
        assert!(sessions.try_open(1).is_some(), "a place is free again");
        assert_eq!(sessions.total(), 2, "the temporary one is dropped too");
    }

    #[test]
    fn streams_map_to_kubevirts_subresources_and_close_reasons_fit_a_frame() {
        assert_eq!(Stream::Vnc.subresource(), "vnc");
        assert_eq!(Stream::Serial.subresource(), "console");
        for s in [Stream::Vnc, Stream::Serial] {
            assert_eq!(Stream::parse(s.segment()), Some(s));
        }
        assert_eq!(Stream::parse("exec"), None);
        for end in [End::Upstream, End::Idle, End::Browser, End::Failed] {
            assert!(end.reason().len() <= 123, "{end:?}");
        }
    }
}
