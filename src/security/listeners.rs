//! Kafka's listener settings: `listeners`, `advertised_listeners`,
//! `listener_security_protocol_map` and `inter_broker_listener_name`, parsed and checked
//! once at start into one `ListenerConfig` per listener.
//!
//! Unset `listeners` keeps the single-listener form: `listen` (and `advertised_listener`)
//! speaking PLAINTEXT under the name `PLAINTEXT`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use super::{ListenerIdentity, SecurityProtocol};

/// Kafka's default `listener.security.protocol.map`: each protocol under its own name.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// One listener: the name clients and the map know it by, where it binds, what it tells
/// clients to connect to, and what it speaks before the Kafka protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub name: String,
    pub listen: SocketAddr,
    /// `host:port` given in Metadata, FindCoordinator and DescribeCluster to clients that
    /// came in on this listener.
    pub advertised: String,
    pub protocol: SecurityProtocol,
}

impl ListenerConfig {
    pub fn identity(&self) -> ListenerIdentity {
        ListenerIdentity {
            name: self.name.clone(),
            protocol: self.protocol,
        }
    }

    /// The advertised address split into host and port (as the responses carry them).
    pub fn advertised_host_port(&self) -> (String, i32) {
        split_host_port(&self.advertised)
            .and_then(|(host, port)| Some((host.to_string(), port.parse::<i32>().ok()?)))
            .unwrap_or_else(|| (self.listen.ip().to_string(), self.listen.port() as i32))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenerError {
    #[error("{key}: {entry:?} is not NAME://host:port")]
    Format { key: &'static str, entry: String },
    #[error("{key}: cannot resolve the host of {entry:?}")]
    Resolve { key: &'static str, entry: String },
    #[error("listener_security_protocol_map: {0:?} is not NAME:PROTOCOL")]
    MapFormat(String),
    #[error("listener_security_protocol_map: {0}")]
    MapProtocol(#[from] super::protocol::UnknownSecurityProtocol),
    #[error("listener {0} is not in listener_security_protocol_map")]
    NotInMap(String),
    #[error("{key}: the listener name {name} appears twice")]
    DuplicateName { key: &'static str, name: String },
    #[error("listeners: {a} and {b} both bind {addr}")]
    DuplicatePort {
        a: String,
        b: String,
        addr: SocketAddr,
    },
    #[error("advertised_listeners names {0}, which is not in listeners")]
    UnknownAdvertised(String),
    #[error("inter_broker_listener_name {0} is not in listeners")]
    UnknownInterBroker(String),
    #[error("listeners is set but names no listener")]
    Empty,
}

/// The listener settings as config.toml holds them.
pub struct ListenerSettings<'a> {
    pub listeners: Option<&'a str>,
    pub advertised_listeners: Option<&'a str>,
    pub protocol_map: &'a str,
    pub inter_broker_listener_name: Option<&'a str>,
    /// The single-listener form, used when `listeners` is unset.
    pub listen: SocketAddr,
    pub advertised_listener: Option<&'a str>,
}

/// Every listener, in the order `listeners` names them.
pub fn parse(settings: &ListenerSettings<'_>) -> Result<Vec<ListenerConfig>, ListenerError> {
    let Some(listeners) = settings.listeners else {
        let listen = settings.listen;
        return Ok(vec![ListenerConfig {
            name: "PLAINTEXT".to_string(),
            listen,
            advertised: settings
                .advertised_listener
                .map(str::to_string)
                .unwrap_or_else(|| listen.to_string()),
            protocol: SecurityProtocol::Plaintext,
        }]);
    };
    let map = parse_map(settings.protocol_map)?;
    let bound = parse_endpoints("listeners", listeners)?;
    if bound.is_empty() {
        return Err(ListenerError::Empty);
    }
    let advertised = match settings.advertised_listeners {
        Some(text) => parse_endpoints("advertised_listeners", text)?,
        None => Vec::new(),
    };
    let mut result: Vec<ListenerConfig> = Vec::with_capacity(bound.len());
    for (name, host, port, entry) in bound {
        let protocol = *map
            .get(&name)
            .ok_or_else(|| ListenerError::NotInMap(name.clone()))?;
        let listen = resolve("listeners", &host, port, &entry)?;
        if let Some(other) = result.iter().find(|l| clashes(l.listen, listen)) {
            return Err(ListenerError::DuplicatePort {
                a: other.name.clone(),
                b: name,
                addr: listen,
            });
        }
        let advertised = advertised
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, host, port, _)| join_host_port(host, *port))
            .unwrap_or_else(|| listen.to_string());
        result.push(ListenerConfig {
            name,
            listen,
            advertised,
            protocol,
        });
    }
    if let Some((name, ..)) = advertised
        .iter()
        .find(|(n, ..)| !result.iter().any(|l| &l.name == n))
    {
        return Err(ListenerError::UnknownAdvertised(name.clone()));
    }
    if let Some(name) = settings.inter_broker_listener_name {
        let name = name.trim().to_ascii_uppercase();
        if !result.iter().any(|l| l.name == name) {
            return Err(ListenerError::UnknownInterBroker(name));
        }
    }
    Ok(result)
}

/// The protocol `name` has in `listener_security_protocol_map` (`map`).
pub fn protocol_of(map: &str, name: &str) -> Result<SecurityProtocol, ListenerError> {
    let name = name.trim().to_ascii_uppercase();
    parse_map(map)?
        .get(&name)
        .copied()
        .ok_or(ListenerError::NotInMap(name))
}

/// Two binds clash on the same port when either is the wildcard or they are equal.
fn clashes(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// `NAME:PROTOCOL,...`; names are upper-cased, as Kafka's ListenerName normalises them.
fn parse_map(text: &str) -> Result<HashMap<String, SecurityProtocol>, ListenerError> {
    let mut map = HashMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .filter(|(n, p)| !n.trim().is_empty() && !p.trim().is_empty())
            .ok_or_else(|| ListenerError::MapFormat(entry.to_string()))?;
        let protocol: SecurityProtocol = protocol.trim().parse()?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

type Endpoint = (String, String, u16, String);

/// `NAME://host:port,...` into (name, host, port, the entry as written); an empty host is
/// every interface, an IPv6 host is bracketed (`SSL://[::1]:9093`).
fn parse_endpoints(key: &'static str, text: &str) -> Result<Vec<Endpoint>, ListenerError> {
    let mut seen = HashSet::new();
    let mut endpoints = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let format = || ListenerError::Format {
            key,
            entry: entry.to_string(),
        };
        let (name, address) = entry.split_once("://").ok_or_else(format)?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format());
        }
        let (host, port) = split_host_port(address).ok_or_else(format)?;
        let port: u16 = port.parse().map_err(|_| format())?;
        if !seen.insert(name.clone()) {
            return Err(ListenerError::DuplicateName { key, name });
        }
        endpoints.push((name, host.to_string(), port, entry.to_string()));
    }
    Ok(endpoints)
}

/// `host:port` or `[v6]:port` into host (without brackets) and port.
fn split_host_port(address: &str) -> Option<(&str, &str)> {
    if let Some(rest) = address.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host, port));
    }
    let (host, port) = address.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn resolve(
    key: &'static str,
    host: &str,
    port: u16,
    entry: &str,
) -> Result<SocketAddr, ListenerError> {
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| ListenerError::Resolve {
            key,
            entry: entry.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(
        listeners: Option<&'a str>,
        advertised: Option<&'a str>,
    ) -> ListenerSettings<'a> {
        ListenerSettings {
            listeners,
            advertised_listeners: advertised,
            protocol_map: DEFAULT_PROTOCOL_MAP,
            inter_broker_listener_name: None,
            listen: "127.0.0.1:9092".parse().unwrap(),
            advertised_listener: None,
        }
    }

    #[test]
    fn unset_listeners_is_the_single_plaintext_listen() {
        let mut s = settings(None, None);
        s.advertised_listener = Some("kafka.example:19092");
        let l = parse(&s).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "PLAINTEXT");
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].listen, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(
            l[0].advertised_host_port(),
            ("kafka.example".to_string(), 19092)
        );
    }

    #[test]
    fn parses_kafka_listeners_with_advertised_and_map() {
        let mut s = settings(
            Some("PLAINTEXT://127.0.0.1:9092, ssl://:9093,CLIENT://[::1]:9094"),
            Some("SSL://broker.example:19093"),
        );
        let map = format!("{DEFAULT_PROTOCOL_MAP},CLIENT:SASL_SSL");
        s.protocol_map = &map;
        s.inter_broker_listener_name = Some("plaintext");
        let l = parse(&s).unwrap();
        let names: Vec<_> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["PLAINTEXT", "SSL", "CLIENT"]);
        assert_eq!(l[0].advertised, "127.0.0.1:9092");
        assert_eq!(l[1].listen, "0.0.0.0:9093".parse().unwrap());
        assert_eq!(l[1].protocol, SecurityProtocol::Ssl);
        assert_eq!(
            l[1].advertised_host_port(),
            ("broker.example".to_string(), 19093)
        );
        assert_eq!(l[2].listen, "[::1]:9094".parse().unwrap());
        assert_eq!(l[2].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[2].advertised_host_port(), ("::1".to_string(), 9094));
        assert_eq!(l[2].identity().name, "CLIENT");
    }

    #[test]
    fn refuses_what_kafka_refuses() {
        let err = |listeners: &str, advertised: Option<&str>| {
            parse(&settings(Some(listeners), advertised)).unwrap_err()
        };
        assert!(matches!(
            err("PLAINTEXT://a:1:2", None),
            ListenerError::Format { .. }
        ));
        assert!(matches!(
            err("127.0.0.1:9092", None),
            ListenerError::Format { .. }
        ));
        assert!(matches!(
            err("PLAINTEXT://127.0.0.1:x", None),
            ListenerError::Format { .. }
        ));
        assert_eq!(
            err("CLIENT://127.0.0.1:9092", None),
            ListenerError::NotInMap("CLIENT".into())
        );
        assert!(matches!(
            err(
                "PLAINTEXT://127.0.0.1:9092,plaintext://127.0.0.1:9093",
                None
            ),
            ListenerError::DuplicateName { .. }
        ));
        assert!(matches!(
            err("PLAINTEXT://127.0.0.1:9092,SSL://:9092", None),
            ListenerError::DuplicatePort { .. }
        ));
        assert_eq!(
            err("PLAINTEXT://127.0.0.1:9092", Some("SSL://h:1")),
            ListenerError::UnknownAdvertised("SSL".into())
        );
        assert_eq!(err("", None), ListenerError::Empty);
        let mut s = settings(Some("PLAINTEXT://127.0.0.1:9092"), None);
        s.protocol_map = "PLAINTEXT:TLS";
        assert!(matches!(parse(&s), Err(ListenerError::MapProtocol(_))));
        s.protocol_map = "PLAINTEXT";
        assert!(matches!(parse(&s), Err(ListenerError::MapFormat(_))));
        s.protocol_map = DEFAULT_PROTOCOL_MAP;
        s.inter_broker_listener_name = Some("SSL");
        assert_eq!(
            parse(&s),
            Err(ListenerError::UnknownInterBroker("SSL".into()))
        );
    }

    #[test]
    fn port_zero_may_repeat() {
        // Tests bind port 0 on several listeners: each gets its own free port.
        let l = parse(&settings(
            Some("PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
            None,
        ))
        .unwrap();
        assert_eq!(l.len(), 2);
    }
}
